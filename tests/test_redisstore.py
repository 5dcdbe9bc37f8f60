"""The Redis store against a real redis-server (AOF, appendfsync always): what it commits
survives a reopen and a Redis restart, one process holds it, a lost lease stops its writes."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis_support import RedisServer
from test_store import call, note

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
