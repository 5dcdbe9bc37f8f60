"""Daily meeting tokens for call participants.

Tokens are self-signed (HS256 with the API key, short claim names, daily-api.md §4.4) whenever
the domain id is known: no network, no rate limit. Only without a domain id do we fall back to
POST /meeting-tokens with the long property names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from videobridge.daily.client import DailyClient

USER_ID_MAX = 36  # Daily rejects longer user_id values

# Short-form permissions per role. Shared, never mutated: this runs on every join.
_OWNER_P = {"hp": True, "cs": True, "ca": True}
_PARTICIPANT_P = {"hp": True, "cs": True, "ca": False}
_AUDIENCE_P = {"hp": False, "cs": False, "ca": False}  # Broadcast: hidden, receive only
# Audio calls (SPEC §9): everyone, owner included, may send audio only.
_AUDIO_OWNER_P = {"hp": True, "cs": "a", "ca": True}
_AUDIO_PARTICIPANT_P = {"hp": True, "cs": "a", "ca": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenGrant:
    room_name: str
    user_id: str
    user_name: str
    owner: bool  # the user who started the call (presenter in a Broadcast)
    broadcast: bool
    exp: int  # unix seconds; equal to the room's exp
    audio_only: bool = False  # an Audio call: send audio only, camera off at the start


_HS256 = jwt.get_algorithm_by_name("HS256")
_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")  # as PyJWT writes it
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_str = json.encoder.encode_basestring_ascii  # what _dumps writes for a string


def _sign_json(claims: str, key: bytes) -> str:
    """HS256 with a key PyJWT prepared once: jwt.encode re-vets the key on every call.

    The MAC is PyJWT's (HMAC-SHA256 of header.payload), computed by OpenSSL in one call
    instead of through an hmac.HMAC object.
    """
    body = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=")
    signing_input = _HEADER + b"." + body
    signature = base64.urlsafe_b64encode(hmac.digest(key, signing_input, hashlib.sha256)).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def self_signed_token(grant: TokenGrant, *, api_key: str, domain_id: str, now: int,
                      prepared_key: Any | None = None) -> str:
    return _sign_json(_claims_json(grant, domain_id, now),
                      prepared_key if prepared_key is not None else _HS256.prepare_key(api_key))


def token_claims(grant: TokenGrant, *, domain_id: str, now: int) -> dict[str, Any]:
    """The claims of a self-signed token, in the order they are written."""
    claims: dict[str, Any] = {
        "r": grant.room_name,
        "d": domain_id,
        "iat": now,
        "exp": grant.exp,
        "ud": grant.user_id[:USER_ID_MAX],
        "u": grant.user_name,
        "o": grant.owner,
    }
    claims.update(_role_claims(bool(grant.audio_only), bool(grant.owner), bool(grant.broadcast)))
    return claims


def _role_claims(audio_only: bool, owner: bool, broadcast: bool) -> dict[str, Any]:
    if audio_only:
        return {"vo": True, "p": _AUDIO_OWNER_P if owner else _AUDIO_PARTICIPANT_P}
    if owner:
        return {"p": _OWNER_P}
    if broadcast:
        return {"vo": True, "ao": True, "p": _AUDIENCE_P}
    return {"p": _PARTICIPANT_P}


# The role's claims as _dumps writes them inside the object (no braces), per (audio_only, owner, broadcast).
_ROLE_JSON = {(a, o, b): _dumps(_role_claims(a, o, b))[1:-1]
              for a in (False, True) for o in (False, True) for b in (False, True)}


def _claims_json(grant: TokenGrant, domain_id: str, now: int) -> str:
    """_dumps(token_claims(...)), written out: the same text, without JSONEncoder's set-up."""
    if not (type(now) is int and type(grant.exp) is int and type(grant.owner) is bool
            and type(grant.room_name) is str and type(domain_id) is str and type(grant.user_id) is str
            and type(grant.user_name) is str):
        return _dumps(token_claims(grant, domain_id=domain_id, now=now))
    role = _ROLE_JSON[bool(grant.audio_only), grant.owner, bool(grant.broadcast)]
    return (f'{{"r":{_str(grant.room_name)},"d":{_str(domain_id)},"iat":{now},"exp":{grant.exp},'
            f'"ud":{_str(grant.user_id[:USER_ID_MAX])},"u":{_str(grant.user_name)},'
            f'"o":{"true" if grant.owner else "false"},{role}}}')


def rest_token_properties(grant: TokenGrant) -> dict[str, Any]:
    """The same grant in the long form POST /meeting-tokens expects."""
    audience = grant.broadcast and not grant.owner
    props: dict[str, Any] = {
        "room_name": grant.room_name,
        "user_id": grant.user_id[:USER_ID_MAX],
        "user_name": grant.user_name,
        "is_owner": grant.owner,
        "exp": grant.exp,
        "permissions": {
            "hasPresence": not audience,
            "canSend": not audience,
            "canAdmin": grant.owner,
        },
    }
    if audience:
        props["start_video_off"] = True
        props["start_audio_off"] = True
    elif grant.audio_only:
        props["start_video_off"] = True
        props["permissions"]["canSend"] = ["audio"]
    return props


class TokenMinter:
    """Mints tokens the cheapest way available: locally when the domain id is known."""

    def __init__(
        self,
        *,
        api_key: str,
        domain_id: str | None,
        client: DailyClient | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not domain_id and client is None:
            raise ValueError("TokenMinter needs a domain id or a Daily client")
        self._api_key = api_key
        self._key = _HS256.prepare_key(api_key)
        self._domain_id = domain_id or None
        self._client = client
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenMinter(self_signing={self.self_signing})"

    @property
    def self_signing(self) -> bool:
        return self._domain_id is not None

    def set_domain_id(self, domain_id: str) -> None:
        """Switch to self-signing once the domain id is known (e.g. fetched late from GET /)."""
        if not domain_id:
            raise ValueError("domain_id must not be empty")
        self._domain_id = domain_id

    async def mint(self, grant: TokenGrant) -> str:
        if self._domain_id is not None:
            return self_signed_token(grant, api_key=self._api_key, domain_id=self._domain_id,
                                     now=int(self._clock()), prepared_key=self._key)
        assert self._client is not None  # guaranteed by __init__
        return await self._client.create_meeting_token(rest_token_properties(grant))
