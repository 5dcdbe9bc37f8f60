"""OpenChat is told about every call, through a fake IC boundary node that checks signatures."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient
from fakeic import generate_pem
from helpers import ALICE, BOB, COMMUNITY, GROUP, bridge_of, end_token, get_token, start_token
from ic_support import OPERATOR, settled
from redis_support import STORES, on_store

from videobridge.config import Settings
from videobridge.notifier import Error
from videobridge.outbox import RetryPolicy


@pytest.fixture(name="settings", params=STORES)
def _settings_on_each_store(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


async def start_and_end(client: TestClient, signer, user: str, chat: dict, **query: str) -> dict:
    status, body = await get_token(client, start_token(signer, user, chat), **query)
    assert 200 == status
    async with client.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer, user, chat)}) as resp:
        assert (await resp.json())["ended"] is True
    return body


async def test_group_call_starts_and_ends_on_the_group_canister(ic_bridge, ic, signer):
    client = await ic_bridge()
    status, body = await get_token(client, start_token(signer, ALICE, {"Group": GROUP}, diamond=True),
                                   **{"initiator-displayname": "Alice A"})
    await settled(client)
    (start,) = ic.calls
    assert (start.canister_id, start.method, start.sender) == (GROUP, "start_video_call_v2", OPERATOR)
    assert start.args == {"message_id": int(body["messageId"]), "initiator": ALICE, "initiator_username": "alice",
                          "initiator_display_name": "Alice A", "max_duration": 7_200_000, "call_type": "Default",
                          "audio_only": None}
    async with client.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer)}) as resp:
        assert (await resp.json())["ended"] is True
    await settled(client)
    assert [(c.canister_id, c.method, c.args) for c in ic.calls[1:]] == [
        (GROUP, "end_video_call_v2", {"message_id": int(body["messageId"])})]


async def test_channel_call_uses_the_community_canister_and_nat32_channel(ic_bridge, ic, signer):
    client = await ic_bridge()
    body = await start_and_end(client, signer, ALICE, {"Channel": [COMMUNITY, str(2**32 + 7)]})
    await settled(client)
    start, end = ic.calls
    assert start.canister_id == end.canister_id == COMMUNITY
    assert start.args["channel_id"] == 7 and start.args["max_duration"] == 3_600_000
    assert end.args == {"channel_id": 7, "message_id": int(body["messageId"])}


async def test_direct_call_starts_on_the_other_user_and_ends_on_both(ic_bridge, ic, signer):
    client = await ic_bridge()
    body = await start_and_end(client, signer, BOB, {"Direct": ALICE}, **{"initiator-avatarid": str(2**100 + 7)})
    await settled(client)
    start, *ends = ic.calls
    assert start.canister_id == ALICE and start.args["initiator"] == BOB and start.args["user_id"] == ALICE
    assert start.args["initiator_avatar_id"] == 2**100 + 7
    assert sorted((c.canister_id, c.args["user_id"], c.args["them"]) for c in ends) == [
        (ALICE, ALICE, BOB), (BOB, BOB, ALICE)]
    assert all(c.method == "end_video_call_v2" and c.args["message_id"] == int(body["messageId"]) for c in ends)


async def test_error_replies_settle_without_retry(ic_bridge, ic, signer):
    ic.reply = Error(101, "Video call type not allowed")
    client = await ic_bridge()
    await get_token(client, start_token(signer))
    await settled(client)
    await asyncio.sleep(0.3)
    assert 1 == len(ic.calls)
    async with client.get("/metrics") as resp:
        text = await resp.text()
    assert 'videobridge_notifications_total{kind="start",outcome="error"} 1.0' in text


async def test_a_non_operator_is_refused_and_counted(ic_bridge, ic, signer):
    client = await ic_bridge(pem=generate_pem())
    await get_token(client, start_token(signer))
    await settled(client)
    assert ic.refused == 1 and not ic.calls
    async with client.get("/metrics") as resp:
        assert 'videobridge_notifications_total{kind="start",outcome="rejected"} 1.0' in await resp.text()


@pytest.mark.parametrize("outage", ["down", "hang"])
async def test_ic_outage_does_not_touch_answers_and_everything_arrives_later(ic_bridge, ic, signer, outage):
    client = await ic_bridge()
    ic.go_down() if outage == "down" else ic.hang()
    chats = [{"Group": GROUP}, {"Channel": [COMMUNITY, 1]}, {"Direct": BOB}]
    started = time.monotonic()
    answers = [await get_token(client, start_token(signer, ALICE, chat)) for chat in chats]
    assert all(status == 200 for status, _ in answers)
    assert time.monotonic() - started < 1.0, "the answer must not wait for the IC"
    await asyncio.sleep(0.6)
    assert bridge_of(client).store.outbox and not ic.calls
    ic.heal()
    await settled(client, timeout=15)
    assert sorted(int(c.args["message_id"]) for c in ic.calls) == sorted(int(b["messageId"]) for _, b in answers)


async def test_outbox_survives_a_restart(ic_bridge, ic, signer):
    ic.go_down()
    first = await ic_bridge()
    _, body = await get_token(first, start_token(signer))
    assert len(bridge_of(first).store.outbox) == 1
    await first.close()
    ic.heal()
    second = await ic_bridge()
    await settled(second)
    assert [int(c.args["message_id"]) for c in ic.calls] == [int(body["messageId"])]


async def test_an_end_whose_start_never_got_out_cancels_both(ic_bridge, ic, signer, settings):
    ic.go_down()
    # The start's next retry is a minute away, so no attempt is in flight when the end comes (an
    # attempt in flight may reach the IC, and then the end must be sent too).
    wait = 1.0 if settings.store_url else 60.0  # shared: the start goes anyway (below)
    client = await ic_bridge(notify_retry=RetryPolicy(initial=wait, maximum=wait))
    await get_token(client, start_token(signer))
    deadline = time.monotonic() + 10
    while True:  # the first attempt was refused at connect
        async with client.get("/metrics") as resp:
            if 'videobridge_notifications_total{kind="start",outcome="retry"} 1.0' in await resp.text():
                break
        assert time.monotonic() < deadline, "the start was never attempted"
        await asyncio.sleep(0.02)
    async with client.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer)}) as resp:
        assert (await resp.json())["ended"] is True
    ic.heal()
    await settled(client)
    await asyncio.sleep(0.3)
    if settings.store_url:
        # shared: the instance that ends may not be the one delivering, so it cannot know the
        # start never got out; both go, in order
        assert [c.method for c in ic.calls] == ["start_video_call_v2", "end_video_call_v2"]
        return
    assert not ic.calls, "OpenChat never heard of the call, so it must not hear that it ended"
