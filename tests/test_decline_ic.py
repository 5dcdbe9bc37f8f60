"""Decline end to end: HTTP decline -> durable outbox -> what the fake IC's canisters decode.

Group/channel declines reach the local user index named in the token as `video_call_declined`,
behind the call's start; direct declines end the call on both users' canisters. An IC outage
across declines loses nothing: the 204s come at once, everything arrives, in order, when the IC
is back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakeic import FakeIC
from helpers import ALICE, BOB, CAROL, COMMUNITY, GROUP, LOCAL_USER_INDEX, bridge_of, decline_token, start_token
from ic_support import CONTRACT_USERS, DECLINED, END, START, ICFactory, received, settled

from videobridge.userid import user_canister_id


@pytest.fixture(name="ic")
def _ic(make_ic: ICFactory) -> FakeIC:
    """test_notify_contract's canisters: declines go to the local user index."""
    return make_ic(users=CONTRACT_USERS, local_user_index=True)


async def started(client: Any, signer: Any, user: str, chat: dict[str, Any]) -> int:
    async with client.get("/room/meeting_access_token", params={"initiator-username": "a"},
                          headers={"x-auth-jwt": start_token(signer, user, chat)}) as resp:
        assert resp.status == 200
        return int((await resp.json())["messageId"])


async def decline(client: Any, signer: Any, message_id: int, user: str, chat: dict[str, Any]) -> int:
    async with client.post("/room/decline", headers={"x-auth-jwt": decline_token(signer, message_id, user, chat)}) as resp:
        return resp.status


async def test_group_and_channel_declines_reach_the_local_user_index(ic_bridge, ic, signer):
    client = await ic_bridge()
    channel = {"Channel": [COMMUNITY, "7"]}
    for chat, expected_chat in (({"Group": GROUP}, {"Group": GROUP}), (channel, {"Channel": [COMMUNITY, 7]})):
        message_id = await started(client, signer, ALICE, chat)
        assert await decline(client, signer, message_id, BOB, chat) == 204
        await settled(client)
        start, declined = received(ic)[-2:]
        assert start[1] == START and declined[:2] == (LOCAL_USER_INDEX, DECLINED)
        assert declined[2] == {"user_id": BOB, "chat_id": expected_chat, "message_id": message_id}
    assert len(bridge_of(client).store.calls) == 2, "a group or channel decline does not end the call"


async def test_a_direct_decline_ends_the_call_on_both_canisters(ic_bridge, ic, signer):
    client = await ic_bridge()
    message_id = await started(client, signer, ALICE, {"Direct": BOB})
    assert await decline(client, signer, message_id, BOB, {"Direct": ALICE}) == 204
    await bridge_of(client).calls.drain()
    await settled(client)
    calls = received(ic)
    assert [(c[0], c[1]) for c in calls] == [(user_canister_id(BOB), START), (user_canister_id(ALICE), END),
                                             (user_canister_id(BOB), END)]
    assert calls[1][2] == {"user_id": ALICE, "them": BOB, "message_id": message_id}
    assert not bridge_of(client).store.calls


async def test_an_ic_outage_across_declines_loses_nothing(ic_bridge, ic, signer):
    client = await ic_bridge()
    ic.go_down()
    chat = {"Group": GROUP}
    message_id = await started(client, signer, ALICE, chat)
    statuses = await asyncio.gather(*(decline(client, signer, message_id, user, chat) for user in (BOB, CAROL)))
    assert statuses == [204, 204]
    assert len(bridge_of(client).store.outbox) == 3, "start and both declines queued durably"
    await asyncio.sleep(0.3)  # a few failed attempts
    ic.heal()
    await settled(client, timeout=20)
    calls = received(ic)
    assert [c[1] for c in calls] == [START, DECLINED, DECLINED], "the start first, then the declines"
    assert sorted(c[2]["user_id"] for c in calls[1:]) == sorted([BOB, CAROL])
