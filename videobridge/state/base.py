"""What every store offers the call service, the outbox and the CLI (the seam a second engine fills).

A store holds two collections, calls by room name and notifications by sequence number, and
changes them only through `commit`: one `Change` applied atomically and durably before it
returns. `calls` and `outbox` are in-memory views for listings, the poller and metrics; the
decisions that must see the latest state read `get_call` while holding `exclusive(room)`.

A store is held (one process owns it: the state file) or shared (several bridge instances write
it at once: Redis). On a shared store the views are caches that `refresh` reloads, rooms are
locked across instances, and `lead` runs the work only one instance may do (the poller and the
outbox worker) wherever the leader lease is.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from videobridge.models import Call, Notification


@dataclass(slots=True)
class Change:
    """What one logical step changes; applied in one durable write."""

    put_calls: list[Call] = field(default_factory=list)
    drop_calls: list[str] = field(default_factory=list)
    add_notifications: list[Notification] = field(default_factory=list)
    settle_notifications: list[int] = field(default_factory=list)  # seqs

    def __bool__(self) -> bool:
        return bool(self.put_calls or self.drop_calls or self.add_notifications or self.settle_notifications)


class Store(Protocol):
    kind: str  # the readiness check's name: "state" (the file) or "redis"
    shared: bool  # other processes write it concurrently: views are caches

    @property
    def calls(self) -> Mapping[str, Call]: ...

    @property
    def outbox(self) -> Mapping[int, Notification]: ...

    @property
    def is_open(self) -> bool: ...

    async def aopen(self, *, wait: bool = False) -> None:
        """Take the store and load the view; if another process holds it, StateLocked, or with
        `wait` (a standby daemon, where the store supports it) wait until it is free."""
        ...

    async def aclose(self) -> None: ...

    async def allocate_seq(self, count: int = 1) -> int:
        """The first of `count` new notification sequence numbers (delivery order per call)."""
        ...

    async def refresh(self, *, calls: bool = True, outbox: bool = True) -> None:
        """Reload the views from the store (a no-op where this process alone writes it)."""
        ...

    async def lead(self, work: Callable[[], Awaitable[None]], *, on_change: Callable[[bool], None]) -> None:
        """Run `work` while this process is the leader; `on_change(leading)` on every change.
        Never returns; cancel it to stop. A held store is always led by its holder."""
        ...

    async def first_sighting(self, key: str, ttl: float) -> bool:
        """True the first time any instance asks about `key` within `ttl` seconds."""
        ...

    async def get_call(self, room: str) -> Call | None:
        """The room's call as last committed by anyone."""
        ...

    def exclusive(self, room: str) -> AbstractAsyncContextManager[None]:
        """Held around every read-decide-commit of one room, across every process sharing the store."""
        ...

    async def commit(self, change: Change) -> None: ...


class HeldView:
    """What both stores share while one process holds them: the in-memory view is the truth (no
    one else writes), so reads and sequence numbers cost no I/O."""

    calls: dict[str, Call]
    outbox: dict[int, Notification]
    _next_seq: int
    shared = False

    async def allocate_seq(self, count: int = 1) -> int:
        first = self._next_seq
        self._next_seq += count
        return first

    async def refresh(self, *, calls: bool = True, outbox: bool = True) -> None:
        return None  # the view is the truth

    async def lead(self, work: Callable[[], Awaitable[None]], *, on_change: Callable[[bool], None]) -> None:
        await work()  # the holder is the only process: always the leader, never a change

    async def first_sighting(self, key: str, ttl: float) -> bool:
        return True  # one process: its own memory (the webhook verifier's) already de-duplicates

    async def get_call(self, room: str) -> Call | None:
        return self.calls.get(room)

    @contextlib.asynccontextmanager
    async def exclusive(self, room: str) -> AsyncIterator[None]:
        yield  # one holder: the call service's own per-room lock is the whole story

    def _apply_view(self, change: Change) -> None:
        apply_change(self.calls, self.outbox, change)


def apply_change(calls: dict[str, Call], outbox: dict[int, Notification], change: Change) -> None:
    """`change` applied to in-memory views (after it was committed)."""
    for call in change.put_calls:
        calls[call.room_name] = call
    for room in change.drop_calls:
        calls.pop(room, None)
    for note in change.add_notifications:
        outbox[note.seq] = note
    for seq in change.settle_notifications:
        outbox.pop(seq, None)


def summarize(calls: Mapping[str, Call]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in calls.values():
        counts[call.state.value] = counts.get(call.state.value, 0) + 1
    return counts
