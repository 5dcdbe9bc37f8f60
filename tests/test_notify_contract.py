"""SPEC §9 over real HTTP: bridge app + Daily emulator + fake IC, asserting what each canister decodes.

Audio calls (`audio_only`), MultiUser canisters (#9401: `user_id` / `them`, derived canister ids),
the legacy user-end switch, declines on the local user index, notifications queued by the previous
version, and canisters that do not exist.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient
from fakeic import FakeIC
from helpers import (
    ADMIN_TOKEN,
    ALICE,
    BOB,
    COMMUNITY,
    GROUP,
    LOCAL_USER_INDEX,
    bridge_of,
    end_token,
    get_token,
    start_token,
)
from ic_support import (
    CAROL_MU,
    CONTRACT_USERS,
    DAVE_MU,
    DECLINED,
    END,
    ERIN_MU,
    MU_A,
    MU_B,
    START,
    ICFactory,
    received,
    settled,
)

from videobridge.principal import bytes_to_principal

CHATS = {"group": {"Group": GROUP}, "channel": {"Channel": [COMMUNITY, str(2**32 + 7)]}, "direct": {"Direct": BOB}}


@pytest.fixture(name="ic")
def _ic(make_ic: ICFactory) -> FakeIC:
    return make_ic(users=CONTRACT_USERS, local_user_index=True)


async def start(client: TestClient, signer: Any, user: str, chat: dict[str, Any], **claims: Any) -> dict[str, Any]:
    status, body = await get_token(client, start_token(signer, user, chat, **claims),
                                   **{"initiator-displayname": "Caller"})
    assert status == 200, body
    return body


async def end(client: TestClient, signer: Any, user: str, chat: dict[str, Any]) -> None:
    async with client.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer, user, chat)}) as resp:
        assert (await resp.json())["ended"] is True


async def metric(client: TestClient, line: str) -> bool:
    async with client.get("/metrics") as resp:
        return line in await resp.text()


# ---- every chat kind x {video, audio, broadcast} x {old client, new client}, start and end ----

CLIENTS = [  # (call_type claim, audio_only claim: None = an older client's token) -> (wire call_type, audio_only)
    ("Default", None, "Default", None),
    ("Default", False, "Default", None),
    ("Default", True, "Default", True),
    ("Broadcast", None, "Broadcast", None),
    ("Broadcast", False, "Broadcast", None),
    ("Broadcast", True, "Broadcast", None),  # Broadcast wins: audio_only stays absent
]


@pytest.mark.parametrize("chat_name", list(CHATS))
@pytest.mark.parametrize(("call_type", "audio_claim", "wire_type", "audio_only"), CLIENTS,
                         ids=["video-old", "video-new", "audio-new", "broadcast-old", "broadcast-new",
                              "broadcast-audio-new"])
async def test_start_and_end_arguments(ic_bridge, ic, signer, chat_name: str, call_type: str,
                                       audio_claim: bool | None, wire_type: str, audio_only: bool | None) -> None:
    client = await ic_bridge()
    chat = CHATS[chat_name]
    body = await start(client, signer, ALICE, chat, call_type=call_type, audio_only=audio_claim)
    await end(client, signer, ALICE, chat)
    await settled(client)
    mid = int(body["messageId"])
    common = {"message_id": mid, "initiator": ALICE, "initiator_username": "alice",
              "initiator_display_name": "Caller", "max_duration": 3_600_000, "call_type": wire_type,
              "audio_only": audio_only}
    expected = {
        "group": [(GROUP, START, common), (GROUP, END, {"message_id": mid})],
        "channel": [(COMMUNITY, START, {"channel_id": 7, **common}),
                    (COMMUNITY, END, {"channel_id": 7, "message_id": mid})],
        "direct": [(BOB, START, {"user_id": BOB, **common, "initiator_avatar_id": None}),
                   (ALICE, END, {"user_id": ALICE, "them": BOB, "message_id": mid}),
                   (BOB, END, {"user_id": BOB, "them": ALICE, "message_id": mid})],
    }[chat_name]
    assert received(ic) == expected


async def test_audio_calls_are_listed_as_audio(ic_bridge, ic, signer, settings) -> None:
    from cli_support import invoke

    client = await ic_bridge(admin_token=ADMIN_TOKEN)
    audio = await start(client, signer, ALICE, {"Group": GROUP}, audio_only=True)
    video = await start(client, signer, BOB, {"Direct": ALICE})
    async with client.get("/room/meetings", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        meetings = await resp.json()
    types = {m["roomName"]: m["callType"] for m in meetings}
    assert types == {audio["roomName"]: "Audio", video["roomName"]: "Default"}
    await settled(client)  # the state file is written before the answer; the CLI reads it unlocked
    listed = invoke(["calls", "list", "--json"], {"VIDEOBRIDGE_STATE": str(settings.state_path)})
    assert listed.exit_code == 0, listed.output
    assert {c["roomName"]: c["callType"] for c in json.loads(listed.stdout)} == types
    by_room = lambda calls: sorted(calls, key=lambda c: c["roomName"])  # noqa: E731
    assert by_room(json.loads(listed.stdout)) == by_room(meetings), "one public view for the CLI and the admin API"
    human = invoke(["calls", "list"], {"VIDEOBRIDGE_STATE": str(settings.state_path)})
    assert "Audio" in human.stdout


# ---- MultiUser canisters (#9401) ----

@pytest.mark.parametrize(("caller", "callee", "caller_canister", "callee_canister"), [
    (CAROL_MU, ERIN_MU, MU_A, MU_B),  # both MultiUser, different canisters
    (CAROL_MU, DAVE_MU, MU_A, MU_A),  # both in one MultiUser canister
    (ALICE, ERIN_MU, ALICE, MU_B),  # a User canister calls a MultiUser user
    (ERIN_MU, BOB, MU_B, BOB),
], ids=["mu-to-mu", "same-canister", "user-to-mu", "mu-to-user"])
async def test_multi_user_callers_and_callees(ic_bridge, ic, signer, caller: str, callee: str,
                                              caller_canister: str, callee_canister: str) -> None:
    client = await ic_bridge()
    body = await start(client, signer, caller, {"Direct": callee}, audio_only=True)
    await end(client, signer, caller, {"Direct": callee})
    await settled(client)
    mid = int(body["messageId"])
    assert received(ic) == [
        (callee_canister, START, {"user_id": callee, "message_id": mid, "initiator": caller,
                                  "initiator_username": "alice", "initiator_display_name": "Caller",
                                  "max_duration": 3_600_000, "call_type": "Default", "audio_only": True,
                                  "initiator_avatar_id": None}),
        (caller_canister, END, {"user_id": caller, "them": callee, "message_id": mid}),
        (callee_canister, END, {"user_id": callee, "them": caller, "message_id": mid}),
    ]
    assert ic.bad_requests == [] and ic.refused == 0


# ---- VIDEOBRIDGE_LEGACY_USER_END ----

async def test_legacy_switch_speaks_to_pre_9401_user_canisters(ic_bridge, ic, signer) -> None:
    ic.add_users(ALICE, BOB, legacy=True)
    client = await ic_bridge(legacy_user_end=True)
    body = await start(client, signer, ALICE, {"Direct": BOB})
    await end(client, signer, ALICE, {"Direct": BOB})
    await settled(client)
    mid = int(body["messageId"])
    start_call, *ends = ic.calls
    assert start_call.ignored == ("audio_only", "user_id")  # extra fields an old canister skips
    assert (start_call.canister_id, start_call.args["initiator"]) == (BOB, ALICE)
    assert [(c.canister_id, c.args, c.ignored) for c in ends] == [
        (ALICE, {"user_id": BOB, "message_id": mid}, ()), (BOB, {"user_id": ALICE, "message_id": mid}, ())]
    assert await metric(client, 'videobridge_notifications_total{kind="end",outcome="success"} 2.0')


async def test_without_the_switch_a_pre_9401_canister_would_misread_the_end(ic_bridge, ic, signer) -> None:
    # Why the switch exists: an old canister skips `them` and reads `user_id` (now the owner) as the peer.
    ic.add_users(ALICE, legacy=True)
    client = await ic_bridge()
    await start(client, signer, ALICE, {"Direct": BOB})
    await end(client, signer, ALICE, {"Direct": BOB})
    await settled(client)
    on_alice = [c for c in ic.calls if c.canister_id == ALICE and c.method == END]
    assert [(c.args["user_id"], c.ignored) for c in on_alice] == [(ALICE, ("them",))]


async def test_the_switch_against_upgraded_canisters_is_refused_not_retried(ic_bridge, ic, signer) -> None:
    client = await ic_bridge(legacy_user_end=True)
    await start(client, signer, ALICE, {"Direct": BOB})
    await end(client, signer, ALICE, {"Direct": BOB})
    await settled(client)
    assert [c.method for c in ic.calls] == [START]  # both ends trapped on decoding (no `them`)
    assert await metric(client, 'videobridge_notifications_total{kind="end",outcome="rejected"} 2.0')


# ---- declines (Outbox.plan_decline + the store; the HTTP endpoint is built elsewhere) ----

async def queue_decline(client: TestClient, room: str, *, user: str = BOB, lui: str = LOCAL_USER_INDEX) -> None:
    bridge = bridge_of(client)
    await bridge.store.commit(await bridge.outbox.plan_decline(bridge.store.calls[room], user_id=user,
                                                         local_user_index=lui))
    bridge.outbox.wake()


@pytest.mark.parametrize(("chat", "chat_id"), [({"Group": GROUP}, {"Group": GROUP}),
                                               (CHATS["channel"], {"Channel": [COMMUNITY, 7]})],
                         ids=["group", "channel"])
async def test_a_decline_reaches_the_local_user_index(ic_bridge, ic, signer, chat, chat_id) -> None:
    client = await ic_bridge()
    body = await start(client, signer, ALICE, chat)
    await queue_decline(client, body["roomName"], user=CAROL_MU)
    await settled(client)
    mid = int(body["messageId"])
    assert received(ic)[1:] == [(LOCAL_USER_INDEX, DECLINED, {"user_id": CAROL_MU, "chat_id": chat_id,
                                                               "message_id": mid})]
    assert ic.calls[0].method == START  # behind the start, in order
    assert await metric(client, 'videobridge_notifications_total{kind="declined",outcome="success"} 1.0')
    assert body["roomName"] in bridge_of(client).store.calls  # a decline never ends a group call


async def test_a_decline_queued_while_the_ic_is_down_follows_the_start(ic_bridge, ic, signer) -> None:
    ic.go_down()
    client = await ic_bridge()
    body = await start(client, signer, ALICE, {"Group": GROUP})
    await queue_decline(client, body["roomName"])
    await asyncio.sleep(0.2)
    ic.heal()
    await settled(client)
    assert [c.method for c in ic.calls] == [START, DECLINED]


async def test_ending_a_call_that_never_reached_openchat_cancels_its_declines(ic_bridge, ic, signer) -> None:
    ic.go_down()
    client = await ic_bridge()
    body = await start(client, signer, ALICE, {"Group": GROUP})
    await queue_decline(client, body["roomName"])
    await queue_decline(client, body["roomName"], user=CAROL_MU)
    await asyncio.sleep(0.1)
    await end(client, signer, ALICE, {"Group": GROUP})
    assert not bridge_of(client).store.outbox  # start and both declines settled as cancelled, no end queued
    ic.heal()
    await asyncio.sleep(0.3)
    assert ic.calls == [] and ic.requests == 0
    assert await metric(client, 'videobridge_notifications_total{kind="declined",outcome="cancelled"} 2.0')
    assert await metric(client, 'videobridge_notifications_total{kind="start",outcome="cancelled"} 1.0')


# ---- canisters that do not exist ----

@pytest.mark.parametrize("how", ["replica", "boundary"])
async def test_a_canister_that_does_not_exist_is_logged_counted_and_settled(ic_bridge, ic, signer, how) -> None:
    nowhere = bytes_to_principal(bytes.fromhex("0000000000c00003" "0101"))
    if how == "boundary":
        ic.unrouted = {nowhere}
    client = await ic_bridge()
    body = await start(client, signer, ALICE, {"Group": GROUP})
    await settled(client)
    with structlog.testing.capture_logs() as logs:
        await queue_decline(client, body["roomName"], lui=nowhere)
        await settled(client)
        await asyncio.sleep(0.3)  # nothing is retried
    assert [c.method for c in ic.calls] == [START]
    requests = ic.requests
    await asyncio.sleep(0.3)
    assert ic.requests == requests
    # the start's own settle line may land in the capture too: it is logged after the outbox empties
    (entry,) = [e for e in logs if e.get("event") == "notification_settled" and e.get("method") == DECLINED]
    assert (entry["outcome"], entry["canister"], entry["code"]) == ("rejected", nowhere, 3)
    assert await metric(client, 'videobridge_notifications_total{kind="declined",outcome="rejected"} 1.0')
    assert not await metric(client, 'videobridge_notifications_total{kind="declined",outcome="retry"} 1')


# ---- upgrade safety: a state file the previous version wrote ----

def write_old_state(path: Path, *, message_ids: tuple[int, int, int, int]) -> None:
    """The outbox of a bridge from before SPEC §9, as it wrote it (no audio_only, no user_id/them)."""
    group_mid, channel_mid, direct_mid, mu_mid = message_ids
    old_start = {"initiator": ALICE, "initiator_username": "alice", "initiator_display_name": "Alice",
                 "max_duration": 3600000, "call_type": "Default"}

    def note(seq: int, mid: int, kind: str, canister_kind: str, canister: str, method: str,
             args: dict[str, Any]) -> dict[str, Any]:
        return {"seq": seq, "messageId": str(mid), "roomName": f"R{mid}", "kind": kind, "canisterKind": canister_kind,
                "canisterId": canister, "method": method, "args": args, "createdAt": 1.0}

    big = {"$int": str(direct_mid)}
    notes = [
        note(1, group_mid, "start", "group", GROUP, START, {"message_id": group_mid, **old_start}),
        note(2, channel_mid, "start", "community", COMMUNITY, START,
             {"channel_id": 7, "message_id": channel_mid, **old_start}),
        note(3, direct_mid, "start", "user", BOB, START,
             {"message_id": big, **old_start, "initiator_avatar_id": None}),
        note(4, direct_mid, "end", "user", ALICE, END, {"user_id": BOB, "message_id": big}),
        note(5, direct_mid, "end", "user", BOB, END, {"user_id": ALICE, "message_id": big}),
        # the old bridge addressed a MultiUser callee by its user id, a canister that does not exist
        note(6, mu_mid, "start", "user", ERIN_MU, START, {"message_id": mu_mid, **old_start, "initiator_avatar_id": 9}),
        note(7, group_mid, "end", "group", GROUP, END, {"message_id": group_mid}),
    ]
    path.write_text(json.dumps({"calls": {}, "outbox": {str(n["seq"]): n for n in notes}}))


@pytest.mark.parametrize("legacy", [False, True], ids=["new-canisters", "legacy-switch"])
async def test_notifications_queued_by_the_previous_version_are_delivered(ic_bridge, ic, settings, legacy) -> None:
    if legacy:
        ic.add_users(ALICE, BOB, legacy=True)
    mids = (11, 12, 2**64 - 5, 14)
    write_old_state(settings.state_path, message_ids=mids)
    client = await ic_bridge(legacy_user_end=legacy)
    await settled(client)
    group_mid, channel_mid, direct_mid, mu_mid = mids
    old_start = {"initiator": ALICE, "initiator_username": "alice", "initiator_display_name": "Alice",
                 "max_duration": 3600000, "call_type": "Default"}
    got = sorted(((c.canister_id, c.method, c.args["message_id"]), c.args) for c in ic.calls)
    expected_direct = (
        [((ALICE, END, direct_mid), {"user_id": BOB, "message_id": direct_mid}),
         ((BOB, END, direct_mid), {"user_id": ALICE, "message_id": direct_mid}),
         ((BOB, START, direct_mid), {"message_id": direct_mid, **old_start, "initiator_avatar_id": None})]
        if legacy else
        [((ALICE, END, direct_mid), {"user_id": ALICE, "them": BOB, "message_id": direct_mid}),
         ((BOB, END, direct_mid), {"user_id": BOB, "them": ALICE, "message_id": direct_mid}),
         ((BOB, START, direct_mid), {"user_id": BOB, "message_id": direct_mid, **old_start,
                                     "initiator_avatar_id": None, "audio_only": None})])
    assert got == sorted([
        ((COMMUNITY, START, channel_mid), {"channel_id": 7, "message_id": channel_mid, **old_start, "audio_only": None}),
        ((GROUP, END, group_mid), {"message_id": group_mid}),
        ((GROUP, START, group_mid), {"message_id": group_mid, **old_start, "audio_only": None}),
        ((MU_B, START, mu_mid), {"user_id": ERIN_MU, "message_id": mu_mid, **old_start, "initiator_avatar_id": 9,
                                 "audio_only": None}),
        *expected_direct,
    ])
    order = [(c.method, c.canister_id) for c in ic.calls if c.args["message_id"] == group_mid]
    assert order == [(START, GROUP), (END, GROUP)]
    assert await metric(client, 'videobridge_notifications_total{kind="start",outcome="success"} 4.0')
