"""The emulated Daily domain's records: rooms, participants and webhooks, plus small helpers."""

from __future__ import annotations

import re
import secrets
import string
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from aiohttp import web

ROOM_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
DEFAULT_MAX_PARTICIPANTS = 200
SEND_KINDS = frozenset({"video", "audio", "screenVideo", "screenAudio"})
_RANDOM_NAME_ALPHABET = string.ascii_letters + string.digits


class EmulatorError(Exception):
    """A simulated join (or leave) Daily would refuse; `reason` is Daily-like (e.g. "exp-token")."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def iso(ts: float, *, millis: bool = False) -> str:
    """ISO-8601 UTC like Daily: rooms have 1 s granularity ("...:42.000Z")."""
    moment = datetime.fromtimestamp(ts, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def json_error(status: int, error: str, info: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "info": info, **extra}, status=status)


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def random_room_name() -> str:
    return "".join(secrets.choice(_RANDOM_NAME_ALPHABET) for _ in range(20))


@dataclass(slots=True, kw_only=True)
class RoomRecord:
    name: str
    id: str
    seq: int  # creation order: the listing's newest-first sort key
    privacy: str
    created_at: float
    config: dict[str, Any]

    @property
    def exp(self) -> int | None:
        exp = self.config.get("exp")
        return exp if is_int(exp) else None

    @property
    def nbf(self) -> int | None:
        nbf = self.config.get("nbf")
        return nbf if is_int(nbf) else None

    @property
    def max_participants(self) -> int:
        value = self.config.get("max_participants")
        return value if is_int(value) else DEFAULT_MAX_PARTICIPANTS

    def expired(self, now: float) -> bool:
        return self.exp is not None and self.exp < now

    def to_json(self, domain_name: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "api_created": True,
            "privacy": self.privacy,
            "url": f"https://{domain_name}.daily.co/{self.name}",
            "created_at": iso(self.created_at),
            "config": dict(self.config),
        }


class RoomStore:
    """Rooms by name. Expired rooms stay stored (Daily collects them later) but act as deleted."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._rooms: dict[str, RoomRecord] = {}
        self._seq_by_id: dict[str, int] = {}  # survives deletion so paging cursors stay valid
        self._next_seq = 0
        self.version = 0  # bumped by every create, update and remove (the emulator's collect() caches on it)

    def live(self, name: str) -> RoomRecord | None:
        room = self._rooms.get(name)
        if room is None or room.expired(self._clock()):
            return None
        return room

    def stored(self, name: str) -> RoomRecord | None:
        return self._rooms.get(name)

    def create(self, name: str, privacy: str, config: Mapping[str, Any]) -> RoomRecord:
        self._next_seq += 1
        self.version += 1
        room = RoomRecord(
            name=name,
            id=str(uuid.uuid4()),
            seq=self._next_seq,
            privacy=privacy,
            created_at=self._clock(),
            config={k: v for k, v in config.items() if v is not None},
        )
        self._rooms[name] = room
        self._seq_by_id[room.id] = room.seq
        return room

    def touch(self) -> None:
        """A room's config changed in place (POST /rooms/:name)."""
        self.version += 1

    def remove(self, name: str) -> RoomRecord | None:
        self.version += 1
        return self._rooms.pop(name, None)

    def seq_of(self, room_id: str) -> int | None:
        return self._seq_by_id.get(room_id)

    def newest_first(self) -> list[RoomRecord]:
        now = self._clock()
        return sorted((r for r in self._rooms.values() if not r.expired(now)), key=lambda r: -r.seq)

    def __iter__(self) -> Iterator[RoomRecord]:
        return iter(list(self._rooms.values()))


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatedParticipant:
    session_id: str
    room: str
    user_id: str | None
    user_name: str | None
    owner: bool
    permissions: dict[str, Any] = field(hash=False)  # long form: hasPresence, canSend, canAdmin, ...
    token_exp: int | None
    joined_at: float
    start_video_off: bool = False
    start_audio_off: bool = False
    will_eject_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def hidden(self) -> bool:
        return self.permissions.get("hasPresence") is False

    @property
    def can_send(self) -> frozenset[str]:
        """What this participant may send: "video", "audio", "screenVideo", "screenAudio"."""
        value = self.permissions.get("canSend", True)
        if value is True:
            return SEND_KINDS
        return frozenset(value) if isinstance(value, list) else frozenset()


@dataclass(slots=True, kw_only=True)
class WebhookRecord:
    uuid: str
    url: str
    hmac: str = field(repr=False)
    basic_auth: str | None = field(default=None, repr=False)
    retry_type: str = "circuit-breaker"
    event_types: list[str] = field(default_factory=list)
    state: str = "ACTIVE"
    failed_count: int = 0
    last_moment_pushed: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_json(self, domain_id: str) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "url": self.url,
            "hmac": self.hmac,
            "basicAuth": self.basic_auth,
            "retryType": self.retry_type,
            "eventTypes": list(self.event_types),
            "state": self.state,
            "failedCount": self.failed_count,
            "lastMomentPushed": None if self.last_moment_pushed is None else iso(self.last_moment_pushed, millis=True),
            "domainId": domain_id,
            "createdAt": iso(self.created_at, millis=True),
            "updatedAt": iso(self.updated_at, millis=True),
        }


@dataclass(slots=True, kw_only=True)
class Fault:
    """An injected failure for the next `times` matching API requests."""

    endpoint: str | None  # template like "POST /rooms"; None matches every API route
    times: int
    status: int | None = None  # None: hang instead of failing
    retry_after: float | None = None
    error: str | None = None
    seconds: float = 0.0

    def matches(self, endpoint: str) -> bool:
        return self.times > 0 and (self.endpoint is None or self.endpoint == endpoint)
