"""Two `serve` processes on one Redis: the second waits as a standby; SIGKILL the first while its
notifications are queued (the IC hanging), and the standby takes over within the lease TTL and
delivers every one of them, in order per call."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
from fakeic import FakeIC
from helpers import ALICE, BOB, COMMUNITY, GROUP, end_token, start_token
from rel_support import Daemon, EmulatorThread, daemon_env, ic_identity

from videobridge.devjwt import DevSigner
from videobridge.models import CanisterKind
from videobridge.state.redisstore import LEASE_TTL, read_redis

CHATS = [{"Group": GROUP}, {"Channel": [COMMUNITY, 7]}, {"Direct": BOB}]


async def test_sigkill_the_holder_and_the_standby_delivers_everything(tmp_path: Path, redis_url: str) -> None:
    signer = DevSigner()
    pem, operator = ic_identity()
    emulator = EmulatorThread()
    fake = FakeIC(operators={operator}).start()
    for canister, kind in ((GROUP, CanisterKind.GROUP), (COMMUNITY, CanisterKind.COMMUNITY),
                           (ALICE, CanisterKind.USER), (BOB, CanisterKind.USER)):
        fake.add_canister(canister, kind)
    env = daemon_env(emulator_url=emulator.url, oc_public=signer.public_pem, state=tmp_path / "unused.json",
                     extra={"IC_URL": fake.url, "OC_IDENTITY": pem, "VIDEOBRIDGE_PRESENCE_INTERVAL": "3600",
                            "VIDEOBRIDGE_IC_ROOT_KEY": fake.root_key_hex, "VIDEOBRIDGE_STORE": redis_url})
    first = Daemon(env, log_path=tmp_path / "first.log", cwd=tmp_path)
    standby = Daemon(env, log_path=tmp_path / "standby.log", cwd=tmp_path)
    try:
        fake.hang()  # deliveries start and never finish: they stay queued
        first.start()
        standby_ready = asyncio.create_task(asyncio.to_thread(standby.start, 60.0))
        async with aiohttp.ClientSession() as http:
            started = []
            for chat in CHATS:
                async with http.get(f"{first.url}/room/meeting_access_token", params={"initiator-username": "alice"},
                                    headers={"x-auth-jwt": start_token(signer, ALICE, chat)}) as resp:
                    assert resp.status == 200
                    started.append(await resp.json())
            async with http.post(f"{first.url}/room/end_meeting",
                                 headers={"x-auth-jwt": end_token(signer, ALICE, CHATS[0])}) as resp:
                assert (await resp.json())["ended"] is True
        await asyncio.sleep(0.5)
        assert not standby_ready.done(), "the standby must wait while the first instance holds the store"
        ids = [int(body["messageId"]) for body in started]
        _, outbox = read_redis(redis_url)
        assert sorted((n.kind.value, n.message_id) for n in outbox.values()) == sorted(
            [("start", ids[0]), ("end", ids[0]), ("start", ids[1]), ("start", ids[2])])

        first.kill()  # SIGKILL: no lease release, no goodbye
        killed_at = time.monotonic()
        fake.heal()
        await standby_ready
        takeover = time.monotonic() - killed_at
        assert takeover < LEASE_TTL + 1.0, f"takeover took {takeover:.1f} s"
        (tmp_path / "takeover.txt").write_text(f"{takeover:.2f}")  # for the README figure (pytest -s shows the path)
        deadline = time.monotonic() + 30
        while read_redis(redis_url)[1] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not read_redis(redis_url)[1], "the standby drained the outbox"
        lines = [json.loads(line) for line in (tmp_path / "standby.log").read_text().splitlines()
                 if line.startswith("{")]
        events = [line["event"] for line in lines]
        assert "state_standby" in events and "state_takeover" in events
        settled = [line for line in lines if line["event"] == "notification_settled"]
        assert len(settled) == 4 and all(line["outcome"] == "success" for line in settled)
        delivered = [(c.method, c.canister_id, int(c.args["message_id"])) for c in fake.calls]
        expected = {("start_video_call_v2", GROUP, ids[0]), ("end_video_call_v2", GROUP, ids[0]),
                    ("start_video_call_v2", COMMUNITY, ids[1]), ("start_video_call_v2", BOB, ids[2])}
        assert set(delivered) == expected, "every queued notification arrived, nothing else"
        last_start = max(i for i, d in enumerate(delivered) if d[0] == "start_video_call_v2" and d[2] == ids[0])
        assert last_start < delivered.index(("end_video_call_v2", GROUP, ids[0])), "the start before its end"
        # the standby now answers: the calls the first instance started are still there
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{standby.url}/room/meeting_access_token", params={"initiator-username": "bob"},
                                headers={"x-auth-jwt": start_token(signer, BOB, CHATS[1])}) as resp:
                body = await resp.json()
        assert resp.status == 200 and body["joining"] is True and int(body["messageId"]) == ids[1]
        assert standby.stop() == 0
    finally:
        first.kill()
        standby.kill()
        fake.stop()
        emulator.close()
