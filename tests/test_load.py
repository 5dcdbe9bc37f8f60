"""Load: 500 concurrent clients mixing starts, joins and ends against `serve` for 30 s, zero errors.

The daemon runs as its own process (JSON logs at info to a file), the Daily emulator in a thread of
this process, the clients here (aiohttp, one session, 500 connections). Each client loops: think a
little, then start (15 %), join (84.7 %) or end (0.3 %) the call of a random chat out of 40.
Ends are rare on purpose: Daily allows about 2 room deletes per second, and the bridge keeps to it.

Errors are 5xx, connection failures and unexpected statuses. A join or an end after the call ended
("no meeting to join", 400) is an expected answer and is counted apart.

    VIDEOBRIDGE_LOAD_SECONDS=30 VIDEOBRIDGE_LOAD_CLIENTS=500 python -m pytest -s tests/test_load.py
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
from pathlib import Path

import aiohttp
import pytest
from rel_support import Daemon, EmulatorThread, daemon_env, percentile, principals

from videobridge.chats import GroupChat, room_name
from videobridge.devjwt import DevSigner
from videobridge.state.filestore import read_state

SECONDS = float(os.environ.get("VIDEOBRIDGE_LOAD_SECONDS", "30"))
CLIENTS = int(os.environ.get("VIDEOBRIDGE_LOAD_CLIENTS", "500"))
CHATS = 40
MIX = (("join", 0.847), ("start", 0.15), ("end", 0.003))
THINK = (0.0, 1.0)  # seconds between one client's requests, uniform
USERS = principals(64, seed=7)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + 120)]


class Tally:
    def __init__(self) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: list[str] = []
        self.new_calls: dict[str, set[str]] = collections.defaultdict(set)  # room -> message ids started
        self.ended = 0


async def client(http: aiohttp.ClientSession, url: str, signer: DevSigner, groups: list[str], stop_at: float,
                 tally: Tally, rng: random.Random) -> None:
    kinds, weights = zip(*MIX)
    while True:
        await asyncio.sleep(rng.uniform(*THINK))
        if time.monotonic() >= stop_at:
            return
        kind = rng.choices(kinds, weights)[0]
        group = rng.choice(groups)
        user = rng.choice(USERS)
        chat = {"Group": group}
        started = time.perf_counter()
        try:
            if kind == "end":
                jwt = signer.video_call_token("MarkVideoCallAsEnded", user_id=user, chat_id=chat)
                async with http.post(url + "/room/end_meeting", headers={"x-auth-jwt": jwt}) as resp:
                    status, body = resp.status, await resp.json(content_type=None)
            else:
                claim = "StartVideoCall" if kind == "start" else "JoinVideoCall"
                jwt = signer.video_call_token(claim, user_id=user, chat_id=chat)
                async with http.get(url + "/room/meeting_access_token", headers={"x-auth-jwt": jwt},
                                    params={"initiator-username": f"user-{user[:5]}"}) as resp:
                    status, body = resp.status, await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            tally.outcomes["error"] += 1
            tally.errors.append(f"{kind}: {type(exc).__name__}: {exc}"[:200])
            continue
        tally.latency[kind].append(time.perf_counter() - started)
        if status == 200 and kind == "end":
            tally.outcomes["end: ended" if body.get("ended") else f"end: kept ({body.get('reason')})"] += 1
            tally.ended += bool(body.get("ended"))
        elif status == 200:
            tally.outcomes[f"{kind}: 200"] += 1
            if kind == "start" and body["joining"] is False:
                tally.new_calls[body["roomName"]].add(body["messageId"])
            assert body["roomName"] == room_name(GroupChat(group))
        elif status == 400 and kind == "join" and body.get("message") == "no meeting in progress to join":
            tally.outcomes["join: no meeting (400, expected)"] += 1
        else:
            tally.outcomes["error"] += 1
            tally.errors.append(f"{kind}: {status} {body}"[:200])


async def test_500_clients_mixing_starts_joins_and_ends(tmp_path: Path) -> None:
    rng = random.Random()
    signer = DevSigner()
    groups = principals(CHATS, seed=rng.randrange(1 << 30))
    emulator = EmulatorThread()
    state = tmp_path / "state.json"
    daemon = Daemon(daemon_env(emulator_url=emulator.url, oc_public=signer.public_pem, state=state),
                    log_path=tmp_path / "serve.log", cwd=tmp_path)
    tally = Tally()
    try:
        daemon.start()
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
            cpu_before = daemon.cpu_seconds()
            began = time.monotonic()
            await asyncio.gather(*(client(http, daemon.url, signer, groups, began + SECONDS, tally,
                                          random.Random(rng.random())) for _ in range(CLIENTS)))
            elapsed = time.monotonic() - began
            server_cpu = daemon.cpu_seconds() - cpu_before
            async with http.get(daemon.url + "/readyz") as resp:
                assert resp.status == 200, await resp.text()
        rss = daemon.rss_kib() / 1024
        assert daemon.stop() == 0
        daily = emulator.requests()
    finally:
        daemon.kill()
        emulator.close()

    total = sum(tally.outcomes.values())
    report = [f"\nload: {CLIENTS} clients, {elapsed:.1f} s, {total} requests ({total / elapsed:.0f}/s), "
              f"server CPU {server_cpu:.1f} s ({100 * server_cpu / elapsed:.0f} % of one core), RSS {rss:.0f} MiB"]
    report += [f"  {name}: {count}" for name, count in sorted(tally.outcomes.items())]
    for kind, values in sorted(tally.latency.items()):
        report.append(f"  {kind:5} p50 {percentile(values, 50) * 1000:7.1f} ms   p99 {percentile(values, 99) * 1000:7.1f} ms"
                      f"   max {max(values) * 1000:7.1f} ms")
    report.append(f"  Daily calls: {dict(sorted(daily.items()))}")
    served: dict[str, list[float]] = collections.defaultdict(list)  # the daemon's own view (access log)
    for entry in daemon.log_events("http_request"):
        served[f"{entry['path']} {entry.get('outcome') or entry['status']}"].append(entry["duration_ms"])
    for route, values in sorted(served.items()):
        report.append(f"  served {route:40} n={len(values):6}  p50 {percentile(values, 50):8.2f} ms"
                      f"  p99 {percentile(values, 99):8.2f} ms  max {max(values):8.2f} ms")
    stale = [e for e in daemon.log_events("call_ended") if e.get("reason") == "retry"]
    report.append(f"  calls ended by a room-delete retry (new calls ended by an old call's end): {len(stale)}")
    print("\n".join(report))

    assert tally.outcomes["error"] == 0, tally.errors[:20]
    assert total > CLIENTS * SECONDS / 2, "the clients were not kept busy"
    assert all(tally.outcomes[f"{k}: 200"] for k in ("start", "join")) and tally.ended, tally.outcomes
    # No 5xx anywhere in the daemon's own access log either.
    assert not daemon.log_events("request_crashed")
    assert all(entry["status"] < 500 for entry in daemon.log_events("http_request"))
    # Each new call cost exactly one room creation at Daily; each call has one message id.
    created = daily["POST /rooms"] + daily.get("POST /rooms/:name", 0)
    assert sum(len(ids) for ids in tally.new_calls.values()) == created
    checked = sum(v for k, v in tally.outcomes.items() if k.startswith("end") and "no call in progress" not in k)
    # an end costs at most one presence check (if there is a call): ends for one room share reads
    assert 0 < daily["GET /rooms/:name/presence"] <= checked, (daily, checked)
    # The state file loads and every notification went out (graceful stop).
    calls, outbox = read_state(state)
    assert not outbox
    for call in calls.values():
        assert str(call.message_id) in tally.new_calls[call.room_name]
