"""Calls against a Daily that behaves like production at the edges (over real HTTP): reused
rooms, clocks that disagree, hidden Broadcast viewers, webhook retries with old timestamps."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from helpers import (
    ALICE,
    BOB,
    HOOK_SECRET,
    bridge_of,
    end_token,
    eventually,
    get_token,
    join_token,
    start_token,
)

from videobridge.daily import DailyClient
from videobridge.emulator import DailyEmulator
from videobridge.models import Call, CallState, CallType, NotificationKind
from videobridge.roomconfig import room_properties
from videobridge.web import make_app

EVENTS = ["meeting.started", "meeting.ended", "participant.joined", "participant.left"]
BROADCAST_ONLY = ("enable_hidden_participants", "enable_mesh_sfu", "enable_terse_logging",
                  "experimental_optimize_large_calls", "owner_only_broadcast")




def ends(notifier: Any) -> list[Any]:
    return [n for n in notifier.sent if n.kind is NotificationKind.END]


async def register_hook(url: str, emulator: DailyEmulator, api_key: str, **options: Any) -> None:
    async with DailyClient(api_key=api_key, base_url=emulator.url) as daily:
        await daily.create_webhook(url=url, hmac=base64.b64encode(HOOK_SECRET).decode(), event_types=EVENTS,
                                   **options)


@pytest.fixture(name="started_emulators")
async def _started_emulators() -> AsyncIterator[list[DailyEmulator]]:
    emulators: list[DailyEmulator] = []
    yield emulators
    for emu in emulators:
        await emu.stop()


async def emulator_with(started: list[DailyEmulator], api_key: str, **options: Any) -> DailyEmulator:
    emu = DailyEmulator(api_key=api_key, **options)
    await emu.start()
    started.append(emu)
    return emu


# -- a room left over in Daily ---------------------------------------------------------------------


async def test_a_leftover_broadcast_room_is_reset_for_a_default_call(bridge, signer, emulator, api_key):
    now = int(time.time())
    async with DailyClient(api_key=api_key, base_url=emulator.url) as daily:
        left = await daily.create_room("GAAAAAAHwqV0BAQ", privacy="public",
                                       properties={**room_properties(CallType.BROADCAST, nbf=now - 600, exp=now + 60),
                                                   "enable_chat": True})
    status, started = await get_token(bridge, start_token(signer))  # the group's room, as it happens
    assert status == 200 and started["roomName"] == left.name and started["joining"] is False
    room = emulator.room(left.name)
    assert room is not None and room["privacy"] == "private"
    config = room["config"]
    assert not set(config) & {*BROADCAST_ONLY, "enable_chat"}, config
    assert config["max_participants"] == 20 and config["exp"] > now + 3000
    emulator.join(left.name, started["token"])


async def test_a_bridge_clock_running_ahead_does_not_lock_people_out(settings, notifier, signer, emulator):
    app = make_app(settings, notifier=notifier, clock=lambda: time.time() + 30)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        _, started = await get_token(client, start_token(signer))
        emulator.join(started["roomName"], started["token"])  # Daily would refuse before nbf
    finally:
        await client.close()


# -- Daily's clock two minutes off ------------------------------------------------------------------


@pytest.mark.parametrize("skew", [120.0, -120.0], ids=["daily-ahead", "daily-behind"])
async def test_meeting_ended_ends_its_call_whatever_the_clocks(skew, make_bridge, signer, api_key, notifier,
                                                               started_emulators):
    emu = await emulator_with(started_emulators, api_key, clock=lambda: time.time() + skew)
    client = await make_bridge(daily_api_url=emu.url)
    await register_hook(str(client.make_url("/room/hook")), emu, api_key)
    _, started = await get_token(client, start_token(signer))
    room = started["roomName"]
    store = bridge_of(client).store
    session = emu.join(room, started["token"])
    await eventually(lambda: store.calls[room].meeting_id is not None)
    assert store.calls[room].state is CallState.LIVE
    emu.leave(room, session)
    await eventually(lambda: room not in store.calls)
    assert [n.message_id for n in ends(notifier)] == [int(started["messageId"])]


@pytest.mark.parametrize("forget", [False, True], ids=["known-meeting", "after-restart"])
@pytest.mark.parametrize("skew", [120.0, -120.0], ids=["daily-ahead", "daily-behind"])
async def test_a_late_meeting_ended_of_the_previous_call_ends_nothing(skew, forget, make_bridge, signer, api_key,
                                                                      notifier, started_emulators):
    emu = await emulator_with(started_emulators, api_key, clock=lambda: time.time() + skew,
                              meeting_ended_delay=0.3)
    client = await make_bridge(daily_api_url=emu.url)
    await register_hook(str(client.make_url("/room/hook")), emu, api_key)
    b = bridge_of(client)
    _, first = await get_token(client, start_token(signer))
    room = first["roomName"]
    session = emu.join(room, first["token"])
    await eventually(lambda: b.store.calls[room].meeting_id is not None)
    await asyncio.sleep(1.2)  # a meeting of some length: its start is well before the next call's
    emu.leave(room, session)  # meeting.ended follows 0.3 s later...
    async with client.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer)}) as resp:
        assert (await resp.json())["ended"] is True  # ...but the call is ended at once
    if forget:  # as after a restart: no memory of the first call's meeting id
        b.calls.meetings.forget()
    _, second = await get_token(client, start_token(signer))
    assert second["joining"] is False
    await emu.drain_webhooks()  # the first meeting's meeting.ended arrives
    await b.calls.drain()
    assert room in b.store.calls and b.store.calls[room].message_id == int(second["messageId"]), \
        "the new call was ended by the previous meeting's meeting.ended"
    again = emu.join(room, second["token"])
    await eventually(lambda: b.store.calls[room].meeting_id is not None)
    emu.leave(room, again)
    await eventually(lambda: room not in b.store.calls)
    assert [n.message_id for n in ends(notifier)] == [int(first["messageId"]), int(second["messageId"])]


# -- hidden Broadcast viewers, listed in presence or not -----------------------------------------


@pytest.fixture(name="hidden", params=[True, False], ids=["presence-lists-hidden", "presence-hides-hidden"])
def _hidden(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def broadcast(make_bridge, signer, api_key, started, hidden):
    emu = await emulator_with(started, api_key, hidden_in_presence=hidden)
    client = await make_bridge(daily_api_url=emu.url)
    _, presenter = await get_token(client, start_token(signer, ALICE, call_type="Broadcast"))
    _, viewer = await get_token(client, join_token(signer, BOB))
    return emu, client, presenter, viewer


async def test_a_presenter_dropping_out_does_not_end_a_watched_broadcast(hidden, make_bridge, signer, api_key,
                                                                         notifier, started_emulators):
    emu, client, presenter, viewer = await broadcast(make_bridge, signer, api_key, started_emulators, hidden)
    room = presenter["roomName"]
    b = bridge_of(client)
    host = emu.join(room, presenter["token"])
    watcher = emu.join(room, viewer["token"])
    assert await b.poller.poll_once()
    assert b.store.calls[room].meeting_id is not None
    emu.leave(room, host)  # the presenter's connection drops for a minute
    for _ in range(3):
        assert await b.poller.poll_once()
        await b.calls.drain()
    assert room in b.store.calls and emu.room(room) is not None and not ends(notifier)
    assert [p.session_id for p in emu.participants(room)] == [watcher]
    host = emu.join(room, presenter["token"])  # back
    emu.leave(room, watcher)
    emu.leave(room, host)
    for _ in range(2):
        assert await b.poller.poll_once()
        await b.calls.drain()
    assert room not in b.store.calls and emu.room(room) is None and len(ends(notifier)) == 1


async def test_end_meeting_never_cuts_a_broadcast_with_viewers(hidden, make_bridge, signer, api_key, notifier,
                                                               started_emulators):
    emu, client, presenter, viewer = await broadcast(make_bridge, signer, api_key, started_emulators, hidden)
    room = presenter["roomName"]
    b = bridge_of(client)
    host = emu.join(room, presenter["token"])
    watcher = emu.join(room, viewer["token"])
    assert await b.poller.poll_once()  # live, with its meeting id

    async def end() -> dict[str, Any]:
        async with client.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer, ALICE)}) as resp:
            assert resp.status == 200
            return await resp.json()

    assert (await end())["ended"] is False
    assert room in b.store.calls and not ends(notifier)
    emu.leave(room, watcher)
    b.calls.presence.forget(room)  # as the participant.left webhook does (end_meeting reuses a read < 2 s old)
    answer = await end()
    if hidden:  # presence showed the viewer, so it is trusted to show everyone
        assert answer["ended"] is True
    else:  # it cannot be told from a viewer still watching: the broadcast ends when the room empties
        assert answer["ended"] is False
        emu.leave(room, host)
        for _ in range(2):
            assert await b.poller.poll_once()
            await b.calls.drain()
    await b.calls.drain()
    assert room not in b.store.calls and len(ends(notifier)) == 1


async def test_end_meeting_of_a_broadcast_nobody_watched(hidden, make_bridge, signer, api_key, notifier,
                                                          started_emulators):
    emu, client, presenter, _ = await broadcast(make_bridge, signer, api_key, started_emulators, hidden)
    emu.join(presenter["roomName"], presenter["token"])
    async with client.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer, ALICE)}) as resp:
        assert (await resp.json())["ended"] is True
    await bridge_of(client).calls.drain()
    assert len(ends(notifier)) == 1


# -- webhook retries ---------------------------------------------------------------------------------


async def test_a_retried_webhook_with_its_original_timestamp_is_accepted(settings, notifier, signer, api_key,
                                                                        started_emulators):
    """Daily retries for up to ~15 min; here the retry carries the first attempt's timestamp,
    14 minutes old by the bridge's clock."""
    emu = await emulator_with(started_emulators, api_key, webhook_retry_timestamp="original", webhook_backoff=0.2)
    later = [0.0]
    app = make_app(replace(settings, daily_api_url=emu.url), notifier=notifier, clock=lambda: time.time() + later[0])
    bridge = TestClient(TestServer(app, host="127.0.0.1"))
    await bridge.start_server()
    posts: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        """In front of /room/hook: the first event delivery is lost, then 14 minutes pass."""
        body = await request.read()
        if body != b'{"test":"test"}':
            posts.append(len(body))
            if len(posts) == 1:
                later[0] = 14 * 60
                return web.Response(status=502)
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-webhook")}
        async with ClientSession() as http, http.post(bridge.make_url("/room/hook"), data=body,
                             headers={**headers, "Content-Type": "application/json"}) as resp:
            return web.Response(status=resp.status, body=await resp.read())

    proxy_app = web.Application()
    proxy_app.router.add_post("/hook", flaky)
    proxy = TestClient(TestServer(proxy_app, host="127.0.0.1"))
    await proxy.start_server()
    try:
        await register_hook(str(proxy.make_url("/hook")), emu, api_key, retry_type="exponential")
        _, started = await get_token(bridge, start_token(signer))
        room = started["roomName"]
        calls = bridge_of(bridge).store.calls
        session = emu.join(room, started["token"])  # meeting.started: lost once, then retried
        await eventually(lambda: calls[room].meeting_id is not None)
        emu.leave(room, session)  # meeting.ended, also signed 14 minutes before the bridge's now
        await eventually(lambda: room not in calls)
        assert len(ends(notifier)) == 1
    finally:
        await proxy.close()
        await bridge.close()


# -- the meeting id in the state file ------------------------------------------------------------------


def test_calls_keep_their_meeting_id_and_old_state_files_load(signer):
    from helpers import GROUP

    from videobridge.chats import GroupChat
    from videobridge.models import Initiator

    call = Call(room_name="r", message_id=7, chat=GroupChat(GROUP), call_type=CallType.DEFAULT, started_by=ALICE,
                initiator=Initiator(username="alice"), is_diamond=False, state=CallState.LIVE, created_at=1.0,
                room_exp=3601, meeting_id="f2aa1ade-ff80-464c-b46e-50ffa577d48d")
    saved = call.to_json()
    assert saved["dailyMeetingId"] == call.meeting_id and Call.from_json(saved) == call
    del saved["dailyMeetingId"]  # a state file written before the field existed
    assert Call.from_json(saved) == replace(call, meeting_id=None)
