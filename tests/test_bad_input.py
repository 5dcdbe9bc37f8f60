"""Hostile and malformed requests: each gets a 4xx JSON error and changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from helpers import ALICE, GROUP, bridge_of, start_token

from videobridge.devjwt import DevSigner, b64url


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"exp": int(time.time()) + 300, "claim_type": "StartVideoCall", "user_id": ALICE,
                            "chat_id": {"Group": GROUP}, "call_type": "Default", "is_diamond": False}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hs256_with_public_key(signer: DevSigner) -> str:
    head = b64url(b'{"alg":"HS256"}')
    body = b64url(json.dumps(claims()).encode())
    mac = hmac.new(signer.public_pem.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def tampered(signer: DevSigner) -> str:
    head, _, sig = signer.sign(claims()).split(".")
    other = b64url(json.dumps(claims(user_id="hut2x-yaaaa-aaaaq-bi6za-cai")).encode())
    return f"{head}.{other}.{sig}"


CASES: dict[str, Any] = {
    "no header": lambda s, o: (None, {}),
    "empty header": lambda s, o: ("", {}),
    "not a jwt": lambda s, o: ("hello", {}),
    "expired": lambda s, o: (s.sign(claims(exp=int(time.time()) - 600)), {}),
    "wrong key": lambda s, o: (o.sign(claims()), {}),
    "alg none": lambda s, o: (unsigned({"alg": "none"}, claims()), {}),
    "HS256 keyed with the public key": lambda s, o: (hs256_with_public_key(s), {}),
    "tampered payload": lambda s, o: (tampered(s), {}),
    "extra header field": lambda s, o: (s.sign(claims(), header={"alg": "ES256", "kid": "x"}), {}),
    "unknown claim type": lambda s, o: (s.sign(claims(claim_type="Translate")), {}),
    "bad principal": lambda s, o: (s.sign(claims(user_id="not-a-principal")), {}),
    "bad principal checksum": lambda s, o: (s.sign(claims(user_id="724ke-xyaaa-aaaan-ayptq-caa")), {}),
    "unknown chat kind": lambda s, o: (s.sign(claims(chat_id={"Huddle": GROUP})), {}),
    "two chat kinds": lambda s, o: (s.sign(claims(chat_id={"Group": GROUP, "Direct": GROUP})), {}),
    "direct with yourself": lambda s, o: (s.sign(claims(chat_id={"Direct": ALICE})), {}),
    "negative channel id": lambda s, o: (s.sign(claims(chat_id={"Channel": [GROUP, -1]})), {}),
    "channel id not a number": lambda s, o: (s.sign(claims(chat_id={"Channel": [GROUP, "12x"]})), {}),
    "unknown call type": lambda s, o: (s.sign(claims(call_type="Huddle")), {}),
    "is_diamond not a bool": lambda s, o: (s.sign(claims(is_diamond="yes")), {}),
    "missing exp": lambda s, o: (s.sign(claims(exp=None)), {}),
    "exp as text": lambda s, o: (s.sign(claims(exp=str(int(time.time()) + 300))), {}),
    "huge header": lambda s, o: ("e" * 20_000, {}),
    "missing username": lambda s, o: (start_token(s), {"initiator-username": None}),
    "empty username": lambda s, o: (start_token(s), {"initiator-username": "  "}),
    "avatar id not a number": lambda s, o: (start_token(s), {"initiator-avatarid": "12ab"}),
    "avatar id above u128": lambda s, o: (start_token(s), {"initiator-avatarid": str(2**128)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_request_is_a_4xx_json_error_and_changes_nothing(case, bridge, signer, other_signer, emulator, settings):
    token, query_changes = CASES[case](signer, other_signer)
    params = {"initiator-username": "alice", **query_changes}
    params = {k: v for k, v in params.items() if v is not None}
    headers = {} if token is None else {"x-auth-jwt": token}
    before = settings.state_path.read_bytes() if settings.state_path.exists() else None
    async with bridge.get("/room/meeting_access_token", params=params, headers=headers) as resp:
        assert 400 <= resp.status < 500, await resp.text()
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert body["statusCode"] == resp.status and body["message"]
    assert token is None or len(token) < 30 or token not in json.dumps(body)
    assert not bridge_of(bridge).store.calls
    assert before == (settings.state_path.read_bytes() if settings.state_path.exists() else None)
    assert 0 == emulator.requests["POST /rooms"]


async def test_end_meeting_with_bad_tokens_is_401(bridge, other_signer):
    for token in ("", "x.y.z", other_signer.sign(claims(claim_type="MarkVideoCallAsEnded"))):
        async with bridge.post("/room/end_meeting", headers={"x-auth-jwt": token}) as resp:
            assert resp.status == 401
            assert (await resp.json())["statusCode"] == 401


async def test_unknown_path_and_method_are_json(bridge):
    async with bridge.get("/nope") as resp:
        assert resp.status == 404 and (await resp.json())["statusCode"] == 404
    async with bridge.delete("/room/meeting_access_token") as resp:
        assert resp.status == 405 and (await resp.json())["statusCode"] == 405
