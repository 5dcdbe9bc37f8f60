"""Two `serve` instances on one Redis, both answering: starts for one chat race across them as
within one; SIGKILL the leader while its notifications are queued (the IC hanging), and the other
instance takes the lease within its TTL and delivers every one of them, in order per call."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fakeic import FakeIC
from helpers import ALICE, BOB, COMMUNITY, GROUP, end_token, signed_hook, start_token
from rel_support import HOOK_SECRET, Daemon, EmulatorThread, daemon_env, ic_identity

from videobridge.devjwt import DevSigner
from videobridge.models import CanisterKind
from videobridge.state.redisstore import LEASE_TTL, read_redis

CHATS = [{"Group": GROUP}, {"Channel": [COMMUNITY, 7]}, {"Direct": BOB}]


class Pair:
    def __init__(self, tmp_path: Path, redis_url: str) -> None:
        self.signer = DevSigner()
        pem, operator = ic_identity()
        self.emulator = EmulatorThread()
        self.fake = FakeIC(operators={operator}).start()
        for canister, kind in ((GROUP, CanisterKind.GROUP), (COMMUNITY, CanisterKind.COMMUNITY),
                               (ALICE, CanisterKind.USER), (BOB, CanisterKind.USER)):
            self.fake.add_canister(canister, kind)
        env = daemon_env(emulator_url=self.emulator.url, oc_public=self.signer.public_pem,
                         state=tmp_path / "unused.json",
                         extra={"IC_URL": self.fake.url, "OC_IDENTITY": pem, "VIDEOBRIDGE_PRESENCE_INTERVAL": "3600",
                                "VIDEOBRIDGE_IC_ROOT_KEY": self.fake.root_key_hex, "VIDEOBRIDGE_STORE": redis_url})
        self.daemons = [Daemon(env, log_path=tmp_path / f"instance{i}.log", cwd=tmp_path) for i in (0, 1)]

    def start(self) -> None:
        for daemon in self.daemons:
            daemon.start()

    async def roles(self, http: aiohttp.ClientSession) -> tuple[Daemon, Daemon]:
        """(leader, follower), once one of them leads."""
        deadline = time.monotonic() + LEASE_TTL + 5
        while time.monotonic() < deadline:
            leading = []
            for daemon in self.daemons:
                if daemon.child is not None and daemon.child.returncode() is None:
                    async with http.get(daemon.url + "/readyz") as resp:
                        leading.append((await resp.json())["leader"])
                else:
                    leading.append(False)
            if leading.count(True) == 1:
                i = leading.index(True)
                return self.daemons[i], self.daemons[1 - i]
            await asyncio.sleep(0.1)
        raise AssertionError("no single leader")

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.kill()
        self.fake.stop()
        self.emulator.close()


@pytest.fixture(name="pair")
def _pair(tmp_path: Path, redis_url: str) -> Any:
    pair = Pair(tmp_path, redis_url)
    try:
        yield pair
    finally:
        pair.close()


async def access(http: aiohttp.ClientSession, daemon: Daemon, jwt: str, user: str = "alice") -> dict[str, Any]:
    async with http.get(f"{daemon.url}/room/meeting_access_token", params={"initiator-username": user},
                        headers={"x-auth-jwt": jwt}) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_twenty_starts_over_two_instances_make_one_call(pair: Pair) -> None:
    pair.start()
    async with aiohttp.ClientSession() as http:
        jwt = start_token(pair.signer, ALICE, CHATS[0])
        answers = await asyncio.gather(*(access(http, pair.daemons[i % 2], jwt) for i in range(20)))
    assert len({a["roomName"] for a in answers}) == 1
    assert len({a["messageId"] for a in answers}) == 1, "one call, one message id, whichever instance answered"
    assert sum(not a["joining"] for a in answers) == 1
    assert pair.emulator.requests()["POST /rooms"] == 1, "one Daily room"
    calls, outbox = read_redis(pair.daemons[0]._env["VIDEOBRIDGE_STORE"])
    assert list(calls) == [answers[0]["roomName"]] and len(outbox) <= 1  # its start (maybe delivered already)

    # Daily retries a webhook to whichever instance the balancer picks: handled once
    body = json.dumps({"version": "1.0.0", "type": "meeting.started", "id": "evt-retried-1", "event_ts": time.time(),
                       "payload": {"room": answers[0]["roomName"], "meeting_id": "m-1", "start_ts": time.time()}})
    verdicts = []
    async with aiohttp.ClientSession() as http:
        for daemon in (pair.daemons[0], pair.daemons[1], pair.daemons[0]):
            async with http.post(daemon.url + "/room/hook", data=body.encode(),
                                 headers=signed_hook(body.encode(), secret=HOOK_SECRET)) as resp:
                assert resp.status == 200
                verdicts.append((await resp.json())["status"])
    assert verdicts == ["accepted", "duplicate", "duplicate"]


async def test_sigkill_the_leader_and_the_other_delivers_everything(pair: Pair, tmp_path: Path) -> None:
    fake, signer = pair.fake, pair.signer
    fake.hang()  # deliveries start and never finish: they stay queued
    pair.start()
    redis_url = pair.daemons[0]._env["VIDEOBRIDGE_STORE"]
    async with aiohttp.ClientSession() as http:
        leader, follower = await pair.roles(http)
        # starts on both instances, the end on the follower: any instance answers anything
        started = [await access(http, (leader, follower)[i % 2], start_token(signer, ALICE, chat))
                   for i, chat in enumerate(CHATS)]
        async with http.post(f"{follower.url}/room/end_meeting",
                             headers={"x-auth-jwt": end_token(signer, ALICE, CHATS[0])}) as resp:
            assert (await resp.json())["ended"] is True
        ids = [int(body["messageId"]) for body in started]
        _, outbox = read_redis(redis_url)
        assert sorted((n.kind.value, n.message_id) for n in outbox.values()) == sorted(
            [("start", ids[0]), ("end", ids[0]), ("start", ids[1]), ("start", ids[2])])

        leader.kill()  # SIGKILL: no lease release, no goodbye
        killed_at = time.monotonic()
        fake.heal()
        while b'"notification_settled"' not in follower.log_path.read_bytes():
            assert time.monotonic() - killed_at < LEASE_TTL + 5, "nobody delivered after the leader died"
            await asyncio.sleep(0.05)
        failover = time.monotonic() - killed_at  # SIGKILL -> the new leader's first delivery
        assert failover < LEASE_TTL + 2.0, f"failover took {failover:.1f} s"
        (tmp_path / "failover.txt").write_text(f"{failover:.2f}")  # for the README figure
        deadline = time.monotonic() + 30
        while read_redis(redis_url)[1] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not read_redis(redis_url)[1], "the new leader drained the outbox"
        assert (await pair.roles(http))[0] is follower
        # the survivor answers for the calls the dead one started
        joined = await access(http, follower, start_token(signer, BOB, CHATS[1]), user="bob")
        assert joined["joining"] is True and int(joined["messageId"]) == ids[1]
    lines = [json.loads(line) for line in follower.log_path.read_text().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert "leader_standby" in events and "leader_elected" in events
    settled = [line for line in lines if line["event"] == "notification_settled"]
    assert len(settled) == 4 and all(line["outcome"] == "success" for line in settled)
    delivered = [(c.method, c.canister_id, int(c.args["message_id"])) for c in fake.calls]
    expected = {("start_video_call_v2", GROUP, ids[0]), ("end_video_call_v2", GROUP, ids[0]),
                ("start_video_call_v2", COMMUNITY, ids[1]), ("start_video_call_v2", BOB, ids[2])}
    assert set(delivered) == expected, "every queued notification arrived, nothing else"
    last_start = max(i for i, d in enumerate(delivered) if d[0] == "start_video_call_v2" and d[2] == ids[0])
    assert last_start < delivered.index(("end_video_call_v2", GROUP, ids[0])), "the start before its end"
    assert follower.stop() == 0
