"""The Redis store against a real redis-server (AOF, appendfsync always): what it commits
survives a reopen and a Redis restart; instances share it, a room is locked across them, one
leads at a time, and a holder that lost its lock or lease cannot write."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import pytest
from redis_support import RedisServer
from store_support import call, note

from videobridge.errors import StateError
from videobridge.models import CallState
from videobridge.state import Change, open_store
from videobridge.state.redispool import FairPool
from videobridge.state.redisstore import RedisStore, redacted


async def opened(url: str, **kw: float) -> RedisStore:  # an instance's view of the store
    store = RedisStore(url, **kw)
    await store.aopen()
    return store


async def test_commits_survive_a_reopen(redis_url):
    store = await opened(redis_url)
    first = call(1)
    await store.commit(Change(put_calls=[first], add_notifications=[note(1, first.message_id), note(2, 7)]))
    await store.commit(Change(put_calls=[call(1, CallState.LIVE), call(2)]))
    await store.commit(Change(drop_calls=["G0002"], settle_notifications=[2]))
    await store.aclose()
    again = await opened(redis_url)
    try:
        assert list(again.calls) == ["G0001"] and again.calls["G0001"].state is CallState.LIVE
        assert again.calls["G0001"].message_id == first.message_id  # a u64 survives
        assert list(again.outbox) == [1]
        assert await again.allocate_seq() == 3  # never a number used before, settled or not
        assert await again.get_call("G0001") == again.calls["G0001"]
    finally:
        await again.aclose()


async def test_instances_share_the_store(redis_url):
    one, two = await opened(redis_url), await opened(redis_url)
    try:
        await one.commit(Change(put_calls=[call(3)], add_notifications=[note(await one.allocate_seq(), 3)]))
        seen = await two.get_call("G0003")  # one round trip, no refresh needed
        assert seen is not None and seen.message_id == call(3).message_id
        firsts = [await one.allocate_seq(2), await two.allocate_seq(2), await one.allocate_seq(2)]
        assert len({first + k for first in firsts for k in (0, 1)}) == 6  # no number given twice
        await two.refresh()
        assert list(two.calls) == ["G0003"] and list(two.outbox) == [1]
        await two.commit(Change(drop_calls=["G0003"], settle_notifications=[1]))
        assert await one.get_call("G0003") is None
        await one.refresh()
        assert not one.calls and not one.outbox
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_room_is_locked_across_instances_and_a_late_holder_is_fenced(redis_url):
    one, two = await opened(redis_url), await opened(redis_url)
    order: list[str] = []
    try:
        async def hold(store: RedisStore, name: str, pause: float) -> None:
            async with store.exclusive("G0004"):
                order.append(name + " in")
                await asyncio.sleep(pause)
                order.append(name + " out")

        first = asyncio.create_task(hold(one, "one", 0.3))
        await asyncio.sleep(0.05)
        await hold(two, "two", 0)
        await first
        assert order == ["one in", "one out", "two in", "two out"]

        one.rooms._ttl_ms = 200  # a holder paused past its lock's TTL
        async with one.exclusive("G0005"):
            await asyncio.sleep(0.4)
            async with two.exclusive("G0005"):  # free again: the lock expired
                await two.commit(Change(put_calls=[call(5, CallState.LIVE)]))
            with pytest.raises(StateError, match="no longer holds lock:G0005"):
                await one.commit(Change(put_calls=[call(5)]))
        assert (await two.get_call("G0005")).state is CallState.LIVE  # the late write never landed
    finally:
        await one.aclose()
        await two.aclose()


async def test_one_leader_at_a_time_and_a_successor_within_the_ttl(redis_url):
    one, two = await opened(redis_url, lease_ttl=0.6), await opened(redis_url, lease_ttl=0.6)
    running: list[str] = []
    changes: list[tuple[str, bool]] = []

    def work(name: str):
        async def run() -> None:
            running.append(name)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(name)
        return run

    tasks = [asyncio.create_task(s.lead(work(n), on_change=lambda up, n=n: changes.append((n, up))))
             for s, n in ((one, "one"), (two, "two"))]
    try:
        await asyncio.sleep(1.5)  # several TTLs: the leader renews, the other waits
        assert len(running) == 1
        leader = running[0]
        lead_store, other = (one, two) if leader == "one" else (two, one)
        token = lead_store.leader.token
        assert token is not None
        # the leader freezes: its lease runs out and the other takes over within the TTL
        tasks[0 if leader == "one" else 1].cancel()
        await asyncio.sleep(0.6)
        other_name = "two" if leader == "one" else "one"
        assert running == [other_name]  # a stopped leader hands over at once
        # the old leader's token no longer writes
        from videobridge.state.redislease import leading

        leading.set(token)
        with pytest.raises(StateError, match="no longer holds leader"):
            await lead_store.commit(Change(settle_notifications=[1]))
        leading.set(None)
        assert (leader, True) in changes and (other_name, True) in changes
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await one.aclose()
        await two.aclose()


async def test_a_lost_lease_stops_the_leaders_work(redis_url):
    store = await opened(redis_url, lease_ttl=0.6)
    stopped = asyncio.Event()
    changes: list[bool] = []

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(store.lead(work, on_change=changes.append))
    try:
        await asyncio.sleep(0.3)
        assert changes == [True]
        import redis.asyncio as aioredis

        other = aioredis.from_url(redis_url, decode_responses=True)
        await other.set("videobridge:leader", "someone-else", px=60_000)  # another took over
        await asyncio.wait_for(stopped.wait(), 1.0)  # noticed at the next renewal
        await asyncio.sleep(0.1)
        assert changes == [True, False]
        await other.aclose()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.aclose()


async def test_webhook_ids_are_seen_once_across_instances(redis_url):
    one, two = await opened(redis_url), await opened(redis_url)
    try:
        assert await one.first_sighting("webhook:evt-1", 60)
        assert not await two.first_sighting("webhook:evt-1", 60)
        assert await two.first_sighting("webhook:evt-2", 60)
    finally:
        await one.aclose()
        await two.aclose()


async def test_redis_restart_loses_nothing_committed_and_needs_no_reopen(redis_server: RedisServer, redis_url):
    store = await opened(redis_url, lease_ttl=30)
    await store.commit(Change(put_calls=[call(6)], add_notifications=[note(1, 6)]))
    redis_server.stop(kill=True)  # SIGKILL: only the AOF (fsynced per write) remains
    with pytest.raises(StateError, match="unavailable"):
        await store.commit(Change(put_calls=[call(7)]))
    redis_server.start()
    await store.commit(Change(put_calls=[call(8)]))  # reconnects by itself
    await store.aclose()
    again = await opened(redis_url)
    assert sorted(again.calls) == ["G0006", "G0008"] and list(again.outbox) == [1]
    await again.aclose()


async def test_stored_documents_are_the_file_stores_json(redis_url):
    store = await opened(redis_url)
    await store.commit(Change(put_calls=[call(9)]))
    await store.aclose()
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url, decode_responses=True)
    doc = json.loads(await client.hget("videobridge:calls", "G0009"))
    await client.aclose()
    assert doc == call(9).to_json() | {"createdAt": doc["createdAt"], "roomExp": doc["roomExp"]}


def test_store_choice_and_redacted_urls(tmp_path):
    assert type(open_store(store_url=None, state_path=tmp_path / "s.json")).__name__ == "FileStore"
    assert isinstance(open_store(store_url="redis://localhost/0", state_path=tmp_path / "s.json"), RedisStore)
    assert redacted("rediss://user:hunter2@db:6380/1") == "rediss://***@db:6380/1"
    assert redacted("redis://db:6379/0") == "redis://db:6379/0"


async def test_unreachable_redis_is_a_clear_error():
    store = RedisStore("redis://:pw@127.0.0.1:9/0")  # nothing listens on the discard port
    with pytest.raises(StateError, match=r"redis://\*\*\*@127.0.0.1:9/0") as info:
        await store.aopen()
    assert "pw" not in str(info.value)


async def test_cli_listings_read_the_redis_store(redis_url, tmp_path):
    store = await opened(redis_url)
    await store.commit(Change(put_calls=[call(11)], add_notifications=[note(1, 11)]))
    from videobridge.state import read_calls

    calls, outbox = await asyncio.to_thread(read_calls, store_url=redis_url, state_path=tmp_path / "none.json")
    assert list(calls) == ["G0011"] and list(outbox) == [1]  # while an instance runs on it
    await store.aclose()
    from videobridge.cli.config_cmd import state_check
    from videobridge.config import load_settings

    row = state_check(load_settings(environ={"VIDEOBRIDGE_STORE": redis_url}, env_file=None))
    assert row.status == "ok" and "1 call(s), 1 pending notification(s)" in row.detail


def cli(*args: str, cwd) -> tuple[int, str, str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "videobridge", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    return done.returncode, done.stdout, done.stderr


async def test_state_migrate_both_ways_and_its_refusals(redis_url, tmp_path):
    from videobridge.state.filestore import FileStore, read_state

    path = tmp_path / "state.json"
    file_store = FileStore(path)
    file_store.open()
    calls = [call(20), call(21, CallState.LIVE)]
    await file_store.commit(Change(put_calls=calls, add_notifications=[note(1, 20), note(2, 20)]))
    code, _, err = await asyncio.to_thread(cli, "state", "migrate", "--from", str(path), "--to", redis_url, cwd=tmp_path)
    assert code != 0 and "in use by another videobridge process" in err and "Traceback" not in err
    await file_store.aclose()  # the daemon stopped

    code, _, err = await asyncio.to_thread(cli, "state", "migrate", "--from", str(path), "--to", redis_url, cwd=tmp_path)
    assert code == 0, err
    assert "moved 2 call(s) and 2 queued notification(s)" in err
    on_redis = await opened(redis_url)
    assert sorted(on_redis.calls) == ["G0020", "G0021"] and list(on_redis.outbox) == [1, 2]
    assert on_redis.calls["G0021"] == read_state(path)[0]["G0021"]
    leading = asyncio.Event()
    instance = asyncio.create_task(on_redis.lead(asyncio.Event().wait, on_change=lambda up: leading.set()))
    await asyncio.wait_for(leading.wait(), 5)  # an instance runs on the Redis side
    code, _, err = await asyncio.to_thread(cli, "state", "migrate", "--from", redis_url, "--to",
                                           str(tmp_path / "back.json"), cwd=tmp_path)
    assert code != 0 and "in use by videobridge instance" in err and "Traceback" not in err
    instance.cancel()
    await asyncio.gather(instance, return_exceptions=True)
    await on_redis.aclose()

    code, _, err = await asyncio.to_thread(cli, "state", "migrate", "--from", redis_url, "--to", str(path), cwd=tmp_path)
    assert code != 0 and "migrate only into an empty store" in err  # never merges into a store in use
    code, _, err = await asyncio.to_thread(cli, "state", "migrate", "--from", redis_url, "--to",
                                           str(tmp_path / "back.json"), cwd=tmp_path)
    assert code == 0, err
    back_calls, back_outbox = read_state(tmp_path / "back.json")
    assert sorted(back_calls) == ["G0020", "G0021"] and list(back_outbox) == [1, 2]


async def test_hundreds_of_concurrent_reads_wait_for_a_connection_instead_of_failing(redis_url):
    store = await opened(redis_url)
    try:
        await store.commit(Change(put_calls=[call(30)]))
        got = await asyncio.gather(*(store.get_call("G0030") for _ in range(400)))  # > MAX_CONNECTIONS
        assert all(c is not None and c.room_name == "G0030" for c in got)
    finally:
        await store.aclose()


async def test_the_pool_serves_waiting_commands_in_order_of_arrival(redis_url):
    # redis-py's own blocking pool lets newcomers overtake a woken waiter: with this load its
    # longest wait was over 1,000x its median (560 ms against 0.3 ms), enough under a real load
    # to pass the pool's timeout and answer 503
    from redis import asyncio as aioredis

    client = aioredis.Redis.from_pool(FairPool.from_url(redis_url, max_connections=2, timeout=30))
    waits: list[float] = []

    async def worker() -> None:
        for _ in range(40):
            started = time.perf_counter()
            await client.get("videobridge:test:fair")
            waits.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(worker() for _ in range(64)))
    finally:
        await client.aclose()
    assert len(waits) == 64 * 40
    assert max(waits) < 10 * statistics.median(waits)


async def test_a_reload_sees_every_call_and_reuses_unchanged_ones(redis_url):
    one, two = await opened(redis_url), await opened(redis_url)
    try:
        await one.commit(Change(put_calls=[call(n) for n in range(100, 1300)]))  # several HSCAN chunks
        await two.refresh()
        assert len(two.calls) == 1200
        before = two.calls["G0100"]
        await one.commit(Change(put_calls=[call(101, CallState.LIVE)], drop_calls=["G0102"]))
        await two.refresh()
        assert len(two.calls) == 1199 and two.calls["G0101"].state is CallState.LIVE
        assert two.calls["G0100"] is before  # unchanged document: not decoded again
    finally:
        await one.aclose()
        await two.aclose()
