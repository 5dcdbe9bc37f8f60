"""Hostile input: property-based tests for the parsers, and oversized requests over HTTP.

Parsers (pure functions, thousands of examples): the OpenChat JWT verifier and claim parser, the
join query, the webhook verifier and timestamp parser, principals and room-name decoding. Each
either answers or raises its own documented error, never anything else.

Over HTTP (a real bridge, fewer examples): random JWT headers, query strings and webhook bodies
(signed and unsigned), oversized headers, URLs and bodies. Nothing gets a 5xx, every refusal of
ours is JSON, and nothing changes: no state write, no Daily call, no notification.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
from helpers import ALICE, GROUP, HOOK_SECRET, bridge_of, signed_hook
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from videobridge.auth import ClaimType, JwtVerifier, VideoCallClaims, parse_claims
from videobridge.chats import (
    ChannelChat,
    DirectChat,
    GroupChat,
    InvalidChat,
    chat_from_claim,
    chat_from_room,
    room_name,
)
from videobridge.devjwt import DevSigner, b64url
from videobridge.errors import AuthError, BadRequest
from videobridge.models import Initiator
from videobridge.principal import InvalidPrincipal, bytes_to_principal, is_principal, principal_to_bytes
from videobridge.web.handlers import MAX_NAME, U128_MAX, parse_initiator
from videobridge.webhooks.signature import MAX_BODY, Verdict, WebhookVerifier, parse_timestamp, sign

ROOM_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
SIGNER = DevSigner()
VERIFIER = JwtVerifier(SIGNER.public_pem)
FAST = settings(max_examples=400, deadline=None, database=None)
HTTP = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---- strategies ----------------------------------------------------------------------------------

json_leaf = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | \
    st.floats(allow_nan=False) | st.text(max_size=40)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
principal_bytes = st.binary(min_size=0, max_size=29)
principal_text = principal_bytes.map(bytes_to_principal)
canister_text = st.binary(min_size=10, max_size=10).map(bytes_to_principal)
maybe_principal = principal_text | st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567-", max_size=64) | json_value
chat_claim = st.one_of(
    st.fixed_dictionaries({"Group": maybe_principal}),
    st.fixed_dictionaries({"Direct": maybe_principal}),
    st.fixed_dictionaries({"Channel": st.tuples(maybe_principal, st.integers(-(2**40), 2**70) | st.text(max_size=45)
                                                | json_value).map(list)}),
    json_value,
)
claims_strategy = st.fixed_dictionaries(
    {},
    optional={
        "exp": st.integers(-(2**40), 2**40) | st.just(int(time.time()) + 300) | json_value,
        "claim_type": st.sampled_from([c.value for c in ClaimType] + ["Translate", "", "startvideocall"]) | json_value,
        "user_id": maybe_principal,
        "chat_id": chat_claim,
        "call_type": st.sampled_from(["Default", "Broadcast", "Huddle"]) | json_value,
        "is_diamond": st.booleans() | json_value,
    },
)
b64_segment = st.binary(max_size=200).map(b64url) | st.text(max_size=60)


@st.composite
def token_like(draw: st.DrawFn) -> str:
    """Things that look more or less like a JWT."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.text(max_size=300))
    if kind == 1:
        return ".".join(draw(st.lists(b64_segment, min_size=1, max_size=5)))
    header = draw(st.just({"alg": "ES256"}) | st.dictionaries(st.text(max_size=6), json_value, max_size=3)
                  | st.sampled_from([{"alg": "none"}, {"alg": "HS256"}, {"alg": "ES256", "kid": "x"},
                                     {"alg": "ES256", "typ": "JWT"}, {"alg": "ES384"}]))
    claims = draw(claims_strategy)
    if kind == 2:  # really signed by OpenChat's key, with whatever header and claims
        return SIGNER.sign(claims, header=header if isinstance(header, dict) else None)
    if kind == 3:  # unsigned or garbage signature
        body = b64url(json.dumps(claims).encode())
        return f"{b64url(json.dumps(header).encode())}.{body}.{draw(b64_segment)}"
    good = SIGNER.sign(claims)
    position = draw(st.integers(0, len(good) - 1))  # one character flipped
    replacement = draw(st.sampled_from("AQgw_-.="))
    return good[:position] + replacement + good[position + 1:]


# ---- the JWT verifier -----------------------------------------------------------------------------

