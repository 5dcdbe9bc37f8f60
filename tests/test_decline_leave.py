"""POST /room/decline and POST /room/leave (SPEC §9), over real HTTP against the Daily emulator."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import pytest
from helpers import (
    ALICE,
    BOB,
    CAROL,
    COMMUNITY,
    GROUP,
    HOOK_SECRET,
    LOCAL_USER_INDEX,
    bridge_of,
    decline_token,
    end_token,
    eventually,
    get_token,
    join_token,
    participant_token,
    start_token,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from videobridge.daily import DailyClient
from videobridge.errors import BadRequest
from videobridge.models import CallState, CallType, NotificationKind
from videobridge.principal import bytes_to_principal, principal_to_bytes
from videobridge.state.filestore import read_state
from videobridge.web.handlers import SESSION_ID_RE, parse_leave_body

CHANNEL = {"Channel": [COMMUNITY, 2846315027]}
OTHER_LUI = "rrkah-fqaaa-aaaaa-aaaaq-cai"
# A MultiUser user (#9401): 10 bytes, the top bit of the last one set.
INDEXED = bytes_to_principal(principal_to_bytes(CAROL)[:8] + bytes([0x00, 0x85]))




async def post(client, path: str, jwt: str, body: bytes | None = None, **kw: Any) -> tuple[int, Any]:
    kw.setdefault("skip_auto_headers", ["Content-Type"])  # Android sends none without a body
    async with client.post(path, headers={"x-auth-jwt": jwt, **kw.pop("headers", {})}, data=body, **kw) as resp:
        raw = await resp.read()
        return resp.status, (await resp.json() if raw else None)


async def start(client, signer, notifier, user: str = ALICE, chat: dict | None = None, **kw: Any) -> dict:
    status, body = await get_token(client, start_token(signer, user, chat, **kw))
    assert status == 200, body
    # the start reaches the (recording) notifier first, so an end is told, not cancelled
    await eventually(lambda: any(n.kind is NotificationKind.START and n.message_id == int(body["messageId"])
                                 for n in notifier.sent))
    return body


async def token_for(client, signer, user: str, chat: dict | None = None) -> str:
    status, body = await get_token(client, join_token(signer, user, chat))
    assert status == 200, body
    return body["token"]


async def register_hook(client, emulator, api_key) -> None:
    """Daily's participant webhooks tell the bridge that presence changed."""
    async with DailyClient(api_key=api_key, base_url=emulator.url) as daily:
        await daily.create_webhook(url=str(client.make_url("/room/hook")), hmac=base64.b64encode(HOOK_SECRET).decode(),
                                   event_types=["participant.joined", "participant.left"])


def of_kind(notifier, kind: NotificationKind) -> list:
    return [n for n in notifier.sent if n.kind is kind]


def daily_calls(emulator) -> int:
    return sum(emulator.requests.values())


# -- decline ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["decline", "participant"])
async def test_decline_in_a_direct_chat_ends_the_call_like_an_end(bridge, signer, emulator, notifier, kind):
    started = await start(bridge, signer, notifier, ALICE, {"Direct": BOB})
    room, mid = started["roomName"], int(started["messageId"])
    emulator.join(room, started["token"])  # the caller waits in the room; Bob's phone rings
    jwt = (decline_token(signer, mid, BOB, {"Direct": ALICE}) if kind == "decline"
           else participant_token(signer, BOB, {"Direct": ALICE}, local_user_index=None))
    status, body = await post(bridge, "/room/decline", jwt)
    assert (status, body) == (204, None)
    b = bridge_of(bridge)
    assert b.store.calls[room].state is CallState.ENDING, "the end is durable before the answer"
    await b.calls.drain()
    assert room not in b.store.calls and emulator.room(room) is None, "room deleted, caller out"
    ends = of_kind(notifier, NotificationKind.END)
    assert len(ends) == 2 and {n.message_id for n in ends} == {mid}, "both users' canisters are told"
    assert not of_kind(notifier, NotificationKind.DECLINED)


