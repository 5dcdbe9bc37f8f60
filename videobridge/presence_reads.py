"""Coalesced Daily presence reads for one room (end_meeting, decline and leave all need one).

Requests about one room share the read in flight, and a read younger than `max_age` is reused:
a burst of requests for a room (a retrying phone, or abuse) costs Daily one call, not one each.
Daily's own presence lags up to 15 s, so a 2 s reuse loses nothing it could have told us.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

SWEEP_AT = 256  # entries kept before old reads are dropped


@dataclass(frozen=True, slots=True)
class _Read(Generic[T]):
    tag: Hashable
    started: float  # a read is as old as its request, not its answer
    value: T


class PresenceReads(Generic[T]):
    def __init__(self, read: Callable[[str, float | None], Awaitable[T]], *, max_age: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self.max_age = max_age
        self._clock = clock
        self._fresh: dict[str, _Read[T]] = {}
        self._inflight: dict[str, tuple[Hashable, asyncio.Task[T]]] = {}
        self.reads = 0  # Daily reads actually made (tests, benchmarks)

    async def get(self, room: str, *, tag: Hashable = None, deadline: float | None = None) -> T:
        """The room's presence; `tag` (e.g. the call's message id) keeps one call's reads from another's.

        A failed read is not kept: the next request tries again. The first caller's deadline
        governs a shared read.
        """
        now = self._clock()
        cached = self._fresh.get(room)
        if cached is not None and cached.tag == tag and now - cached.started < self.max_age:
            return cached.value
        pending = self._inflight.get(room)
        if pending is None or pending[0] != tag:
            task = asyncio.get_running_loop().create_task(self._fetch(room, tag, now, deadline))
            task.add_done_callback(_retrieve)
            pending = self._inflight[room] = (tag, task)
        # shielded: one caller giving up (a client hanging up) must not cancel the others' read
        return await asyncio.shield(pending[1])

    def forget(self, room: str) -> None:
        """Presence changed (our own eject, a participant webhook): the next request reads again."""
        self._fresh.pop(room, None)
        self._inflight.pop(room, None)  # its answer may predate the change: do not keep it

    async def _fetch(self, room: str, tag: Hashable, started: float, deadline: float | None) -> T:
        self.reads += 1
        try:
            value = await self._read(room, deadline)
        finally:
            mine = self._inflight.get(room)
            # not current any more: forgotten (presence changed meanwhile) or replaced by another call's read
            current = mine is not None and mine[1] is asyncio.current_task()
            if current:
                del self._inflight[room]
        if current:
            self._fresh[room] = _Read(tag, started, value)
            if len(self._fresh) > SWEEP_AT:
                self._sweep()
        return value

    def _sweep(self) -> None:
        now = self._clock()
        for room in [r for r, read in self._fresh.items() if now - read.started >= self.max_age]:
            del self._fresh[room]


def _retrieve(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()  # every waiter may have gone: do not warn about an unread exception