def check_claims(claims: VideoCallClaims) -> None:
    assert isinstance(claims.claim_type, ClaimType)
    assert is_principal(claims.user_id)
    assert isinstance(claims.chat, (GroupChat, DirectChat, ChannelChat))
    room = room_name(claims.chat)
    assert ROOM_RE.match(room), room  # always a valid Daily room name
    if all(len(principal_to_bytes(p)) == 10 for p in chat_principals(claims.chat)):
        # OpenChat's canister ids are 10 bytes; only those names decode back (see chats.chat_from_room)
        assert chat_from_room(room) == claims.chat


def chat_principals(chat: Any) -> list[str]:
    if isinstance(chat, GroupChat):
        return [chat.group_id]
    if isinstance(chat, DirectChat):
        return list(chat.users)
    return [chat.community_id]


@FAST
@given(token_like())
@example("")
@example("a.b.c")
@example("...")
@example("eyJhbGciOiJFUzI1NiJ9.e30.")
def test_jwt_verifier_answers_or_refuses(token: str) -> None:
    try:
        claims = VERIFIER.verify(token)
    except AuthError as exc:
        assert (str(exc) and token[:40] not in str(exc)) or len(token) < 20  # never echoes the token
        return
    check_claims(claims)


@FAST
@given(claims_strategy | json_value)
def test_claim_parser_answers_or_refuses(payload: Any) -> None:
    try:
        claims = parse_claims(payload)
    except AuthError:
        return
    check_claims(claims)
    assert claims.claim_type is ClaimType.START or claims.call_type.value == "Default"


@FAST
@given(st.fixed_dictionaries({"exp": st.just(int(time.time()) + 300),
                              "claim_type": st.sampled_from([c.value for c in ClaimType]),
                              "user_id": principal_text,
                              "chat_id": chat_claim,
                              "call_type": st.sampled_from(["Default", "Broadcast"]),
                              "is_diamond": st.booleans()}))
def test_well_formed_signed_claims_either_verify_or_are_refused_cleanly(claims: dict[str, Any]) -> None:
    try:
        parsed = VERIFIER.verify(SIGNER.sign(claims))
    except AuthError:
        return
    assert parsed.user_id == claims["user_id"] and parsed.claim_type.value == claims["claim_type"]
    check_claims(parsed)


@FAST
@given(json_value, principal_text)
def test_chat_claim_parser(chat_id: Any, user: str) -> None:
    try:
        chat = chat_from_claim(chat_id, user)
    except InvalidChat:
        return
    assert ROOM_RE.match(room_name(chat))


# ---- principals and room names ----------------------------------------------------------------------

@FAST
@given(st.text(max_size=80) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567-", max_size=70))
def test_principal_text_parser(text: str) -> None:
    try:
        raw = principal_to_bytes(text)
    except InvalidPrincipal:
        return
    assert bytes_to_principal(raw) == text


@FAST
@given(principal_bytes)
def test_principal_round_trip(raw: bytes) -> None:
    assert principal_to_bytes(bytes_to_principal(raw)) == raw


room_like = st.one_of(
    st.text(max_size=140),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", max_size=130),
    st.tuples(st.sampled_from("GDCX"), st.binary(max_size=40)).map(
        lambda t: t[0] + base64.b64encode(t[1]).decode().replace("+", "_").replace("/", "-").rstrip("=")),
)


@FAST
@given(room_like)
@example("GAAAAAAHwqV0BAQ")
@example("DAAAAAAGgw_cBAQAAAAAAIBR7IBAQ")
@example("CAAAAAAIw1BwBAQAAAAAAAAAAAAAAAAqadSEw")
def test_room_name_decoding(name: str) -> None:
    try:
        chat = chat_from_room(name)
    except InvalidChat:
        return
    assert room_name(chat) == name


@FAST
@given(st.one_of(
    canister_text.map(GroupChat),
    st.tuples(canister_text, canister_text).filter(lambda t: t[0] != t[1]).map(lambda t: DirectChat.between(*t)),
    st.tuples(canister_text, st.integers(0, 2**32 - 1)).map(lambda t: ChannelChat(*t)),
))
def test_room_names_decode_back_to_their_chat(chat: Any) -> None:
    assert chat_from_room(room_name(chat)) == chat


# ---- the join query -------------------------------------------------------------------------------

query_values = st.text(max_size=300) | st.sampled_from(["", " ", "0", "-1", str(U128_MAX), str(U128_MAX + 1),
                                                         "１２３", "1e3", "0x10", "٣"])


@FAST
@given(st.dictionaries(st.sampled_from(["initiator-username", "initiator-displayname", "initiator-avatarid", "x"]),
                       query_values))
def test_query_parser_answers_or_refuses(query: dict[str, str]) -> None:
    try:
        initiator = parse_initiator(query)
    except BadRequest:
        return
    assert isinstance(initiator, Initiator)
    assert initiator.username and initiator.username == initiator.username.strip()
    assert len(initiator.username) <= MAX_NAME
    assert initiator.display_name is None or 0 < len(initiator.display_name) <= MAX_NAME
    assert initiator.avatar_id is None or 0 < initiator.avatar_id <= U128_MAX


# ---- webhooks -------------------------------------------------------------------------------------

@FAST
@given(st.text(max_size=30) | st.none())
@example("1e400")
@example("nan")
@example("-0")
@example("inf")
def test_webhook_timestamp_parser(value: str | None) -> None:
    ts = parse_timestamp(value)
    assert ts is None or ts > 0  # "inf"/"1e400" come back as inf: refused later as stale (401)
    if ts == float("inf"):
        body = b'{"type":"meeting.ended","payload":{"room":"GAAAAAAHwqV0BAQ"}}'
        verdict, _ = WebhookVerifier(HOOK_SECRET).check(body, value, sign(HOOK_SECRET, value or "", body))
        assert verdict is Verdict.STALE


event_body = st.one_of(
    st.binary(max_size=300),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"type": st.sampled_from(["meeting.started", "meeting.ended", "participant.joined",
                                                    "participant.left", "recording.started"]) | json_value,
                           "id": st.text(max_size=20) | json_value,
                           "payload": st.fixed_dictionaries({"room": room_like | json_value}) | json_value}
                          ).map(lambda v: json.dumps(v).encode()),
)