async def test_decline_in_a_group_keeps_the_call_and_tells_the_local_user_index(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier)
    room, mid = started["roomName"], int(started["messageId"])
    emulator.join(room, started["token"])
    status, _ = await post(bridge, "/room/decline", decline_token(signer, mid, BOB))
    assert status == 204
    b = bridge_of(bridge)
    assert b.store.calls[room].state is not CallState.ENDING and emulator.room(room) is not None
    await eventually(lambda: bool(of_kind(notifier, NotificationKind.DECLINED)))
    (note,) = of_kind(notifier, NotificationKind.DECLINED)
    assert (note.canister_id, note.method, note.message_id) == (LOCAL_USER_INDEX, "video_call_declined", mid)
    assert note.args == {"user_id": BOB, "chat_id": {"Group": GROUP}, "message_id": mid}
    # the same user again (a retry, a second device) tells nobody anything new; another user does
    assert (await post(bridge, "/room/decline", participant_token(signer, BOB)))[0] == 204
    assert (await post(bridge, "/room/decline",
                       decline_token(signer, mid, CAROL, local_user_index=OTHER_LUI)))[0] == 204
    await eventually(lambda: len(of_kind(notifier, NotificationKind.DECLINED)) == 2)
    await asyncio.sleep(0.05)
    assert [(n.args["user_id"], n.canister_id) for n in of_kind(notifier, NotificationKind.DECLINED)] == \
        [(BOB, LOCAL_USER_INDEX), (CAROL, OTHER_LUI)]
    assert not of_kind(notifier, NotificationKind.END) and b.store.calls[room].message_id == mid


async def test_group_decline_is_durable_before_the_answer(make_bridge, settings, signer, emulator):
    class Stuck:
        """An IC that never answers: the notification must already be on disk at the 204."""

        def __init__(self) -> None:
            self.sent: list = []

        async def send(self, note):
            self.sent.append(note)
            await asyncio.Event().wait()

        async def close(self) -> None:
            pass

    client = await make_bridge(notifier=Stuck())
    status, started = await get_token(client, start_token(signer, ALICE, CHANNEL))
    mid = int(started["messageId"])
    status, _ = await post(client, "/room/decline", decline_token(signer, mid, BOB, CHANNEL))
    assert status == 204
    _, outbox = read_state(settings.state_path)
    (declined,) = [n for n in outbox.values() if n.kind is NotificationKind.DECLINED]
    assert declined.canister_id == LOCAL_USER_INDEX and declined.message_id == mid
    assert declined.args["chat_id"] == {"Channel": [COMMUNITY, 2846315027]}
    assert declined.seq > min(n.seq for n in outbox.values() if n.kind is NotificationKind.START), \
        "queued behind the call's start"


async def test_decliner_already_in_the_room_is_409_and_nothing_changes(bridge, signer, emulator, notifier):
    for chat, other in (({"Group": GROUP}, {"Group": GROUP}), ({"Direct": BOB}, {"Direct": ALICE})):
        started = await start(bridge, signer, notifier, ALICE, chat)
        room, mid = started["roomName"], int(started["messageId"])
        emulator.join(room, started["token"])
        emulator.join(room, await token_for(bridge, signer, BOB, other))  # answered on another device
        status, body = await post(bridge, "/room/decline", decline_token(signer, mid, BOB, other))
        assert status == 409 and body["statusCode"] == 409 and "leave" in body["message"]
        assert bridge_of(bridge).store.calls[room].state is not CallState.ENDING
    await asyncio.sleep(0.05)
    assert not of_kind(notifier, NotificationKind.END) and not of_kind(notifier, NotificationKind.DECLINED)


async def test_decline_refusals_change_nothing_and_reach_neither_daily_nor_the_ic(bridge, signer, emulator, notifier):
    # no call at all
    status, body = await post(bridge, "/room/decline", decline_token(signer, 42, BOB))
    assert (status, body["message"]) == (404, "No call in progress")
    started = await start(bridge, signer, notifier)
    mid = int(started["messageId"])
    before, sent = daily_calls(emulator), len(notifier.sent)
    status, body = await post(bridge, "/room/decline", decline_token(signer, mid + 1, BOB))
    assert status == 409 and "another call" in body["message"]
    status, body = await post(bridge, "/room/decline", participant_token(signer, BOB, local_user_index=None))
    assert status == 400 and "local_user_index" in body["message"]
    for jwt in (start_token(signer, BOB), join_token(signer), end_token(signer)):  # SPEC §9: not a decline
        status, body = await post(bridge, "/room/decline", jwt)
        assert status == 401 and "not accepted here" in body["message"]
    await asyncio.sleep(0.05)
    assert daily_calls(emulator) == before and len(notifier.sent) == sent
    assert bridge_of(bridge).store.calls[started["roomName"]].state is not CallState.ENDING


