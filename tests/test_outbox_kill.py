"""IC down while calls start, the bridge killed with SIGKILL, then the IC back: nothing is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from fakeic import FakeIC
from helpers import ALICE, BOB, COMMUNITY, GROUP, end_token, start_token
from rel_support import Daemon, EmulatorThread, daemon_env, ic_identity

from videobridge.devjwt import DevSigner
from videobridge.models import CanisterKind, Notification
from videobridge.state import read_calls

CHATS = [{"Group": GROUP}, {"Channel": [COMMUNITY, 7]}, {"Direct": BOB}]


async def get(http: aiohttp.ClientSession, url: str, jwt: str) -> dict:
    async with http.get(f"{url}/room/meeting_access_token", params={"initiator-username": "alice"},
                        headers={"x-auth-jwt": jwt}) as resp:
        assert resp.status == 200
        return await resp.json()


@pytest.mark.parametrize("outage", ["down", "hang"])
async def test_notifications_survive_an_ic_outage_and_a_kill_9(tmp_path: Path, outage: str,
                                                                store_url: str | None) -> None:
    def outbox() -> dict[int, Notification]:
        return read_calls(store_url=store_url, state_path=tmp_path / "state.json")[1]

    signer = DevSigner()
    pem, operator = ic_identity()
    emulator = EmulatorThread()
    fake = FakeIC(operators={operator}).start()
    for canister, kind in ((GROUP, CanisterKind.GROUP), (COMMUNITY, CanisterKind.COMMUNITY),
                           (ALICE, CanisterKind.USER), (BOB, CanisterKind.USER)):
        fake.add_canister(canister, kind)
    env = daemon_env(emulator_url=emulator.url, oc_public=signer.public_pem, state=tmp_path / "state.json",
                     extra={"IC_URL": fake.url, "OC_IDENTITY": pem, "VIDEOBRIDGE_PRESENCE_INTERVAL": "3600",
                            "VIDEOBRIDGE_IC_ROOT_KEY": fake.root_key_hex,
                            **({"VIDEOBRIDGE_STORE": store_url} if store_url else {})})
    daemon = Daemon(env, log_path=tmp_path / "serve.log", cwd=tmp_path)
    try:
        fake.go_down() if outage == "down" else fake.hang()
        daemon.start()
        async with aiohttp.ClientSession() as http:
            began = time.monotonic()
            started = [await get(http, daemon.url, start_token(signer, ALICE, chat)) for chat in CHATS]
            assert time.monotonic() - began < 2.0, "answers must not wait for the IC"
            async with http.post(f"{daemon.url}/room/end_meeting",
                                 headers={"x-auth-jwt": end_token(signer, ALICE, CHATS[0])}) as resp:
                assert (await resp.json())["ended"] is True
        await asyncio.sleep(0.5)  # deliveries are failing or hanging now
        daemon.kill()
        ids = [int(body["messageId"]) for body in started]
        queued = sorted((n.kind.value, n.message_id) for n in outbox().values())
        # the group start surely never left, so its end cancelled both; not on a shared store,
        # where the instance ending a call need not be the one delivering
        cancels = outage == "down" and store_url is None
        if cancels:
            assert queued == sorted([("start", ids[1]), ("start", ids[2])])
        else:  # a hung start may have run on the IC: its end must follow it
            assert queued == sorted([("start", ids[0]), ("end", ids[0]), ("start", ids[1]), ("start", ids[2])])
        fake.heal()
        daemon.start()
        deadline = time.monotonic() + 30  # on Redis the killed leader's lease runs out first (10 s)
        while outbox() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not outbox(), "the outbox drained after the restart"
        assert daemon.stop() == 0
        delivered = [(c.method, c.canister_id, int(c.args["message_id"])) for c in fake.calls]
        expected = [("start_video_call_v2", COMMUNITY, ids[1]), ("start_video_call_v2", BOB, ids[2])]
        if not cancels:
            expected = [("start_video_call_v2", GROUP, ids[0]), ("end_video_call_v2", GROUP, ids[0]), *expected]
        assert sorted(set(delivered)) == sorted(expected), "every queued notification arrived, nothing else"
        if not cancels:
            first_end = delivered.index(("end_video_call_v2", GROUP, ids[0]))
            assert delivered.index(("start_video_call_v2", GROUP, ids[0])) < first_end, "start before end"
    finally:
        daemon.kill()
        fake.stop()
        emulator.close()
