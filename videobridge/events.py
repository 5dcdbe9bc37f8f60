"""The last lifecycle events (call started, live, ended; notifications; webhook healing), in memory.

For people watching the daemon (`videobridge calls watch` through `GET /room/status`); the log
has the full story. Bounded, so a busy bridge keeps only the newest.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

KEEP = 50


class EventSink(Protocol):
    """Where the call service, the outbox and the webhook monitor tell what happened."""

    def record(self, event: str, room: str | None = None, detail: str = "") -> None: ...


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    at: float
    event: str
    room: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "event": self.event, "room": self.room, "detail": self.detail}


class EventLog:
    def __init__(self, *, keep: int = KEEP, clock: Callable[[], float] = time.time) -> None:
        self._events: deque[LifecycleEvent] = deque(maxlen=keep)
        self._clock = clock

    def record(self, event: str, room: str | None = None, detail: str = "") -> None:
        self._events.append(LifecycleEvent(at=self._clock(), event=event, room=room, detail=detail))

    def last(self, count: int) -> list[LifecycleEvent]:
        """The newest `count` events, oldest first."""
        return list(self._events)[-count:] if count > 0 else []