async def test_decline_with_presence_unreadable_is_503(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier)
    mid = int(started["messageId"])
    emulator.fail_next("GET /rooms/:name/presence", 503, times=1000)
    status, body = await post(bridge, "/room/decline", decline_token(signer, mid, BOB))
    assert status == 503 and "presence" in body["message"]
    emulator.clear_faults()
    emulator.fail_next("GET /rooms/:name/presence", 403)  # Daily refusing us is no better
    assert (await post(bridge, "/room/decline", decline_token(signer, mid, BOB)))[0] == 503
    await asyncio.sleep(0.05)
    assert not of_kind(notifier, NotificationKind.DECLINED)
    assert (await post(bridge, "/room/decline", decline_token(signer, mid, BOB)))[0] == 204, "a retry works"


async def test_a_multiuser_user_declines_and_leaves(bridge, signer, emulator, notifier):
    assert principal_to_bytes(INDEXED)[-1] & 0x80 and len(principal_to_bytes(INDEXED)) == 10
    started = await start(bridge, signer, notifier, ALICE, {"Direct": INDEXED})
    mid = int(started["messageId"])
    status, _ = await post(bridge, "/room/decline", decline_token(signer, mid, INDEXED, {"Direct": ALICE}))
    assert status == 204
    await bridge_of(bridge).calls.drain()
    assert started["roomName"] not in bridge_of(bridge).store.calls
    assert {n.message_id for n in of_kind(notifier, NotificationKind.END)} == {mid}
    group = await start(bridge, signer, notifier)
    session = emulator.join(group["roomName"], await token_for(bridge, signer, INDEXED))
    emulator.join(group["roomName"], group["token"])
    status, _ = await post(bridge, "/room/leave", participant_token(signer, INDEXED))
    assert status == 204
    assert session not in {p.session_id for p in emulator.participants(group["roomName"])}


# -- leave ------------------------------------------------------------------------------------


async def test_leave_with_and_without_a_session_id(bridge, signer, emulator, notifier, api_key):
    await register_hook(bridge, emulator, api_key)
    started = await start(bridge, signer, notifier)
    room = started["roomName"]
    alice = emulator.join(room, started["token"])
    bob_token = await token_for(bridge, signer, BOB)
    bob = emulator.join(room, bob_token)
    status, body = await post(bridge, "/room/leave", participant_token(signer, BOB))  # no body at all
    assert (status, body) == (204, None)
    assert [p.session_id for p in emulator.participants(room)] == [alice]
    bob = emulator.join(room, bob_token)
    await emulator.drain_webhooks()  # participant.joined: the bridge's presence read is out of date
    status, _ = await post(bridge, "/room/leave", participant_token(signer, BOB),
                           f'{{"sessionId": "{bob.upper()}"}}'.encode(),
                           headers={"Content-Type": "application/json"})
    assert status == 204 and [p.session_id for p in emulator.participants(room)] == [alice]
    assert emulator.requests["POST /rooms/:name/eject"] == 2
    # not in the room (any more): 409 with or without a session id
    assert (await post(bridge, "/room/leave", participant_token(signer, CAROL)))[0] == 409
    status, body = await post(bridge, "/room/leave", participant_token(signer, BOB), b'{"sessionId": null}')
    assert status == 409 and "not in the call" in body["message"]
    status, _ = await post(bridge, "/room/leave", participant_token(signer, BOB),
                           f'{{"sessionId": "{alice}"}}'.encode())
    assert status == 409, "someone else's session is not yours to eject"
    assert [p.session_id for p in emulator.participants(room)] == [alice]
    assert bridge_of(bridge).store.calls[room].state is not CallState.ENDING


async def test_two_sessions_need_a_session_id_and_each_can_be_ejected(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier)
    room = started["roomName"]
    emulator.join(room, started["token"])
    bob_token = await token_for(bridge, signer, BOB)
    phone, laptop = emulator.join(room, bob_token), emulator.join(room, bob_token)
    status, body = await post(bridge, "/room/leave", participant_token(signer, BOB))
    assert status == 409 and "2 sessions" in body["message"]
    assert len(emulator.participants(room)) == 3
    for session in (phone, laptop):
        status, _ = await post(bridge, "/room/leave", participant_token(signer, BOB),
                               f'{{"sessionId": "{session}"}}'.encode())
        assert status == 204
        assert session not in {p.session_id for p in emulator.participants(room)}
    assert [p.user_id for p in emulator.participants(room)] == [ALICE]
    # a retry for an ejected session is answered without asking Daily again
    ejects = emulator.requests["POST /rooms/:name/eject"]
    assert (await post(bridge, "/room/leave", participant_token(signer, BOB),
                       f'{{"sessionId": "{phone}"}}'.encode()))[0] == 204
    assert emulator.requests["POST /rooms/:name/eject"] == ejects == 2


