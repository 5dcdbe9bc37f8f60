"""The bridge on Redis over HTTP: Redis dies (SIGKILL) and comes back while starts and joins keep
arriving: requests in the gap get a JSON 503, never a token; every start acknowledged before,
during or after the gap is in Redis afterwards; the bridge recovers by itself, /readyz included.
And a join costs one Redis round trip."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from helpers import ALICE, BOB, get_token, join_token, start_token
from redis_support import RedisServer
from rel_support import principals

from videobridge.state.redisstore import read_redis

WORKERS = 6


async def test_a_redis_restart_under_load_loses_nothing_and_heals(make_bridge, signer, redis_server: RedisServer,
                                                                  redis_url: str) -> None:
    client = await make_bridge(store_url=redis_url)
    groups = iter(principals(2000, seed=14))
    answers: list[tuple[str, int, dict[str, Any]]] = []  # (kind, status, body)
    ready: list[tuple[float, int, dict[str, Any]]] = []
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            chat = {"Group": next(groups)}
            status, started = await get_token(client, start_token(signer, ALICE, chat))
            answers.append(("start", status, started))
            if status == 200:
                status, body = await get_token(client, join_token(signer, BOB, chat), **{"initiator-username": "bob"})
                answers.append(("join", status, body | {"started": started["messageId"]}))
            await asyncio.sleep(0.005)

    async def watch_ready() -> None:
        while not stop.is_set():
            async with client.get("/readyz") as resp:
                ready.append((time.monotonic(), resp.status, await resp.json()))
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)] + [asyncio.create_task(watch_ready())]
    await asyncio.sleep(1.0)
    redis_server.stop(kill=True)  # only the AOF, fsynced per write, remains
    await asyncio.sleep(1.5)
    redis_server.start()
    restarted = time.monotonic()
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*tasks)

    statuses = {status for _, status, _ in answers}
    assert statuses <= {200, 503}, f"only answers or 503s, saw {statuses}"
    refused = [body for _, status, body in answers if status == 503]
    assert refused and all("token" not in body and body.get("error") for body in refused)
    ok_starts = [body for kind, status, body in answers if kind == "start" and status == 200]
    calls, _ = await asyncio.to_thread(read_redis, redis_url)
    by_id = {str(c.message_id): c.room_name for c in calls.values()}
    lost = [b for b in ok_starts if by_id.get(b["messageId"]) != b["roomName"]]
    assert not lost, f"{len(lost)} of {len(ok_starts)} acknowledged starts are not in Redis"
    joins = [body for kind, status, body in answers if kind == "join" and status == 200]
    wrong = [j for j in joins if j["messageId"] != j["started"] or j["joining"] is not True]
    assert joins and not wrong, wrong[:3]
    # it healed without a restart: answers again, and /readyz went 503 (naming Redis) and back
    tail = answers[-WORKERS * 2:]
    assert any(status == 200 for _, status, _ in tail), "no request succeeded after Redis came back"
    down = [body for _, status, body in ready if status == 503]
    assert down and all(body["checks"]["redis"] is False for body in down)
    assert [status for at, status, _ in ready if at > restarted + 1.0][-1] == 200


async def test_a_join_is_one_redis_round_trip(make_bridge, signer, redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = await make_bridge(store_url=redis_url)
    status, started = await get_token(client, start_token(signer, ALICE))
    assert status == 200
    admin = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await admin.config_resetstat()
        for _ in range(10):
            status, body = await get_token(client, join_token(signer, BOB), **{"initiator-username": "bob"})
            assert status == 200 and body["messageId"] == started["messageId"]
        stats = await admin.info("commandstats")
    finally:
        await admin.aclose()
    counts = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    counts.pop("config|resetstat", None)
    counts.pop("info", None)
    assert counts.pop("hget") == 10, counts
    # the rest is background work (the leader's lease renewal, a view reload), not the joins
    assert sum(counts.values()) <= 4, counts
