"""BackgroundTasks and KeyedLocks: the two reusable concurrency pieces."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from videobridge.background import BackgroundTasks
from videobridge.backoff import Backoff
from videobridge.keyed_locks import KeyedLocks


async def test_a_keyed_task_runs_once_while_it_runs_and_again_after() -> None:
    tasks = BackgroundTasks("test")
    runs: list[str] = []
    gate = asyncio.Event()

    async def work(tag: str) -> None:
        runs.append(tag)
        await gate.wait()

    assert tasks.spawn(work("a"), name="w", key="k") is not None
    assert tasks.spawn(work("b"), name="w", key="k") is None  # dropped, and closed unstarted
    assert tasks.spawn(work("c"), name="w") is not None  # no key: always runs
    await asyncio.sleep(0)
    assert "k" in tasks and len(tasks) == 2
    gate.set()
    await tasks.drain()
    assert runs == ["a", "c"] and "k" not in tasks and len(tasks) == 0
    tasks.spawn(work("d"), name="w", key="k")
    await tasks.drain()
    assert runs[-1] == "d"


async def test_a_failure_is_logged_with_the_task_name() -> None:
    tasks = BackgroundTasks("calls")

    async def boom() -> None:
        raise RuntimeError("Daily said no")

    with capture_logs() as logs:
        tasks.spawn(boom(), name="delete-room1")
        await tasks.drain()
    failed = [e for e in logs if e["event"] == "background_task_failed"]
    assert failed and failed[0]["task"] == "delete-room1" and "Daily said no" in failed[0]["error"]


async def test_drain_waits_for_tasks_spawned_meanwhile_and_aclose_cancels() -> None:
    tasks = BackgroundTasks("test")
    done: list[int] = []

    async def second() -> None:
        done.append(2)

    async def first() -> None:
        await asyncio.sleep(0)
        tasks.spawn(second(), name="second")
        done.append(1)

    tasks.spawn(first(), name="first")
    await tasks.drain()
    assert done == [1, 2]
    forever = tasks.spawn(asyncio.Event().wait(), name="forever", key="f")
    await tasks.aclose()
    assert forever is not None and forever.cancelled() and len(tasks) == 0


async def test_keyed_locks_serialise_one_key_not_others_and_forget_unused_keys() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []
    gate = asyncio.Event()

    async def hold(key: str, tag: str) -> None:
        async with locks.hold(key):
            order.append(f"{tag}+")
            if tag == "a1":
                await gate.wait()
            order.append(f"{tag}-")

    a1 = asyncio.create_task(hold("a", "a1"))
    await asyncio.sleep(0)
    a2 = asyncio.create_task(hold("a", "a2"))
    await hold("b", "b1")  # another key is not held up by a1
    await asyncio.sleep(0)
    assert order == ["a1+", "b1+", "b1-"] and "a" in locks and "b" not in locks
    gate.set()
    await asyncio.gather(a1, a2)
    assert order[3:] == ["a1-", "a2+", "a2-"]
    assert len(locks) == 0  # no lock kept for a room nobody is using


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    policy = Backoff(initial=1.0, maximum=10.0)
    assert [policy.cap(n) for n in (1, 2, 3, 4, 5, 1000)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    for attempt in (1, 3, 50):
        delay = policy.delay(attempt)
        assert policy.cap(attempt) / 2 <= delay <= policy.cap(attempt)
