"""The front end's main path over real HTTP: start, join, tokens, concurrency, restart, CORS."""

from __future__ import annotations

import asyncio
import json

import jwt
import pytest
from helpers import (
    ALICE,
    BOB,
    CAROL,
    COMMUNITY,
    GROUP,
    bridge_of,
    get_token,
    join_token,
    start_token,
)

from videobridge.chats import chat_from_room

CHATS = {
    "group": {"Group": GROUP},
    "direct": {"Direct": BOB},
    "channel": {"Channel": [COMMUNITY, 2846315027]},
}


async def test_start_creates_a_private_room_and_an_owner_token(bridge, signer, emulator, api_key):
    status, body = await get_token(bridge, start_token(signer), **{"initiator-displayname": "Alice A"})
    assert 200 == status
    assert body["roomName"] == "GAAAAAAHwqV0BAQ"
    assert body["joining"] is False
    assert isinstance(body["messageId"], str) and 0 < int(body["messageId"]) < 2**64
    room = emulator.room(body["roomName"])
    assert room is not None and room["privacy"] == "private"
    claims = jwt.decode(body["token"], api_key, algorithms=["HS256"])
    assert claims["r"] == body["roomName"] and claims["o"] is True and claims["ud"] == ALICE
    assert claims["exp"] == room["config"]["exp"]
    session = emulator.join(body["roomName"], body["token"])
    (participant,) = emulator.participants(body["roomName"])
    assert participant.session_id == session and participant.owner is True


async def test_join_gets_the_same_call_as_a_plain_participant(bridge, signer, emulator, api_key):
    _, started = await get_token(bridge, start_token(signer))
    before = sum(emulator.requests.values())
    status, joined = await get_token(bridge, join_token(signer, BOB), **{"initiator-username": "bob"})
    assert 200 == status
    assert joined["joining"] is True
    assert (joined["roomName"], joined["messageId"]) == (started["roomName"], started["messageId"])
    assert before == sum(emulator.requests.values()), "a join must cost no Daily call"
    claims = jwt.decode(joined["token"], api_key, algorithms=["HS256"])
    assert claims["o"] is False and claims["u"] == "bob" and claims["p"]["cs"] is True
    emulator.join(joined["roomName"], joined["token"])


async def test_start_on_an_existing_call_joins_it(bridge, signer):
    _, first = await get_token(bridge, start_token(signer, ALICE))
    status, second = await get_token(bridge, start_token(signer, BOB))
    assert 200 == status and second["joining"] is True
    assert second["messageId"] == first["messageId"]


async def test_join_without_a_call_is_400(bridge, signer, emulator):
    status, body = await get_token(bridge, join_token(signer))
    assert 400 == status
    assert body == {"statusCode": 400, "error": "Bad Request", "message": "no meeting in progress to join"}
    assert not bridge_of(bridge).store.calls
    assert 0 == emulator.requests["POST /rooms"]


@pytest.mark.parametrize("kind", sorted(CHATS))
async def test_every_chat_kind_starts_and_joins(bridge, signer, emulator, kind):
    chat = CHATS[kind]
    status, body = await get_token(bridge, start_token(signer, ALICE, chat))
    assert 200 == status and body["joining"] is False
    assert chat_from_room(body["roomName"]).kind.value == kind
    joiner = CAROL if kind == "direct" else BOB
    join_chat = {"Direct": ALICE} if kind == "direct" else chat
    status, joined = await get_token(bridge, join_token(signer, joiner, join_chat))
    if kind == "direct":  # Carol is not part of Alice and Bob's chat: a different room, no call
        assert 400 == status
        status, joined = await get_token(bridge, join_token(signer, BOB, {"Direct": ALICE}))
    assert 200 == status and joined["roomName"] == body["roomName"]


async def test_room_names_match_the_original_bridge(bridge, signer):
    cases = [
        (ALICE, {"Group": GROUP}, "GAAAAAAHwqV0BAQ"),
        (BOB, {"Direct": ALICE}, "DAAAAAAGgw_cBAQAAAAAAIBR7IBAQ"),
        (ALICE, {"Channel": [COMMUNITY, 2846315027]}, "CAAAAAAIw1BwBAQAAAAAAAAAAAAAAAAqadSEw"),
        (ALICE, {"Channel": [COMMUNITY, str(2846315027 + 2**32)]}, "CAAAAAAIw1BwBAQAAAAAAAAAAAAAAAAqadSEw"),
    ]
    for user, chat, expected in cases:
        status, body = await get_token(bridge, start_token(signer, user, chat))
        assert (200, expected) == (status, body["roomName"])


async def test_broadcast_tokens(bridge, signer, emulator, api_key):
    _, owner = await get_token(bridge, start_token(signer, ALICE, call_type="Broadcast", diamond=True))
    room = emulator.room(owner["roomName"])
    assert room["config"]["max_participants"] == 200 and room["config"]["enable_hidden_participants"] is True
    assert room["config"]["exp"] - room["config"]["nbf"] == 7200 + 60  # diamond: two hours; opens a minute early
    _, viewer = await get_token(bridge, join_token(signer, BOB))
    o = jwt.decode(owner["token"], api_key, algorithms=["HS256"])
    v = jwt.decode(viewer["token"], api_key, algorithms=["HS256"])
    assert o["o"] is True and o["p"]["cs"] is True
    assert v["o"] is False and v["p"] == {"hp": False, "cs": False, "ca": False} and v["vo"] and v["ao"]
    assert o["exp"] == v["exp"] == room["config"]["exp"]
    emulator.join(viewer["roomName"], viewer["token"])
    assert [p.owner for p in emulator.participants(viewer["roomName"])] == [False]


