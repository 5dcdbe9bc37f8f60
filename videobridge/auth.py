"""Verification of the JWTs the OpenChat backend mints for video calls.

Wire format (reference/openchat.md §2.2): header exactly {"alg":"ES256"}, claims `exp` (unix
seconds), `claim_type`, then the custom fields; raw r||s signature, base64url without padding.
Every OpenChat JWT is signed with the same key, so the claim type is whitelisted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from videobridge.chats import Chat, InvalidChat, chat_from_claim
from videobridge.errors import AuthError
from videobridge.models import CallType
from videobridge.principal import is_principal

MAX_JWT_LENGTH = 4096
CLOCK_SKEW_SECONDS = 10
_ALLOWED_HEADER = {"alg": "ES256"}
_OPENCHAT_HEADER = "eyJhbGciOiJFUzI1NiJ9."  # base64url('{"alg":"ES256"}') + "."


class ClaimType(StrEnum):
    START = "StartVideoCall"
    JOIN = "JoinVideoCall"
    END = "MarkVideoCallAsEnded"


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoCallClaims:
    claim_type: ClaimType
    user_id: str
    chat: Chat
    exp: int
    call_type: CallType = CallType.DEFAULT  # only StartVideoCall carries one
    is_diamond: bool = False


class JwtVerifier:
    """Holds the parsed OpenChat public key; `verify` is called on every request."""

    def __init__(self, public_key_pem: str) -> None:
        key = load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("the OpenChat key must be an EC (P-256) public key")
        self._key = key

    def verify(self, token: str | None, *, now: float | None = None) -> VideoCallClaims:
        if not token:
            raise AuthError("missing x-auth-jwt header")
        if len(token) > MAX_JWT_LENGTH:
            raise AuthError("x-auth-jwt is too long to be an OpenChat token")
        if not token.startswith(_OPENCHAT_HEADER):  # OpenChat's header is a constant: skip decoding it
            self._check_header(token)
        try:
            payload = jwt.decode(
                token, self._key, algorithms=["ES256"], leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp"], "verify_aud": False, "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("x-auth-jwt has expired") from None
        except jwt.InvalidSignatureError:
            raise AuthError("x-auth-jwt signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"x-auth-jwt rejected: {_reason(exc)}") from None
        return parse_claims(payload, now=now)


    @staticmethod
    def _check_header(token: str) -> None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("x-auth-jwt is not a JWT") from None
        if header.get("alg") != "ES256":
            raise AuthError("x-auth-jwt must be signed with ES256")
        if {k: v for k, v in header.items() if k != "typ"} != _ALLOWED_HEADER:
            raise AuthError("x-auth-jwt has an unexpected header")


def _reason(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    return text[:120]


def parse_claims(payload: Any, *, now: float | None = None) -> VideoCallClaims:
    """Turn verified claims into a typed value, refusing anything OpenChat would not mint."""
    if not isinstance(payload, dict):
        raise AuthError("JWT claims must be an object")
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int):
        raise AuthError("JWT exp must be whole unix seconds")
    if exp + CLOCK_SKEW_SECONDS < (time.time() if now is None else now):
        raise AuthError("x-auth-jwt has expired")
    raw_type = payload.get("claim_type")
    try:
        claim_type = ClaimType(str(raw_type))
    except ValueError:
        raise AuthError("JWT claim_type is not a video call claim") from None
    user_id = payload.get("user_id")
    if not isinstance(user_id, str) or not is_principal(user_id):
        raise AuthError("JWT user_id is not a valid principal")
    try:
        chat = chat_from_claim(payload.get("chat_id"), user_id)
    except InvalidChat as exc:
        raise AuthError(f"JWT chat_id: {exc}") from None
    if claim_type is not ClaimType.START:
        return VideoCallClaims(claim_type=claim_type, user_id=user_id, chat=chat, exp=exp)
    raw_call_type = payload.get("call_type")
    try:
        call_type = CallType(str(raw_call_type))
    except ValueError:
        raise AuthError("JWT call_type must be Default or Broadcast") from None
    is_diamond = payload.get("is_diamond", False)
    if not isinstance(is_diamond, bool):
        raise AuthError("JWT is_diamond must be a boolean")
    return VideoCallClaims(claim_type=claim_type, user_id=user_id, chat=chat, exp=exp,
                           call_type=call_type, is_diamond=is_diamond)
