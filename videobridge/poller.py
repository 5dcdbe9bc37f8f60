"""The presence poller: Daily's `GET /presence` is the source of truth for who is in a call.

Runs inside `serve`'s event loop. Polls only while calls are tracked; backs off on Daily
errors without ever leaving the loop; reports its health to the systemd watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from videobridge.backoff import Backoff
from videobridge.calls import CallService
from videobridge.daily.errors import DailyError
from videobridge.errors import StateError

log = structlog.get_logger("videobridge.poller")

MAX_BACKOFF = 120.0


class PresenceSource(Protocol):
    async def presence(self, *, deadline: float | None = None) -> dict[str, list[Any]]: ...


class PollObserver(Protocol):
    def poll_done(self, outcome: str) -> None: ...


class PresencePoller:
    def __init__(self, *, daily: PresenceSource, calls: CallService, interval: float,
                 monotonic: Callable[[], float] = time.monotonic,
                 observer: PollObserver | None = None) -> None:
        self._daily = daily
        self._calls = calls
        self._interval = interval
        self._monotonic = monotonic
        self._observer = observer
        self._backoff = Backoff(initial=2 * interval, maximum=MAX_BACKOFF)
        self.failures = 0
        self.last_success: float | None = None  # monotonic time of the last good poll
        self.occupancy: dict[str, int] = {}  # participants per room at the last good poll

    def seconds_since_success(self) -> float | None:
        return None if self.last_success is None else self._monotonic() - self.last_success

    def healthy(self) -> bool:
        """False once polls have failed for several intervals while calls are tracked."""
        if not self._calls.calls or self.failures == 0:
            return True
        age = self.seconds_since_success()
        return age is None or age < max(4 * self._interval, 60.0)

    async def poll_once(self) -> bool:
        try:
            presence = await self._daily.presence(deadline=max(1.0, min(self._interval, 10.0)))
        except DailyError as exc:
            self.failures += 1
            self._count("error")
            log.warning("presence_poll_failed", error=str(exc), failures=self.failures)
            return False
        # Daily answered: the outage is over even while this poll's changes are being written
        self.failures = 0
        self.last_success = self._monotonic()
        occupancy = {room: len(people) for room, people in presence.items()}
        meetings = {room: meeting for room, people in presence.items()
                    if (meeting := next((getattr(p, "meeting_id", None) for p in people
                                         if getattr(p, "meeting_id", None)), None))}
        await self._calls.reconcile(occupancy, meetings)
        self.occupancy = occupancy
        self._count("ok")
        return True

    def _delay(self) -> float:
        if self.failures == 0:
            return self._interval
        return max(self._interval, self._backoff.delay(self.failures))

    async def run(self) -> None:
        while True:
            with contextlib.suppress(StateError):  # the store away: poll what we know
                await self._calls.refresh_view()
            if self._calls.calls:
                try:
                    await self.poll_once()
                except Exception:
                    self.failures += 1
                    self._count("error")
                    log.exception("presence_poll_crashed", failures=self.failures)
            else:
                self.failures = 0
            await asyncio.sleep(self._delay())

    def _count(self, outcome: str) -> None:
        if self._observer is not None:
            self._observer.poll_done(outcome)