async def test_twenty_simultaneous_starts_make_one_call(bridge, signer, emulator, notifier):
    tokens = [start_token(signer, user) for user in (ALICE, BOB, CAROL) for _ in range(7)][:20]
    results = await asyncio.gather(*(get_token(bridge, t) for t in tokens))
    assert all(status == 200 for status, _ in results)
    assert 1 == len({body["messageId"] for _, body in results})
    assert 1 == len({body["roomName"] for _, body in results})
    assert 1 == sum(1 for _, body in results if body["joining"] is False)
    assert 1 == emulator.requests["POST /rooms"]
    await asyncio.sleep(0.05)
    assert 1 == len([n for n in notifier.sent if n.kind.value == "start"])


async def test_a_start_costs_one_daily_call(bridge, signer, emulator):
    before = sum(emulator.requests.values())
    await get_token(bridge, start_token(signer))
    assert 1 == sum(emulator.requests.values()) - before


async def test_leftover_room_is_reused_and_refreshed(bridge, signer, emulator):
    from videobridge.daily import DailyClient

    async with DailyClient(api_key=bridge_of(bridge).settings.daily_api_key, base_url=emulator.url) as daily:
        await daily.create_room("GAAAAAAHwqV0BAQ", properties={"exp": 10**10})
    status, body = await get_token(bridge, start_token(signer))
    assert 200 == status and body["joining"] is False
    room = emulator.room("GAAAAAAHwqV0BAQ")
    assert room["config"]["exp"] < 10**10, "the old expiry must be replaced by the call's"


async def test_restart_keeps_calls(make_bridge, signer, settings):
    first = await make_bridge()
    _, started = await get_token(first, start_token(signer))
    await first.close()
    second = await make_bridge()
    status, joined = await get_token(second, join_token(signer))
    assert 200 == status and joined["messageId"] == started["messageId"]
    state = json.loads(settings.state_path.read_text())
    assert [doc["messageId"] for doc in state["calls"].values()] == [started["messageId"]]


async def test_cors_preflight_from_a_browser_origin(bridge):
    headers = {"Origin": "https://oc.app", "Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": "x-auth-jwt"}
    async with bridge.options("/room/meeting_access_token", headers=headers) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "x-auth-jwt" in resp.headers["Access-Control-Allow-Headers"].lower()
        assert "GET" in resp.headers["Access-Control-Allow-Methods"]
    async with bridge.get("/room/meeting_access_token", headers={"Origin": "https://oc.app"}) as resp:
        assert resp.status == 401 and resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_restricted_origins(make_bridge):
    client = await make_bridge(cors_origins=("https://oc.app",))
    ok = {"Origin": "https://oc.app", "Access-Control-Request-Method": "GET"}
    async with client.options("/room/meeting_access_token", headers=ok) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "https://oc.app"
    evil = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    async with client.options("/room/meeting_access_token", headers=evil) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_daily_down_gives_503_and_no_call(bridge, signer, emulator):
    emulator.fail_next("POST /rooms", 503, times=100)
    status, body = await get_token(bridge, start_token(signer))
    assert 503 == status and body["statusCode"] == 503
    assert not bridge_of(bridge).store.calls


async def test_meetings_admin_endpoint(bridge, make_bridge, signer):
    _, started = await get_token(bridge, start_token(signer))
    async with bridge.get("/room/meetings") as resp:
        assert resp.status == 401
    from helpers import ADMIN_TOKEN

    async with bridge.get("/room/meetings", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        (meeting,) = await resp.json()
    assert meeting["roomName"] == started["roomName"] and meeting["messageId"] == started["messageId"]
    assert meeting["state"] == "starting" and meeting["startedBy"] == ALICE and meeting["callType"] == "Default"
    closed = await make_bridge(admin_token=None, state_path=bridge_of(bridge).settings.state_path.with_name("b.json"))
    async with closed.get("/room/meetings", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        assert resp.status == 404


async def test_health_endpoints(bridge):
    async with bridge.get("/healthz") as resp:
        assert resp.status == 200
    async with bridge.get("/readyz") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "ready"
    async with bridge.get("/metrics") as resp:
        assert resp.status == 200 and "videobridge_http_requests_total" in await resp.text()


async def test_a_failed_state_write_acknowledges_nothing(bridge, signer, monkeypatch):
    import videobridge.state.snapshot

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(videobridge.state.snapshot, "append_durably", disk_full)
    status, body = await get_token(bridge, start_token(signer))
    assert 503 == status and body["statusCode"] == 503
    assert not bridge_of(bridge).store.calls
    monkeypatch.undo()
    status, body = await get_token(bridge, start_token(signer))
    assert 200 == status and body["joining"] is False


@pytest.mark.parametrize("joining", [True, False])
@pytest.mark.parametrize("token", ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig", 'odd "token" \\ \u00e9\n'])
def test_the_join_answer_is_the_bytes_json_response_writes(token: str, joining: bool) -> None:
    from videobridge.web.responses import join_answer, json_response

    fast = join_answer(token, "GAAAAAAHwqV0BAQ", "12345678901234567890", joining)
    plain = json_response({"token": token, "roomName": "GAAAAAAHwqV0BAQ", "messageId": "12345678901234567890",
                           "joining": joining})
    assert fast.body == plain.body and fast.content_type == plain.content_type == "application/json"
    assert fast.charset == plain.charset and fast.status == plain.status == 200
