"""Client-side rate limits that hold however Daily counts: "at most N requests in any W seconds".

A request holds a slot in every window from the moment it is sent until W seconds after its
answer arrived (or we stopped waiting). Daily saw it arrive somewhere in between, so any two
requests N slots apart arrive at least W seconds apart, whatever the network's jitter. A
leaky bucket would not do: 20/s with a burst of 20 lets 40 requests through in one second.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

Window = tuple[int, float]  # (requests, seconds)

# daily-api.md §2: "20 req/s, or 100 req per 5 s" for most endpoints; "~2 req/s, or 50 req per
# 30 s" for DELETE /rooms/:name (which we also count against the general budget).
DAILY_LIMITS: tuple[Window, ...] = ((20, 1.0), (100, 5.0))
DAILY_DELETE_LIMITS: tuple[Window, ...] = ((2, 1.0), (50, 30.0))


def per_second(rate: float) -> tuple[Window, ...]:
    """One window equivalent to `rate` requests per second (0.5 -> 1 per 2 s)."""
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError("rate limits must be positive")
    count = max(1, int(rate))
    return ((count, count / rate),)


@dataclass(slots=True, eq=False)
class Ticket:
    """A slot held in one limiter; give it back with `WindowLimiter.release`."""

    limiter: WindowLimiter
    done: bool = field(default=False)


class WindowLimiter:
    def __init__(self, windows: Sequence[Window], *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if not windows or any(n < 1 or not w > 0 for n, w in windows):
            raise ValueError("windows must be (count >= 1, seconds > 0) pairs")
        self._windows = tuple((int(n), float(w)) for n, w in windows)
        self._clock = clock
        self._sleep = sleep
        self._in_flight = 0
        self._finished: deque[float] = deque()  # answer times, oldest first
        self._longest = max(w for _, w in self._windows)
        self._queue = asyncio.Lock()  # first come, first served

    @property
    def windows(self) -> tuple[Window, ...]:
        return self._windows

    def _wait(self, now: float) -> float:
        """Seconds until a new request fits every window (0 if it fits now)."""
        while self._finished and self._finished[0] + self._longest <= now:
            self._finished.popleft()
        wait = 0.0
        finished = list(self._finished)
        for count, seconds in self._windows:
            recent = [t for t in finished if t + seconds > now]
            excess = self._in_flight + len(recent) - count + 1
            if excess <= 0:
                continue
            if excess > len(recent):  # only answers can free a slot: poll again soon
                wait = max(wait, min(seconds, 0.05))
            else:
                wait = max(wait, recent[excess - 1] + seconds - now)
        return wait

    async def acquire(self) -> Ticket:
        async with self._queue:
            while (wait := self._wait(self._clock())) > 0:
                await self._sleep(wait)
            self._in_flight += 1
        return Ticket(self)

    def release(self, ticket: Ticket, *, sent: bool = True) -> None:
        """The request got its answer (or we gave up on it); `sent=False`: it never left."""
        if ticket.done:
            return
        ticket.done = True
        self._in_flight -= 1
        if sent:
            self._finished.append(self._clock())