async def test_the_last_one_leaving_does_not_end_the_call(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier)
    room = started["roomName"]
    emulator.join(room, started["token"])
    status, _ = await post(bridge, "/room/leave", participant_token(signer, ALICE))
    assert status == 204 and emulator.participants(room) == []
    await asyncio.sleep(0.05)
    assert room in bridge_of(bridge).store.calls and not of_kind(notifier, NotificationKind.END)


async def test_old_clients_leave_with_join_tokens(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier)
    room = started["roomName"]
    emulator.join(room, await token_for(bridge, signer, BOB))
    assert (await post(bridge, "/room/leave", join_token(signer, BOB)))[0] == 204
    assert emulator.participants(room) == []


async def test_leave_refusals(bridge, signer, emulator, notifier):
    assert (await post(bridge, "/room/leave", participant_token(signer, BOB)))[1]["message"] == "No call in progress"
    await start(bridge, signer, notifier)
    mid = int(bridge_of(bridge).store.calls[next(iter(bridge_of(bridge).store.calls))].message_id)
    before = daily_calls(emulator)
    for jwt in (start_token(signer, BOB), end_token(signer), decline_token(signer, mid, BOB)):
        status, body = await post(bridge, "/room/leave", jwt)
        assert status == 401 and "not accepted here" in body["message"]
    for jwt in (participant_token(signer, BOB), decline_token(signer, mid, BOB)):  # nor are they joins
        status, body = await get_token(bridge, jwt)
        assert status == 401 and "not accepted here" in body["message"]
    assert daily_calls(emulator) == before


BAD_BODIES = [
    b"not json", b"[]", b'"x"', b"\xff\xfe", b'{"sessionId": 5}', b'{"sessionId": ""}',
    b'{"sessionId": "abc"}', b'{"sessionId": "../../rooms"}', b'{"sessionId": ["x"]}',
    ('{"sessionId": "%s\\n"}' % uuid.uuid4()).encode(), ('{"sessionId": " %s"}' % uuid.uuid4()).encode(),
    ('{"sessionId": "%s"}' % str(uuid.uuid4()).replace("-", "")).encode(),
]


async def test_malformed_or_oversized_leave_bodies_change_nothing(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier)
    room = started["roomName"]
    session = emulator.join(room, await token_for(bridge, signer, BOB))
    before, sent = daily_calls(emulator), len(notifier.sent)
    jwt = participant_token(signer, BOB)
    for body in BAD_BODIES:
        status, answer = await post(bridge, "/room/leave", jwt, body, headers={"Content-Type": "application/json"})
        assert status == 400 and answer["statusCode"] == 400, body
    big = b'{"sessionId": "%s", "pad": "%s"}' % (session.encode(), b"x" * 4096)
    assert (await post(bridge, "/room/leave", jwt, big))[0] == 413

    async def chunked():
        for _ in range(64):
            yield b"x" * 100

    status, answer = await post(bridge, "/room/leave", jwt, chunked())  # no Content-Length
    assert status == 413 and answer["statusCode"] == 413
    assert daily_calls(emulator) == before and len(notifier.sent) == sent
    assert [p.session_id for p in emulator.participants(room)] == [session]
    # the largest body allowed, with extra fields, is fine
    fine = b'{"sessionId": "%s", "pad": "%s"}' % (session.encode(), b"x" * (4096 - 70))
    assert len(fine) <= 4096 and (await post(bridge, "/room/leave", jwt, fine))[0] == 204


async def test_leave_with_daily_failing_is_502_or_503(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier)
    room = started["roomName"]
    session = emulator.join(room, await token_for(bridge, signer, BOB))
    jwt = participant_token(signer, BOB)
    emulator.fail_next("POST /rooms/:name/eject", 500, times=1000)
    status, body = await post(bridge, "/room/leave", jwt)
    assert status == 503 and body["statusCode"] == 503
    emulator.clear_faults()
    emulator.fail_next("POST /rooms/:name/eject", 403)
    assert (await post(bridge, "/room/leave", jwt))[0] == 502
    bridge_of(bridge).calls.presence.forget(room)
    emulator.fail_next("GET /rooms/:name/presence", 503, times=1000)
    assert (await post(bridge, "/room/leave", jwt))[0] == 503
    emulator.clear_faults()
    assert [p.session_id for p in emulator.participants(room)] == [session]
    assert (await post(bridge, "/room/leave", jwt))[0] == 204, "a failed eject can be retried"
    assert emulator.participants(room) == []


