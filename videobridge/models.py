"""Frozen value objects shared across the bridge: tracked calls and outbox notifications."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from videobridge.chats import Chat, chat_from_json, chat_to_json

HOUR_MS = 3_600_000


class CallType(StrEnum):
    DEFAULT = "Default"
    BROADCAST = "Broadcast"
    AUDIO = "Audio"  # a Default call with audio_only (SPEC §9): audio tokens, audio_only notifications


class CallState(StrEnum):
    STARTING = "starting"  # room created, nobody seen in Daily yet
    LIVE = "live"  # seen in Daily presence (or a webhook)
    ENDING = "ending"  # end notifications queued, Daily room being deleted


@dataclass(frozen=True, slots=True, kw_only=True)
class Initiator:
    """What the front end tells us about the user who starts a call (query parameters)."""

    username: str
    display_name: str | None = None
    avatar_id: int | None = None  # u128


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    room_name: str
    message_id: int  # random non-zero u64
    chat: Chat
    call_type: CallType
    started_by: str  # principal text of the starter's user canister
    initiator: Initiator
    is_diamond: bool
    state: CallState
    created_at: float  # unix seconds
    room_exp: int  # unix seconds; also the exp of every meeting token for this call
    last_seen_at: float | None = None
    meeting_id: str | None = None  # Daily's meeting session in the room (meeting.started, mtgSessionId)

    @property
    def max_duration_ms(self) -> int:
        return 2 * HOUR_MS if self.is_diamond else HOUR_MS

    def evolve(self, **changes: Any) -> Call:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "roomName": self.room_name,
            "messageId": str(self.message_id),
            "chat": chat_to_json(self.chat),
            "callType": self.call_type.value,
            "startedBy": self.started_by,
            "initiator": asdict(self.initiator),
            "isDiamond": self.is_diamond,
            "state": self.state.value,
            "createdAt": self.created_at,
            "roomExp": self.room_exp,
            "lastSeenAt": self.last_seen_at,
            "dailyMeetingId": self.meeting_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Call:
        return cls(
            room_name=data["roomName"],
            message_id=int(data["messageId"]),
            chat=chat_from_json(data["chat"]),
            call_type=CallType(data["callType"]),
            started_by=data["startedBy"],
            initiator=Initiator(**data["initiator"]),
            is_diamond=bool(data["isDiamond"]),
            state=CallState(data["state"]),
            created_at=float(data["createdAt"]),
            room_exp=int(data["roomExp"]),
            last_seen_at=data.get("lastSeenAt"),
            meeting_id=data.get("dailyMeetingId"),  # absent in state files from before it was kept
        )


class NotificationKind(StrEnum):
    START = "start"
    END = "end"
    DECLINED = "declined"  # video_call_declined on the local user index (group/channel decline)


class CanisterKind(StrEnum):
    USER = "user"
    GROUP = "group"
    COMMUNITY = "community"
    LOCAL_USER_INDEX = "local_user_index"


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One IC update call to make, durable in the outbox until the IC answers.

    `args` is JSON-able: principals as text, nat64/nat as Python ints, `call_type` as
    "Default"/"Broadcast", optional fields as None. Delivery is ordered by `seq` within a
    `message_id`.
    """

    seq: int
    message_id: int
    room_name: str
    kind: NotificationKind
    canister_kind: CanisterKind
    canister_id: str
    method: str
    args: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.seq:020d}"

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "messageId": str(self.message_id),
            "roomName": self.room_name,
            "kind": self.kind.value,
            "canisterKind": self.canister_kind.value,
            "canisterId": self.canister_id,
            "method": self.method,
            "args": _stringify_big(self.args),
            "createdAt": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        return cls(
            seq=int(data["seq"]),
            message_id=int(data["messageId"]),
            room_name=data["roomName"],
            kind=NotificationKind(data["kind"]),
            canister_kind=CanisterKind(data["canisterKind"]),
            canister_id=data["canisterId"],
            method=data["method"],
            args=_unstringify_big(data["args"]),
            created_at=float(data.get("createdAt", 0.0)),
        )


# JSON readers in other languages lose precision above 2^53, so big ints are stored as
# {"$int": "<decimal>"} in the state file.
def _stringify_big(args: dict[str, Any]) -> dict[str, Any]:
    return {k: ({"$int": str(v)} if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**53 else v)
            for k, v in args.items()}


def _unstringify_big(args: dict[str, Any]) -> dict[str, Any]:
    return {k: (int(v["$int"]) if isinstance(v, dict) and "$int" in v else v) for k, v in args.items()}
