"""PresenceReads: concurrent requests share one read, young reads are reused, changes are seen."""

from __future__ import annotations

import asyncio

import pytest

from videobridge.presence_reads import PresenceReads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reader:
    """Answers with the room's current people after `delay`; counts reads; can fail."""

    def __init__(self) -> None:
        self.people: dict[str, list[str]] = {}
        self.calls: list[tuple[str, float | None]] = []
        self.delay = 0.01
        self.fail: Exception | None = None

    async def __call__(self, room: str, deadline: float | None) -> list[str]:
        self.calls.append((room, deadline))
        snapshot = list(self.people.get(room, []))
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return snapshot


@pytest.fixture
def reader() -> Reader:
    return Reader()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_concurrent_requests_share_one_read(reader: Reader, clock: Clock) -> None:
    reads = PresenceReads(reader, clock=clock)
    reader.people["r"] = ["alice"]
    answers = await asyncio.gather(*(reads.get("r", tag=1, deadline=1.5) for _ in range(50)))
    assert answers == [["alice"]] * 50 and reader.calls == [("r", 1.5)] and reads.reads == 1
    other = await reads.get("other", tag=1)
    assert other == [] and len(reader.calls) == 2, "rooms do not share reads"


async def test_a_young_read_is_reused_and_an_old_one_is_not(reader: Reader, clock: Clock) -> None:
    reads = PresenceReads(reader, clock=clock, max_age=2.0)
    reader.people["r"] = ["alice"]
    assert await reads.get("r", tag=1) == ["alice"]
    reader.people["r"] = []
    clock.now += 1.9
    assert await reads.get("r", tag=1) == ["alice"] and len(reader.calls) == 1
    clock.now += 0.2
    assert await reads.get("r", tag=1) == [] and len(reader.calls) == 2


async def test_another_call_in_the_room_reads_again(reader: Reader, clock: Clock) -> None:
    reads = PresenceReads(reader, clock=clock)
    reader.people["r"] = ["alice"]
    assert await reads.get("r", tag=1) == ["alice"]
    reader.people["r"] = []
    assert await reads.get("r", tag=2) == [] and len(reader.calls) == 2


async def test_forget_makes_the_next_request_read_and_drops_a_read_in_flight(reader: Reader, clock: Clock) -> None:
    reads = PresenceReads(reader, clock=clock)
    reader.people["r"] = ["alice", "bob"]
    assert await reads.get("r", tag=1) == ["alice", "bob"]
    reader.people["r"] = ["alice"]
    reads.forget("r")
    assert await reads.get("r", tag=1) == ["alice"]
    # a read that started before a change must not be kept after it
    reader.delay = 0.05
    stale = asyncio.create_task(reads.get("r", tag=2))
    await asyncio.sleep(0.01)
    reader.people["r"] = []
    reads.forget("r")
    assert await stale == ["alice"]  # its own caller gets what Daily said
    reader.delay = 0.0
    assert await reads.get("r", tag=2) == [] and len(reader.calls) == 4


async def test_failures_are_shared_but_not_kept(reader: Reader, clock: Clock) -> None:
    reads = PresenceReads(reader, clock=clock)
    reader.fail = RuntimeError("Daily down")
    results = await asyncio.gather(*(reads.get("r") for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and len(reader.calls) == 1
    reader.fail = None
    assert await reads.get("r") == [] and len(reader.calls) == 2


async def test_a_caller_giving_up_does_not_cancel_the_shared_read(reader: Reader, clock: Clock) -> None:
    reads = PresenceReads(reader, clock=clock)
    reader.people["r"] = ["alice"]
    reader.delay = 0.05
    impatient = asyncio.create_task(reads.get("r"))
    patient = asyncio.create_task(reads.get("r"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert await patient == ["alice"] and len(reader.calls) == 1


async def test_old_entries_are_swept(reader: Reader, clock: Clock) -> None:
    reads = PresenceReads(reader, clock=clock, max_age=2.0)
    reader.delay = 0.0
    for i in range(300):
        await reads.get(f"room-{i}")
        clock.now += 0.1  # the first rooms' reads grow old while the later ones are made
    assert len(reads._fresh) < 300