async def test_leave_and_decline_answer_cors_like_the_other_paths(bridge):
    for path in ("/room/decline", "/room/leave"):
        async with bridge.options(path, headers={"Origin": "https://oc.app", "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "x-auth-jwt"}) as resp:
            assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"
            assert "x-auth-jwt" in resp.headers["Access-Control-Allow-Headers"]
        async with bridge.post(path, headers={"Origin": "https://oc.app"}) as resp:
            assert resp.status == 401 and resp.headers["Access-Control-Allow-Origin"] == "*"


# -- audio calls --------------------------------------------------------------------------------


async def test_audio_calls_give_everyone_audio_only_tokens(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier, ALICE, {"Group": GROUP}, audio_only=True)
    room = started["roomName"]
    assert bridge_of(bridge).store.calls[room].call_type is CallType.AUDIO
    _, joined = await get_token(bridge, join_token(signer, BOB))
    emulator.join(room, started["token"])
    emulator.join(room, joined["token"])
    people = {p.user_id: p for p in emulator.participants(room)}
    assert people[ALICE].owner and not people[BOB].owner
    assert all(p.can_send == {"audio"} and p.start_video_off and not p.start_audio_off for p in people.values())
    # a Broadcast with audio_only stays a Broadcast; an older client's start is a video call
    _, show = await get_token(bridge, start_token(signer, ALICE, CHANNEL, call_type="Broadcast", audio_only=True))
    _, video = await get_token(bridge, start_token(signer, ALICE, {"Direct": BOB}))
    calls = bridge_of(bridge).store.calls
    assert calls[show["roomName"]].call_type is CallType.BROADCAST
    assert calls[video["roomName"]].call_type is CallType.DEFAULT
    emulator.join(video["roomName"], video["token"])
    assert emulator.participants(video["roomName"])[0].can_send == {"video", "audio", "screenVideo", "screenAudio"}


# -- abuse: presence reads are shared ------------------------------------------------------------


async def test_a_burst_of_end_decline_and_leave_costs_a_handful_of_daily_calls(bridge, signer, emulator, notifier):
    started = await start(bridge, signer, notifier)
    room, mid = started["roomName"], int(started["messageId"])
    emulator.join(room, started["token"])
    bob = emulator.join(room, await token_for(bridge, signer, BOB))
    emulator.join(room, await token_for(bridge, signer, CAROL))
    before = dict(emulator.requests)
    kinds = [
        ("/room/end_meeting", end_token(signer), None),  # others are in: kept
        ("/room/decline", decline_token(signer, mid, INDEXED), None),  # ringing, not in the room
        ("/room/leave", participant_token(signer, BOB), f'{{"sessionId": "{bob}"}}'.encode()),
        ("/room/leave", participant_token(signer, INDEXED), None),  # not in the room: 409
    ]

    async def one(i: int) -> int:
        path, jwt, body = kinds[i % len(kinds)]
        return (await post(bridge, path, jwt, body))[0]

    statuses = await asyncio.gather(*(one(i) for i in range(100)))  # all at once
    statuses += [await one(i) for i in range(100)]  # and back to back
    assert set(statuses) <= {200, 204, 409} and statuses.count(409) >= 25
    used = {k: v - before.get(k, 0) for k, v in emulator.requests.items() if v != before.get(k, 0)}
    assert sum(used.values()) <= 5, used
    assert used.get("POST /rooms/:name/eject") == 1, "one eject for Bob's session, however often asked"
    await asyncio.sleep(0.05)
    assert len(of_kind(notifier, NotificationKind.DECLINED)) == 1 and room in bridge_of(bridge).store.calls


# -- the leave body parser (property-based) --------------------------------------------------------

_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
_json = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=8)
_session_like = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()) | st.text(max_size=40)
_leave_bodies = st.one_of(
    st.binary(max_size=64),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"sessionId": _session_like | _json}).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=400, deadline=None, database=None)
@given(_leave_bodies)
@example(b'{"sessionId": "6F1C2A52-0000-4000-8000-00000000000A"}')
@example(b'{"sessionId": "6f1c2a52-0000-4000-8000-00000000000a\\n"}')
@example(b"   ")
def test_leave_body_parser_answers_or_refuses(raw: bytes) -> None:
    try:
        session_id = parse_leave_body(raw)
    except BadRequest:
        return
    assert session_id is None or (SESSION_ID_RE.fullmatch(session_id) and session_id == session_id.lower())
