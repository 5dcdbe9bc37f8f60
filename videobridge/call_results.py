"""What the call service answers, as values: the web layer turns them into JSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """A meeting token for the call in the room; `joining` is False for the request that started it."""

    token: str
    room_name: str
    message_id: int
    joining: bool


class KeptBecause(enum.Enum):
    """Why `end_meeting` left the call going; the value is the answer's `reason`."""

    NO_CALL = "no call in progress"
    ROOM_UNCHECKED = "could not check the room; the call ends when it is empty"
    OTHERS_PRESENT = "others are still in the call"
    VIEWERS_MAY_REMAIN = "viewers may still be watching; the broadcast ends when its room is empty"


@dataclass(frozen=True, slots=True)
class EndAnswer:
    room_name: str
    kept: KeptBecause | None = None  # None: the call ended
    participants: int | None = None  # people present, when that is why the call goes on

    @property
    def ended(self) -> bool:
        return self.kept is None


class DeclineOutcome(enum.Enum):
    ENDED = "ended"  # a direct chat: the call is over
    DECLINED = "declined"  # a group or channel: the call goes on without the decliner
