"""The Redis store against a real redis-server (AOF, appendfsync always): what it commits
survives a reopen and a Redis restart, one process holds it, a lost lease stops its writes."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis_support import RedisServer
from store_support import call, note

from videobridge.errors import StateError, StateLocked
from videobridge.models import CallState
from videobridge.state import Change, open_store
from videobridge.state.redisstore import RedisStore, redacted


async def opened(url: str, **kw: float) -> RedisStore:
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
        assert list(again.outbox) == [1] and again.allocate_seq() == 2
        assert await again.get_call("G0001") == again.calls["G0001"]
    finally:
        await again.aclose()


async def test_one_process_holds_the_store(redis_url):
    store = await opened(redis_url)
    with pytest.raises(StateLocked, match="in use by another videobridge process"):
        await opened(redis_url)
    await store.aclose()
    successor = await opened(redis_url)  # released on close: the next one gets it
    assert successor.is_open
    await successor.aclose()


async def test_a_lost_lease_stops_every_write(redis_url):
    store = await opened(redis_url)
    import redis.asyncio as aioredis

    other = aioredis.from_url(redis_url, decode_responses=True)
    await other.set("videobridge:holder", "someone-else")  # another process took over
    with pytest.raises(StateError, match="lease lost"):
        await store.commit(Change(put_calls=[call(3)]))
    assert await other.hlen("videobridge:calls") == 0 and not store.calls and not store.is_open
    await other.aclose()
    await store.aclose()


async def test_the_lease_is_renewed_and_expires_when_the_holder_dies(redis_url):
    store = await opened(redis_url, lease_ttl=0.6)
    await asyncio.sleep(1.5)  # several TTLs: the renewer keeps it
    await store.commit(Change(put_calls=[call(4)]))
    assert store._renewer is not None
    store._renewer.cancel()  # as if the process froze
    await asyncio.sleep(0.9)
    successor = await opened(redis_url)  # the lease ran out
    assert list(successor.calls) == ["G0004"]
    with pytest.raises(StateError):
        await store.commit(Change(put_calls=[call(5)]))  # the old holder is fenced off
    await successor.aclose()
    await store.aclose()


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
    assert list(calls) == ["G0011"] and list(outbox) == [1]  # while the daemon holds it
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
    code, _, err = await asyncio.to_thread(cli, "state", "migrate", "--from", redis_url, "--to",
                                           str(tmp_path / "back.json"), cwd=tmp_path)
    assert code != 0 and "in use by another videobridge process" in err  # a daemon holds the Redis side
    await on_redis.aclose()

    code, _, err = await asyncio.to_thread(cli, "state", "migrate", "--from", redis_url, "--to", str(path), cwd=tmp_path)
    assert code != 0 and "migrate only into an empty store" in err  # never merges into a store in use
    code, _, err = await asyncio.to_thread(cli, "state", "migrate", "--from", redis_url, "--to",
                                           str(tmp_path / "back.json"), cwd=tmp_path)
    assert code == 0, err
    back_calls, back_outbox = read_state(tmp_path / "back.json")
    assert sorted(back_calls) == ["G0020", "G0021"] and list(back_outbox) == [1, 2]