@FAST
@given(event_body, st.text(max_size=25) | st.none(), st.text(max_size=60) | st.none(), st.booleans())
def test_webhook_verifier_never_raises(body: bytes, timestamp: str | None, signature: str | None,
                                       really_sign: bool) -> None:
    verifier = WebhookVerifier(HOOK_SECRET)
    if really_sign:
        timestamp = str(int(time.time()))
        signature = sign(HOOK_SECRET, timestamp, body)
    verdict, event = verifier.check(body, timestamp, signature)
    assert isinstance(verdict, Verdict)
    if verdict is Verdict.ACCEPTED:
        assert really_sign and event is not None and isinstance(event.room, str)
    if not really_sign:
        assert verdict in (Verdict.BAD_SIGNATURE, Verdict.PROBE, Verdict.STALE)


# ---- over HTTP ----------------------------------------------------------------------------------

header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=400)


def unchanged(client: Any, emulator: Any, notifier: Any) -> None:
    b = bridge_of(client)
    assert b.store.writes == 0 and not b.store.calls and not b.store.outbox
    assert not notifier.sent
    daily = {k: v for k, v in emulator.requests.items() if k != "GET /"}  # GET /: domain id at start-up
    assert not daily, daily


async def assert_refused_cleanly(resp: Any) -> None:
    body = await resp.read()
    assert resp.status < 500, (resp.status, body[:200])
    if resp.status >= 400 and resp.content_type == "application/json":
        data = json.loads(body)
        assert data["statusCode"] == resp.status and data["message"]


@HTTP
@given(jwt=token_like() | header_text, query=st.lists(st.tuples(st.sampled_from(
    ["initiator-username", "initiator-displayname", "initiator-avatarid", "x"]), query_values), max_size=4))
async def test_join_endpoint_with_hostile_tokens_and_queries(bridge, emulator, notifier, jwt, query):
    assume(all(0x20 <= ord(c) < 0x7F for c in jwt))  # what an HTTP header can carry
    async with bridge.get("/room/meeting_access_token", params=query, headers={"x-auth-jwt": jwt}) as resp:
        await assert_refused_cleanly(resp)
        assert 400 <= resp.status < 500 and resp.content_type == "application/json"  # the error body, not a page
    async with bridge.post("/room/end_meeting", headers={"x-auth-jwt": jwt}) as resp:
        await assert_refused_cleanly(resp)
    unchanged(bridge, emulator, notifier)


