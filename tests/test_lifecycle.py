"""Calls ending: Daily webhooks, the presence poller, end_meeting, expiry (over real HTTP)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import pytest
from helpers import (
    BOB,
    GROUP,
    HOOK_SECRET,
    bridge_of,
    end_token,
    eventually,
    get_token,
    join_token,
    signed_hook,
    start_token,
)
from redis_support import STORES, on_store

from videobridge.config import Settings
from videobridge.daily import DailyClient
from videobridge.emulator import DailyEmulator
from videobridge.models import CallState, NotificationKind
from videobridge.state.filestore import Change

EVENTS = ["meeting.started", "meeting.ended", "participant.joined", "participant.left"]


@pytest.fixture(name="settings", params=STORES)
def _settings_on_each_store(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


@pytest.fixture(name="emulator", params=[True, False], ids=["presence-lists-hidden", "presence-hides-hidden"])
async def _emulator(request: pytest.FixtureRequest, api_key: str) -> AsyncIterator[DailyEmulator]:
    """Whether GET /presence lists hidden Broadcast viewers is undocumented: run every test both ways."""
    emulator = DailyEmulator(api_key=api_key, hidden_in_presence=request.param)
    await emulator.start("127.0.0.1", 0)
    yield emulator
    await emulator.stop()




def ends(notifier) -> list:
    return [n for n in notifier.sent if n.kind is NotificationKind.END]


async def register_hook(client, emulator, api_key) -> None:
    async with DailyClient(api_key=api_key, base_url=emulator.url) as daily:
        await daily.create_webhook(url=str(client.make_url("/room/hook")),
                                   hmac=base64.b64encode(HOOK_SECRET).decode(), event_types=EVENTS)


def event(kind: str, room: str, event_id: str = "evt-1") -> bytes:
    return json.dumps({"version": "1.0.0", "type": kind, "id": event_id, "event_ts": time.time(),
                       "payload": {"room": room, "meeting_id": "m-1", "start_ts": time.time()}},
                      separators=(",", ":")).encode()


async def post_hook(client, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with client.post("/room/hook", data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_webhooks_drive_started_live_ended(bridge, signer, emulator, api_key, notifier):
    await register_hook(bridge, emulator, api_key)
    _, started = await get_token(bridge, start_token(signer))
    room = started["roomName"]
    store = bridge_of(bridge).store
    session = emulator.join(room, started["token"])
    await eventually(lambda: store.calls[room].state is CallState.LIVE)
    emulator.leave(room, session)
    await eventually(lambda: room not in store.calls)
    assert emulator.room(room) is None, "the Daily room is deleted"
    (end,) = ends(notifier)
    assert end.message_id == int(started["messageId"]) and end.canister_id == GROUP


async def test_poller_alone_ends_a_call_after_two_empty_polls(make_bridge, signer, emulator, notifier):
    client = await make_bridge(presence_interval=0.05, daily_hook_hmac=None)
    _, started = await get_token(client, start_token(signer))
    room = started["roomName"]
    store = bridge_of(client).store
    session = emulator.join(room, started["token"])
    await eventually(lambda: store.calls[room].state is CallState.LIVE)
    emulator.leave(room, session)
    await eventually(lambda: room not in store.calls)
    assert 1 == len(ends(notifier)) and emulator.room(room) is None


async def test_one_empty_poll_does_not_end_a_live_call(bridge, signer, emulator):
    _, started = await get_token(bridge, start_token(signer))
    room = started["roomName"]
    b = bridge_of(bridge)
    session = emulator.join(room, started["token"])
    assert await b.poller.poll_once()
    assert b.store.calls[room].state is CallState.LIVE
    emulator.leave(room, session)
    await b.poller.poll_once()
    await b.calls.drain()
    assert room in b.store.calls
    emulator.join(room, started["token"])  # back before the second poll
    await b.poller.poll_once()
    await b.poller.poll_once()
    await b.calls.drain()
    assert b.store.calls[room].state is CallState.LIVE


async def test_never_joined_call_ends_after_the_grace(make_bridge, signer, emulator, notifier):
    client = await make_bridge(presence_interval=0.05, start_grace=0.3)
    _, started = await get_token(client, start_token(signer))
    store = bridge_of(client).store
    await asyncio.sleep(0.1)
    assert started["roomName"] in store.calls
    await eventually(lambda: started["roomName"] not in store.calls)
    # the start never reached OpenChat before the end was planned? then both are cancelled;
    # here the recording notifier took the start at once, so one end is told
    assert [n.kind for n in notifier.sent] == [NotificationKind.START, NotificationKind.END]


async def test_expired_room_ends_its_call(bridge, signer, emulator):
    _, started = await get_token(bridge, start_token(signer))
    b = bridge_of(bridge)
    room = started["roomName"]
    emulator.join(room, started["token"])
    call = b.store.calls[room]
    await b.store.commit(Change(put_calls=[call.evolve(room_exp=int(time.time()) - 60)]))
    await b.poller.poll_once()
    await b.calls.drain()
    assert room not in b.store.calls


async def test_end_meeting_by_the_last_person_ends_at_once(bridge, signer, emulator, notifier):
    _, started = await get_token(bridge, start_token(signer))
    room = started["roomName"]
    emulator.join(room, started["token"])
    async with bridge.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer)}) as resp:
        assert resp.status == 200
        assert (await resp.json())["ended"] is True
    assert bridge_of(bridge).store.calls[room].state is CallState.ENDING, "durable before the answer"
    await bridge_of(bridge).calls.drain()
    assert room not in bridge_of(bridge).store.calls and emulator.room(room) is None
    assert 1 == len(ends(notifier))


async def test_end_meeting_while_others_are_in_keeps_the_call(bridge, signer, emulator, notifier):
    _, started = await get_token(bridge, start_token(signer))
    _, joined = await get_token(bridge, join_token(signer, BOB))
    room = started["roomName"]
    emulator.join(room, started["token"])
    emulator.join(room, joined["token"])
    async with bridge.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer)}) as resp:
        body = await resp.json()
    assert resp.status == 200 and body["ended"] is False and body["participants"] == 2
    assert room in bridge_of(bridge).store.calls and not ends(notifier)


async def test_end_meeting_takes_only_end_tokens_and_answers_without_a_call(bridge, signer):
    async with bridge.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer)}) as resp:
        assert resp.status == 200 and (await resp.json())["ended"] is False
    for jwt in (join_token(signer), start_token(signer)):  # SPEC §9: MarkVideoCallAsEnded only
        async with bridge.post("/room/end_meeting", headers={"x-auth-jwt": jwt}) as resp:
            assert resp.status == 401 and "not accepted here" in (await resp.json())["message"]


async def test_probe_and_unknown_events(bridge):
    status, _ = await post_hook(bridge, b'{"test":"test"}', {"Content-Type": "application/json"})
    assert 200 == status
    body = event("recording.started", "GAAAAAAHwqV0BAQ")
    status, answer = await post_hook(bridge, body, signed_hook(body))
    assert 200 == status and answer["status"] == "ignored"


async def test_forged_stale_and_reserialised_signatures_are_401(bridge, signer):
    _, started = await get_token(bridge, start_token(signer))
    room = started["roomName"]
    body = event("meeting.ended", room)
    forged = signed_hook(body, secret=b"not-the-secret")
    stale = signed_hook(body, timestamp=time.time() - 1260)  # Daily retries for ~15 min; we allow 20
    future = signed_hook(body, timestamp=time.time() + 600)
    stale_ms = signed_hook(body, timestamp=(time.time() - 1260))
    stale_ms["X-Webhook-Timestamp"] = str(int(stale_ms["X-Webhook-Timestamp"]) * 1000)
    stale_ms["X-Webhook-Signature"] = signed_hook(body)["X-Webhook-Signature"]
    pretty = json.dumps(json.loads(body), indent=2).encode()
    reserialised = signed_hook(pretty)  # signed over other bytes than the ones sent
    for headers in (forged, stale, future, stale_ms, reserialised, {}):
        status, answer = await post_hook(bridge, body, headers)
        assert 401 == status and answer["statusCode"] == 401
    await asyncio.sleep(0.05)
    assert room in bridge_of(bridge).store.calls


async def test_millisecond_timestamps_and_pretty_bodies_signed_raw_are_accepted(bridge, signer, notifier):
    _, started = await get_token(bridge, start_token(signer))
    body = json.dumps(json.loads(event("meeting.ended", started["roomName"])), indent=2).encode()
    headers = signed_hook(body)
    ms = str(int(time.time() * 1000))
    headers = signed_hook(body, timestamp=int(ms) / 1000)
    headers["X-Webhook-Timestamp"] = ms
    import hashlib
    import hmac

    headers["X-Webhook-Signature"] = base64.b64encode(
        hmac.new(HOOK_SECRET, ms.encode() + b"." + body, hashlib.sha256).digest()).decode()
    status, answer = await post_hook(bridge, body, headers)
    assert 200 == status and answer["status"] == "accepted"
    await bridge_of(bridge).calls.drain()
    assert started["roomName"] not in bridge_of(bridge).store.calls


async def test_replayed_event_ends_nothing_twice(bridge, signer, notifier):
    _, first = await get_token(bridge, start_token(signer))
    body = event("meeting.ended", first["roomName"], "evt-replayed")
    assert (await post_hook(bridge, body, signed_hook(body)))[1]["status"] == "accepted"
    await bridge_of(bridge).calls.drain()
    _, second = await get_token(bridge, start_token(signer))  # a new call in the same room
    assert second["messageId"] != first["messageId"]
    status, answer = await post_hook(bridge, body, signed_hook(body))
    assert 200 == status and answer["status"] == "duplicate"
    await bridge_of(bridge).calls.drain()
    assert first["roomName"] in bridge_of(bridge).store.calls
    assert [n.message_id for n in ends(notifier)] == [int(first["messageId"])]


async def test_webhooks_without_a_secret_are_503(make_bridge):
    client = await make_bridge(daily_hook_hmac=None)
    body = event("meeting.ended", "GAAAAAAHwqV0BAQ")
    status, answer = await post_hook(client, body, signed_hook(body))
    assert 503 == status and answer["statusCode"] == 503
    status, _ = await post_hook(client, b'{"test":"test"}', {})
    assert 200 == status


async def test_poller_survives_daily_errors_and_429_bursts(make_bridge, signer, emulator):
    client = await make_bridge(presence_interval=0.05, daily_hook_hmac=None)
    _, started = await get_token(client, start_token(signer))
    room = started["roomName"]
    b = bridge_of(client)
    session = emulator.join(room, started["token"])
    await eventually(lambda: b.store.calls[room].state is CallState.LIVE)
    emulator.fail_next("GET /presence", 503, times=6)
    emulator.fail_next("GET /presence", 429, times=6, retry_after=0.01)
    await eventually(lambda: b.poller.failures > 0, timeout=10)
    emulator.leave(room, session)
    await eventually(lambda: room not in b.store.calls, timeout=15)


async def test_ending_races_end_once(bridge, signer, emulator, notifier):
    _, started = await get_token(bridge, start_token(signer))
    room = started["roomName"]
    b = bridge_of(bridge)
    results = await asyncio.gather(*(b.calls.end_call(room, "race") for _ in range(5)))
    assert results.count(True) >= 1 and room not in b.store.calls
    assert 1 == len(ends(notifier))
    assert 1 == emulator.requests["DELETE /rooms/:name"]


async def test_oversized_webhook_body_is_413(bridge):
    body = b'{"type":"meeting.ended","pad":"' + b"x" * 70_000 + b'"}'
    status, answer = await post_hook(bridge, body, signed_hook(body))
    assert 413 == status and answer["statusCode"] == 413


async def test_a_start_while_the_last_calls_room_is_still_being_deleted_costs_one_daily_call(bridge, signer, emulator,
                                                                                          notifier):
    _, first = await get_token(bridge, start_token(signer))
    room = first["roomName"]
    emulator.join(room, first["token"])
    emulator.fail_next("DELETE /rooms/:name", 400, times=1, error="invalid-request-error")  # not retried
    async with bridge.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer)}) as resp:
        assert (await resp.json())["ended"] is True
    b = bridge_of(bridge)
    await b.calls.drain()
    assert b.store.calls[room].state is CallState.ENDING and emulator.room(room) is not None, "delete failed"
    before = dict(emulator.requests)
    status, second = await get_token(bridge, start_token(signer, user=BOB))
    assert status == 200 and second["joining"] is False and second["messageId"] != first["messageId"]
    spent = {k: v - before.get(k, 0) for k, v in emulator.requests.items() if v != before.get(k, 0)}
    assert spent == {"POST /rooms/:name": 1}, "the leftover room is refreshed, not created, looked up and updated"
    assert emulator.room(room)["config"]["exp"] == b.store.calls[room].room_exp
    await b.poller.poll_once()  # the old call's delete retry must leave the new call's room alone
    await b.calls.drain()
    assert b.store.calls[room].message_id == int(second["messageId"]) and emulator.room(room) is not None
