"""The Daily emulator itself: auth, rooms, expiry, webhooks (probe, signatures, circuit breaker,
retries), meeting events, fault injection and the /_emulator/ control routes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import daily_fixtures
import pytest
from daily_fixtures import API_KEY, WRONG_KEY, Receiver, hour_from_now

from videobridge.daily import DailyClient, DailyNotFound, DailyRejected, TokenGrant, TokenMinter
from videobridge.emulator import DailyEmulator, EmulatorError

# Shared fixtures (module-level names so pytest finds them; they shadow conftest.py's).
client = daily_fixtures.client
emulator = daily_fixtures.emulator
receiver = daily_fixtures.receiver

HMAC = base64.b64encode(b"a-shared-webhook-secret-32-bytes").decode()
AUTH = {"Authorization": f"Bearer {API_KEY}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def verify(received: Any) -> dict[str, Any]:
    """The receiving side of daily-api.md §6.4, exactly as the bridge must do it."""
    ts = received.headers["X-Webhook-Timestamp"]
    key = base64.b64decode(HMAC)
    expected = base64.b64encode(hmac.new(key, ts.encode() + b"." + received.body, hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(expected, received.headers["X-Webhook-Signature"])
    assert received.body == json.dumps(json.loads(received.body), separators=(",", ":")).encode()  # compact
    return json.loads(received.body)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _call(http: aiohttp.ClientSession, emu: DailyEmulator, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    kw.setdefault("headers", AUTH)
    async with http.request(method, f"{emu.base_url}{path}", **kw) as resp:
        return resp.status, await resp.json()


async def _token(emu: DailyEmulator, room: str, *, owner: bool = False, user: str = "u1", broadcast: bool = False) -> str:
    minter = TokenMinter(api_key=API_KEY, domain_id=emu.domain_id, client=None, clock=emu.clock)
    room_exp = (emu.room(room) or {}).get("config", {}).get("exp") or hour_from_now()
    return await minter.mint(
        TokenGrant(room_name=room, user_id=user, user_name=user.upper(), owner=owner, broadcast=broadcast, exp=room_exp)
    )


# -- auth and errors -----------------------------------------------------------------------------


async def test_auth_errors(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    assert await _call(http, emulator, "GET", "/", headers={}) == (
        400, {"error": "authorization-header-error", "info": "bad Authorization header format"},
    )  # fmt: skip
    status, body = await _call(http, emulator, "GET", "/rooms", headers={"Authorization": API_KEY})
    assert (status, body["error"]) == (400, "authorization-header-error")  # missing "Bearer "
    status, body = await _call(http, emulator, "GET", "/", headers={"Authorization": f"Bearer {WRONG_KEY}"})
    assert (status, body["error"]) == (401, "authentication-error")
    status, body = await _call(http, emulator, "GET", "/")
    assert status == 200 and body == {"domain_name": "openchat", "domain_id": emulator.domain_id, "config": {}}
    assert emulator.requests["GET /"] == 3 and emulator.requests["GET /rooms"] == 1


async def test_unknown_route_and_bad_json(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    status, body = await _call(http, emulator, "GET", "/nope")
    assert status == 404 and set(body) == {"error", "info"}
    status, body = await _call(http, emulator, "POST", "/rooms", data=b"{not json", headers=AUTH)
    assert (status, body["error"]) == (400, "json-parsing-error")
    status, body = await _call(http, emulator, "POST", "/rooms", json={"name": "x" * 129})
    assert (status, body["error"]) == (400, "invalid-request-error")
    status, body = await _call(http, emulator, "POST", "/rooms", json={"properties": {"exp": "soon"}})
    assert status == 400 and "exp" in body["info"]


async def test_random_room_name(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    status, room = await _call(http, emulator, "POST", "/rooms", json={})
    assert status == 200 and len(room["name"]) == 20 and room["privacy"] == "public" and room["api_created"]
    assert room["url"] == f"https://openchat.daily.co/{room['name']}" and room["config"] == {}
    assert emulator.room(room["name"]) == room


async def test_listing_cursor_and_total(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    for name in ("a", "b", "c"):
        await _call(http, emulator, "POST", "/rooms", json={"name": name})
    status, page = await _call(http, emulator, "GET", "/rooms", params={"limit": "2"})
    assert status == 200 and page["total_count"] == 3 and [r["name"] for r in page["data"]] == ["c", "b"]
    status, page = await _call(http, emulator, "GET", "/rooms", params={"starting_after": page["data"][-1]["id"]})
    assert [r["name"] for r in page["data"]] == ["a"]
    status, _ = await _call(http, emulator, "GET", "/rooms", params={"limit": "101"})
    assert status == 400


# -- expiry --------------------------------------------------------------------------------------


async def test_expired_rooms_behave_as_deleted() -> None:
    clock = FakeClock()
    emu = DailyEmulator(api_key=API_KEY, clock=clock)
    url = await emu.start()
    try:
        async with DailyClient(api_key=API_KEY, base_url=url, delete_rate_per_second=100) as c:
            await c.create_room("old", properties={"exp": int(clock.now) + 10, "eject_at_room_exp": True})
            await c.create_room("keep", properties={"exp": int(clock.now) + 1000})
            session = emu.join("old", await _token(emu, "old"))
            clock.now += 11
            with pytest.raises(DailyNotFound):
                await c.get_room("old")
            assert [r.name async for r in c.list_rooms()] == ["keep"]
            assert emu.room("old") is None and list(emu.rooms) == ["keep"]
            assert emu.participants("old") == []  # eject_at_room_exp
            with pytest.raises(EmulatorError, match="exp-room"):
                emu.join("old", await _token(emu, "keep"))
            assert await c.delete_room("old") is False  # 404 (with deleted: true) all the same
            await c.create_room("old", properties={})  # the name is free again
            assert session not in {p.session_id for p in emu.participants("old")}
    finally:
        await emu.stop()


async def test_expired_room_delete_says_deleted(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    emu = DailyEmulator(api_key=API_KEY, clock=clock)
    await emu.start()
    try:
        await _call(http, emu, "POST", "/rooms", json={"name": "r", "properties": {"exp": int(clock.now) + 1}})
        clock.now += 2
        assert await _call(http, emu, "DELETE", "/rooms/r") == (
            404, {"error": "not-found", "info": "room r was not found", "deleted": True},
        )  # fmt: skip
    finally:
        await emu.stop()


# -- webhooks ------------------------------------------------------------------------------------


async def test_webhook_probe(client: DailyClient, emulator: DailyEmulator, receiver: Receiver) -> None:
    receiver.status = 500
    with pytest.raises(DailyRejected) as caught:
        await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=["meeting.started"])
    assert caught.value.status == 400 and emulator.webhooks == []
    assert receiver.received[0].body == b'{"test":"test"}'

    receiver.status = 200
    hook = await client.create_webhook(url=receiver.url, hmac=None, event_types=["meeting.started"])
    assert hook.hmac and base64.b64decode(hook.hmac)  # generated when absent
    with pytest.raises(DailyRejected, match="only have one webhook"):
        await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=["meeting.started"])


async def test_webhook_probe_must_answer_quickly(receiver: Receiver) -> None:
    emu = DailyEmulator(api_key=API_KEY, probe_timeout=0.2)
    url = await emu.start()
    try:
        receiver.delay = 1.0
        async with DailyClient(api_key=API_KEY, base_url=url) as c:
            with pytest.raises(DailyRejected):
                await c.create_webhook(url=receiver.url, hmac=HMAC, event_types=["meeting.ended"])
    finally:
        await emu.stop()


async def test_signed_delivery_of_meeting_events(client: DailyClient, emulator: DailyEmulator, receiver: Receiver) -> None:
    events = ["meeting.started", "meeting.ended", "participant.joined", "participant.left"]
    await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=events)
    exp = hour_from_now()
    await client.create_room("room1", properties={"exp": exp, "eject_at_room_exp": True})
    alice = emulator.join("room1", await _token(emulator, "room1", owner=True, user="alice"))
    bob = emulator.join("room1", await _token(emulator, "room1", user="bob"))
    emulator.leave("room1", bob)
    emulator.leave("room1", alice)
    await emulator.drain_webhooks()

    delivered = [verify(r) for r in receiver.events]
    assert [e["type"] for e in delivered] == [
        "meeting.started", "participant.joined", "participant.joined", "participant.left", "participant.left",
        "meeting.ended",
    ]  # fmt: skip
    assert len({e["id"] for e in delivered}) == 6
    assert all(e["version"] == "1.0.0" and isinstance(e["event_ts"], float) for e in delivered)
    started, joined, ended = delivered[0], delivered[1], delivered[-1]
    meeting_id = started["payload"]["meeting_id"]
    assert started["id"] == f"met-sta-{meeting_id}-{int(started['payload']['start_ts'])}"
    assert started["payload"]["room"] == "room1"
    assert ended["payload"]["meeting_id"] == meeting_id and ended["payload"]["end_ts"] >= ended["payload"]["start_ts"]
    assert joined["id"].startswith("ptcpt-join-alice-")
    assert joined["payload"] | {"joined_at": 0} == {
        "room": "room1", "user_id": "alice", "user_name": "ALICE", "session_id": alice, "joined_at": 0,
        "will_eject_at": exp, "owner": True,
        "permissions": {"hasPresence": True, "canSend": True, "canReceive": {"base": True}, "canAdmin": True},
    }  # fmt: skip
    left = delivered[3]
    assert left["payload"]["session_id"] == bob and left["payload"]["duration"] >= 0
    [hook] = await client.list_webhooks()
    assert hook.failed_count == 0 and hook.last_moment_pushed is not None
    assert all(r.headers["X-Webhook-Timestamp"].isdigit() for r in receiver.received)


async def test_only_subscribed_events_and_hidden_participants(
    client: DailyClient, emulator: DailyEmulator, receiver: Receiver
) -> None:
    await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=["participant.joined"])
    await client.create_room("show", properties={"enable_hidden_participants": True})
    emulator.join("show", await _token(emulator, "show", owner=True, user="host"))
    emulator.join("show", await _token(emulator, "show", user="viewer", broadcast=True))
    await emulator.drain_webhooks()
    assert [verify(r)["payload"]["user_id"] for r in receiver.events] == ["host"]  # hidden: no events
    assert {p.user_id for p in await client.room_presence("show")} == {"host", "viewer"}


async def test_meeting_ended_waits_for_reconnects(client: DailyClient, emulator: DailyEmulator, receiver: Receiver) -> None:
    emulator.meeting_ended_delay = 0.2
    await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=["meeting.started", "meeting.ended"])
    await client.create_room("r", properties={})
    first = emulator.join("r", await _token(emulator, "r"))
    emulator.leave("r", first)
    second = emulator.join("r", await _token(emulator, "r"))  # back within the grace period
    await asyncio.sleep(0.3)
    emulator.leave("r", second)
    await emulator.drain_webhooks()
    kinds = [verify(r)["type"] for r in receiver.events]
    assert kinds == ["meeting.started", "meeting.ended"]


async def test_circuit_breaker_and_reactivation(client: DailyClient, emulator: DailyEmulator, receiver: Receiver) -> None:
    hook = await client.create_webhook(
        url=receiver.url, hmac=HMAC, event_types=["participant.joined"], retry_type="circuit-breaker"
    )
    await client.create_room("r", properties={})
    receiver.status = 500
    for user in ("a", "b", "c", "d", "e"):
        emulator.join("r", await _token(emulator, "r", user=user))
    await emulator.drain_webhooks()
    assert len(receiver.events) == 3  # one attempt each, then the breaker opened
    [failed] = await client.list_webhooks()
    assert (failed.state, failed.failed_count) == ("FAILED", 3)
    emulator.join("r", await _token(emulator, "r", user="f"))
    await emulator.drain_webhooks()
    assert len(receiver.events) == 3

    with pytest.raises(DailyRejected):  # the endpoint still fails the probe
        await client.update_webhook(hook.uuid, url=receiver.url)
    receiver.status = 200
    active = await client.update_webhook(hook.uuid, url=receiver.url)
    assert (active.state, active.failed_count) == ("ACTIVE", 0)
    emulator.join("r", await _token(emulator, "r", user="g"))
    await emulator.drain_webhooks()
    assert verify(receiver.events[-1])["payload"]["user_id"] == "g"


async def test_sporadic_failures_reset_the_breaker(
    client: DailyClient, emulator: DailyEmulator, receiver: Receiver
) -> None:
    await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=["participant.joined"], retry_type="circuit-breaker")
    await client.create_room("r", properties={})
    for user, status in [("a", 500), ("b", 500), ("c", 200), ("d", 500), ("e", 500)]:
        receiver.status = status
        emulator.join("r", await _token(emulator, "r", user=user))
        await emulator.drain_webhooks()
    [hook] = await client.list_webhooks()
    assert (hook.state, hook.failed_count) == ("ACTIVE", 2)


async def test_exponential_retries_each_message(client: DailyClient, emulator: DailyEmulator, receiver: Receiver) -> None:
    await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=["participant.joined"], retry_type="exponential")
    await client.create_room("r", properties={})
    receiver.status = 503
    emulator.join("r", await _token(emulator, "r", user="lost"))
    await emulator.drain_webhooks()
    assert len(receiver.events) == 5  # five attempts, then the message is dropped
    [hook] = await client.list_webhooks()
    assert (hook.state, hook.failed_count) == ("ACTIVE", 5)  # never trips
    receiver.status = 200
    emulator.join("r", await _token(emulator, "r", user="kept"))
    await emulator.drain_webhooks()
    assert verify(receiver.events[-1])["payload"]["user_id"] == "kept"
    [hook] = await client.list_webhooks()
    assert hook.failed_count == 0


async def test_delivery_does_not_block_and_stop_cancels(receiver: Receiver) -> None:
    emu = DailyEmulator(api_key=API_KEY)
    url = await emu.start()
    async with DailyClient(api_key=API_KEY, base_url=url) as c:
        await c.create_webhook(url=receiver.url, hmac=HMAC, event_types=["participant.joined"])
        await c.create_room("r", properties={})
        receiver.delay = 10.0  # a stuck receiver
        emu.join("r", await _token(emu, "r"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert (await c.get_room("r")).name == "r"
        await emu.stop()
        assert time.monotonic() - started < 2.0


async def test_delete_room_kicks_everyone(client: DailyClient, emulator: DailyEmulator, receiver: Receiver) -> None:
    await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=["participant.left", "meeting.ended"])
    await client.create_room("r", properties={})
    emulator.join("r", await _token(emulator, "r", user="a"))
    emulator.join("r", await _token(emulator, "r", user="b"))
    assert await client.delete_room("r") is True
    await emulator.drain_webhooks()
    assert emulator.participants("r") == [] and await client.presence() == {}
    assert [verify(r)["type"] for r in receiver.events] == ["participant.left", "participant.left", "meeting.ended"]


async def test_eject_fires_participant_left_and_keeps_the_meeting(
    client: DailyClient, emulator: DailyEmulator, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    await client.create_webhook(url=receiver.url, hmac=HMAC, event_types=["participant.left", "meeting.ended"])
    await client.create_room("r", properties={})
    a = emulator.join("r", await _token(emulator, "r", user="a"))
    b1 = emulator.join("r", await _token(emulator, "r", user="b"))
    b2 = emulator.join("r", await _token(emulator, "r", user="b"))
    status, body = await _call(http, emulator, "POST", "/rooms/r/eject", json={"ids": [b1, "absent"]})
    assert status == 200 and body == {"ejectedIds": [b1]}
    status, body = await _call(http, emulator, "POST", "/rooms/r/eject", json={"user_ids": ["b"]})
    assert status == 200 and body == {"ejectedIds": [b2]}
    await emulator.drain_webhooks()
    left = [verify(r) for r in receiver.events]
    assert [(e["type"], e["payload"]["session_id"]) for e in left] == [("participant.left", b1), ("participant.left", b2)]
    assert [p.session_id for p in emulator.participants("r")] == [a], "the meeting goes on"
    for bad in ({}, {"ids": "x"}, {"ids": [1]}, {"ids": ["x"] * 101}, {"ids": [a], "ban": True}):
        status, body = await _call(http, emulator, "POST", "/rooms/r/eject", json=bad)
        assert status == 400 and body["error"] == "invalid-request-error", bad
    status, _ = await _call(http, emulator, "POST", "/rooms/gone/eject", json={"ids": [a]})
    assert status == 404 and len(emulator.participants("r")) == 1


# -- faults --------------------------------------------------------------------------------------


async def test_fail_next(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.fail_next("POST /rooms", 429, retry_after=1.5)
    emulator.fail_next(None, 502, times=2, error="server-error")
    async with http.post(f"{emulator.base_url}/rooms", json={}, headers=AUTH) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "1.5"
        assert (await resp.json())["error"] == "rate-limit-error"
    assert (await _call(http, emulator, "GET", "/presence"))[0] == 502
    assert (await _call(http, emulator, "POST", "/rooms", json={}))[0] == 502
    assert (await _call(http, emulator, "POST", "/rooms", json={}))[0] == 200
    assert emulator.requests["POST /rooms"] == 3


async def test_hang_next_and_latency(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.hang_next("GET /presence", seconds=5)
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.2):
            await _call(http, emulator, "GET", "/presence")
    started = time.monotonic()
    assert (await _call(http, emulator, "GET", "/presence"))[0] == 200  # only the next one hangs
    assert time.monotonic() - started < 2.0  # generous: a hung one would take the 5 s set above
    emulator.latency = 0.2
    started = time.monotonic()
    await _call(http, emulator, "GET", "/")
    assert time.monotonic() - started >= 0.2


# -- presence and control routes -----------------------------------------------------------------


async def test_presence_shape(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    await _call(http, emulator, "POST", "/rooms", json={"name": "r"})
    session = emulator.join("r", await _token(emulator, "r", user="ann"))
    status, body = await _call(http, emulator, "GET", "/presence")
    [person] = body["r"]
    assert status == 200 and person["id"] == session and person["userId"] == "ann" and person["userName"] == "ANN"
    assert set(person) == {"room", "id", "userId", "userName", "mtgSessionId", "joinTime", "duration"}
    status, body = await _call(http, emulator, "GET", "/rooms/r/presence", params={"userId": "nobody"})
    assert body == {"total_count": 0, "data": []}


async def test_control_routes(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    await _call(http, emulator, "POST", "/rooms", json={"name": "r"})
    token = await _token(emulator, "r", owner=True)
    before = sum(emulator.requests.values())
    status, body = await _call(http, emulator, "POST", "/_emulator/rooms/r/join", json={"token": token}, headers={})
    assert status == 200
    session = body["session_id"]
    status, stats = await _call(http, emulator, "GET", "/_emulator/stats", headers={})
    assert stats["rooms"] == ["r"] and stats["participants"]["r"][0]["session_id"] == session
    assert stats["requests"]["POST /rooms"] == 1
    status, body = await _call(http, emulator, "POST", "/_emulator/rooms/r/join", json={"token": "bad"}, headers={})
    assert (status, body["error"]) == (400, "invalid-token")
    status, _ = await _call(http, emulator, "POST", "/_emulator/rooms/r/leave", json={"session_id": session}, headers={})
    assert status == 200 and emulator.participants("r") == []
    status, _ = await _call(http, emulator, "POST", "/_emulator/rooms/r/leave", json={"session_id": session}, headers={})
    assert status == 404
    assert sum(emulator.requests.values()) == before  # control routes are not Daily API calls


# -- strictness: room properties, meetings, clock, retries ---------------------------------------


async def test_unknown_room_properties_and_wrong_types_are_400(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    bad = [
        {"enable_mesh_sfuu": True},  # a typo
        {"max_participants": "20"},
        {"enable_hidden_participants": 1},
        {"exp": 1.5},
        {"sfu_switchover": True},
        {"enable_recording": "everything"},
        {"permissions": {"hasPresence": "yes"}},
        {"permissions": {"canSend": ["video", "smell"]}},
        {"permissions": {"canTeleport": True}},
        {"lang": 7},
    ]
    for props in bad:
        status, body = await _call(http, emulator, "POST", "/rooms", json={"name": "strict", "properties": props})
        assert (status, body["error"]) == (400, "invalid-request-error"), props
    status, body = await _call(http, emulator, "POST", "/rooms", json={"name": "strict", "propertys": {}})
    assert status == 400 and "unknown field" in body["info"]
    assert emulator.rooms == {}
    good = {"max_participants": 20, "sfu_switchover": 0.5, "enable_recording": "cloud", "enable_chat": None,
            "permissions": {"hasPresence": False, "canSend": ["audio"], "canAdmin": False, "canReceive": {"base": True}}}
    status, room = await _call(http, emulator, "POST", "/rooms", json={"name": "strict", "properties": good})
    assert status == 200 and "enable_chat" not in room["config"]
    status, body = await _call(http, emulator, "POST", "/rooms/strict", json={"properties": {"enable_terse_loging": True}})
    assert status == 400 and "unknown room property" in body["info"]


async def test_the_bridges_room_configuration_is_accepted(emulator: DailyEmulator, http: aiohttp.ClientSession) -> None:
    from videobridge.models import CallType
    from videobridge.roomconfig import reuse_properties, room_properties

    for n, call_type in enumerate(CallType):
        props = room_properties(call_type, nbf=int(time.time()), exp=hour_from_now())
        status, body = await _call(http, emulator, "POST", "/rooms", json={"name": f"t{n}", "privacy": "private",
                                                                            "properties": props})
        assert status == 200, body
        reuse = reuse_properties(call_type, nbf=int(time.time()), exp=hour_from_now(), existing=["enable_chat"])
        status, body = await _call(http, emulator, "POST", f"/rooms/t{n}", json={"properties": reuse})
        assert status == 200, body


async def test_meetings_api_reports_ongoing_meetings_with_hidden_viewers(client: DailyClient, emulator: DailyEmulator) -> None:
    await client.create_room("show", properties={"enable_hidden_participants": True})
    host = emulator.join("show", await _token(emulator, "show", owner=True, user="host"))
    viewer = emulator.join("show", await _token(emulator, "show", user="viewer", broadcast=True))
    [seen] = [p for p in await client.room_presence("show") if p.user_id == "host"]
    assert seen.meeting_id
    emulator.leave("show", host)  # the presenter drops; the hidden viewer keeps the meeting going
    meeting = await client.get_meeting(seen.meeting_id)
    assert (meeting.id, meeting.room, meeting.ongoing, meeting.max_participants) == (seen.meeting_id, "show", True, 2)
    emulator.leave("show", viewer)
    await emulator.drain_webhooks()
    assert (await client.get_meeting(seen.meeting_id)).ongoing is False
    with pytest.raises(DailyNotFound):
        await client.get_meeting("no-such-meeting")


async def test_answers_carry_the_emulators_clock(http: aiohttp.ClientSession) -> None:
    from email.utils import parsedate_to_datetime

    clock = FakeClock()
    emu = DailyEmulator(api_key=API_KEY, clock=clock)
    await emu.start()
    try:
        async with http.get(f"{emu.base_url}/", headers=AUTH) as resp:
            assert parsedate_to_datetime(resp.headers["Date"]).timestamp() == int(clock.now)
        async with DailyClient(api_key=API_KEY, base_url=emu.base_url) as c:
            await c.get_domain()
            offset = c.clock_offset
            assert offset is not None and abs(offset - (clock.now - time.time())) < 2.0
    finally:
        await emu.stop()


@pytest.mark.parametrize("mode", ["original", "fresh"])
async def test_webhook_retries_keep_or_renew_their_timestamp(receiver: Receiver, mode: str) -> None:
    clock = FakeClock()
    emu = DailyEmulator(api_key=API_KEY, clock=clock, webhook_backoff=0.2, webhook_retry_timestamp=mode,
                        rate_limits=False)
    url = await emu.start()
    try:
        async with DailyClient(api_key=API_KEY, base_url=url) as c:
            await c.create_webhook(url=receiver.url, hmac=HMAC, event_types=["meeting.started"], retry_type="exponential")
            await c.create_room("r", properties={})
            receiver.status = 500
            emu.join("r", await _token(emu, "r"))
            while not receiver.events:  # the first attempt fails...
                await asyncio.sleep(0.005)
            clock.now += 600  # ...and ten minutes go by before the retry gets through
            receiver.status = 200
            await emu.drain_webhooks()
        first, *_, last = receiver.events
        assert first.body == last.body and len(receiver.events) >= 2
        verify(last)
        stamps = (first.headers["X-Webhook-Timestamp"], last.headers["X-Webhook-Timestamp"])
        assert (stamps[0] == stamps[1]) is (mode == "original")
    finally:
        await emu.stop()


async def test_collect_sees_deadlines_moved_by_room_updates(client: DailyClient, http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    emu = DailyEmulator(api_key=API_KEY, clock=clock)
    await emu.start()
    try:
        await _call(http, emu, "POST", "/rooms", json={"name": "r", "properties": {"exp": int(clock.now) + 600}})
        emu.join("r", await _token(emu, "r", user="a"))
        emu.join("r", await _token(emu, "r", user="b"))
        assert len(emu.participants("r")) == 2  # no eject_at_room_exp: nobody is due
        status, _ = await _call(http, emu, "POST", "/rooms/r", json={"properties": {"eject_at_room_exp": True,
                                                                                    "exp": int(clock.now) + 60}})
        assert status == 200 and len(emu.participants("r")) == 2
        clock.now += 61
        assert emu.participants("r") == [], "the new exp ejects them"
    finally:
        await emu.stop()