@HTTP
@given(body=event_body, timestamp=header_text, signature=header_text, really_sign=st.booleans())
async def test_webhook_endpoint_with_hostile_bodies(bridge, emulator, notifier, body, timestamp, signature,
                                                    really_sign):
    headers = signed_hook(body) if really_sign else \
        {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": signature}
    async with bridge.post("/room/hook", data=body, headers=headers) as resp:
        await assert_refused_cleanly(resp)
        assert really_sign or resp.status in (200, 401)  # 200 only for the {"test":"test"} probe
    b = bridge_of(bridge)
    await b.calls.drain()
    unchanged(bridge, emulator, notifier)


@pytest.mark.parametrize(("name", "size"), [("x-auth-jwt", 40_000), ("x-auth-jwt", 300_000),
                                            ("x-padding", 40_000), ("cookie", 200_000)])
async def test_oversized_headers_are_refused(bridge, emulator, notifier, signer, name, size):
    headers = {name: "e" * size}
    if name != "x-auth-jwt":
        headers["x-auth-jwt"] = signer.video_call_token("StartVideoCall", user_id=ALICE, chat_id={"Group": GROUP})
    async with bridge.get("/room/meeting_access_token", params={"initiator-username": "a"}, headers=headers) as resp:
        await resp.read()
        assert 400 <= resp.status < 500, resp.status
    async with bridge.get("/healthz") as resp:  # still serving
        assert resp.status == 200
    unchanged(bridge, emulator, notifier)


async def test_many_headers_and_long_urls_are_refused(bridge, emulator, notifier):
    headers = {f"x-h{i}": "v" * 100 for i in range(500)}
    async with bridge.get("/room/meeting_access_token", headers=headers) as resp:
        await resp.read()
        assert 400 <= resp.status < 500
    async with bridge.get("/room/meeting_access_token", params={"initiator-username": "u" * 100_000}) as resp:
        await resp.read()
        assert 400 <= resp.status < 500
    async with bridge.get("/" + "a" * 100_000) as resp:
        await resp.read()
        assert 400 <= resp.status < 500
    unchanged(bridge, emulator, notifier)


@pytest.mark.parametrize("size", [MAX_BODY + 1, 1_000_000, 20_000_000])
@pytest.mark.parametrize("declared", [True, False])
async def test_oversized_bodies_are_refused(bridge, emulator, notifier, size, declared):
    body = b'{"type":"meeting.ended","payload":{"room":"' + b"A" * size + b'"}}'
    headers = signed_hook(body)
    data: Any = body
    if not declared:  # chunked: no Content-Length to refuse up front

        async def chunks() -> Any:
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]

        data = chunks()
    async with bridge.post("/room/hook", data=data, headers=headers) as resp:
        await assert_refused_cleanly(resp)
        assert resp.status == 413 and resp.content_type == "application/json"  # with the error body
    async with bridge.post("/room/end_meeting", data=b"x" * min(size, 2_000_000),
                           headers={"x-auth-jwt": "x.y.z"}) as resp:
        await assert_refused_cleanly(resp)
    unchanged(bridge, emulator, notifier)


async def test_replayed_and_stale_webhooks_change_nothing(bridge, emulator, notifier):
    body = json.dumps({"type": "meeting.ended", "id": "evt-1", "payload": {"room": "GAAAAAAHwqV0BAQ"}}).encode()
    # a minute past each edge (20 min back, 5 ahead): the header holds whole seconds and a slow
    # request must not carry a stamp back inside the window
    for ts in (lambda: time.time() - 1260, lambda: time.time() + 360, lambda: (time.time() - 1300) * 1000):
        async with bridge.post("/room/hook", data=body, headers=signed_hook(body, timestamp=ts())) as resp:
            assert resp.status == 401
    headers = signed_hook(body)
    headers["X-Webhook-Signature"] = base64.b64encode(b"\0" * 32).decode()
    async with bridge.post("/room/hook", data=body, headers=headers) as resp:
        assert resp.status == 401
    unchanged(bridge, emulator, notifier)


async def test_malformed_http_is_refused_and_the_server_keeps_serving(bridge):
    import asyncio

    host, port = bridge.server.host, bridge.server.port
    for raw in (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                b"GET /room/meeting_access_token HTTP/1.1\r\nx-auth-jwt: a\x00b\r\n\r\n",
                b"POST /room/hook HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS to a plain port
                b"GET /" + b"%" * 20 + b" HTTP/1.1\r\n\r\n"):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(raw)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        if status_line:
            code = int(status_line.split()[1])
            assert code < 500, status_line
    async with bridge.get("/healthz") as resp:
        assert resp.status == 200
