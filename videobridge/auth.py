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
    PARTICIPANT = "VideoCallParticipant"  # newer clients (SPEC §9): decline and leave
    DECLINE = "DeclineVideoCall"  # minted by the local user index for the ring screen


# Which claim types each endpoint takes (SPEC §9); any other video-call claim is a 401 there.
ACCESS_CLAIMS = frozenset({ClaimType.START, ClaimType.JOIN})
END_CLAIMS = frozenset({ClaimType.END})
DECLINE_CLAIMS = frozenset({ClaimType.DECLINE, ClaimType.PARTICIPANT})
LEAVE_CLAIMS = frozenset({ClaimType.PARTICIPANT, ClaimType.JOIN})
U64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoCallClaims:
    claim_type: ClaimType
    user_id: str
    chat: Chat
    exp: int
    call_type: CallType = CallType.DEFAULT  # only StartVideoCall carries one; Audio from audio_only
    is_diamond: bool = False
    local_user_index: str | None = None  # Join (optional), VideoCallParticipant, DeclineVideoCall
    message_id: int | None = None  # DeclineVideoCall only


class JwtVerifier:
    """Holds the parsed OpenChat public key; `verify` is called on every request."""

    def __init__(self, public_key_pem: str) -> None:
        key = load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("the OpenChat key must be an EC (P-256) public key")
        self._key = key

    def verify(self, token: str | None, *, accept: frozenset[ClaimType] | None = None,
               now: float | None = None) -> VideoCallClaims:
        """Verify and parse; with `accept`, any other claim type is refused (401)."""
        claims = self._verify(token, now=now)
        if accept is not None and claims.claim_type not in accept:
            raise AuthError(f"a {claims.claim_type.value} token is not accepted here")
        return claims

    def _verify(self, token: str | None, *, now: float | None) -> VideoCallClaims:
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
    if claim_type is ClaimType.START:
        return _start_claims(payload, user_id=user_id, chat=chat, exp=exp)
    if claim_type is ClaimType.END:
        return VideoCallClaims(claim_type=claim_type, user_id=user_id, chat=chat, exp=exp)
    # Join may carry a local user index (null or absent on older clients); the new claims must.
    required = claim_type is ClaimType.DECLINE
    local_user_index = _optional_principal(payload.get("local_user_index"), "local_user_index",
                                           required=required)
    message_id = _message_id(payload.get("message_id")) if claim_type is ClaimType.DECLINE else None
    return VideoCallClaims(claim_type=claim_type, user_id=user_id, chat=chat, exp=exp,
                           local_user_index=local_user_index, message_id=message_id)


def _start_claims(payload: dict[str, Any], *, user_id: str, chat: Chat, exp: int) -> VideoCallClaims:
    raw_call_type = payload.get("call_type")
    if raw_call_type not in (CallType.DEFAULT.value, CallType.BROADCAST.value):
        raise AuthError("JWT call_type must be Default or Broadcast")
    call_type = CallType(raw_call_type)
    is_diamond = payload.get("is_diamond", False)
    if not isinstance(is_diamond, bool):
        raise AuthError("JWT is_diamond must be a boolean")
    audio_only = payload.get("audio_only", False)
    if audio_only is None:
        audio_only = False
    if not isinstance(audio_only, bool):
        raise AuthError("JWT audio_only must be a boolean")
    if audio_only and call_type is CallType.DEFAULT:
        call_type = CallType.AUDIO  # a Broadcast with audio_only stays a Broadcast (SPEC §9)
    return VideoCallClaims(claim_type=ClaimType.START, user_id=user_id, chat=chat, exp=exp,
                           call_type=call_type, is_diamond=is_diamond)


def _optional_principal(value: Any, name: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise AuthError(f"JWT {name} is required for this claim type")
        return None
    if not isinstance(value, str) or not is_principal(value):
        raise AuthError(f"JWT {name} is not a valid principal")
    return value


def _message_id(value: Any) -> int:
    """DeclineVideoCall's `message_id`: a decimal u64 string (a JSON number is tolerated)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) <= 20:
        number = int(value)
    else:
        raise AuthError("JWT message_id must be a decimal u64 string")
    if not 0 < number <= U64_MAX:
        raise AuthError("JWT message_id must be a non-zero u64")
    return number
