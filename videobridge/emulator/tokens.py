"""Meeting-token checks the way Daily does them.

Self-signed tokens: HS256 with the API key, short claim names only, `r`, `d` and `iat` required,
`d` must be our domain id. Tokens from POST /meeting-tokens are signed with a secret only the
emulator knows (like Daily's own) and remembered, so a forged look-alike is refused.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from videobridge.emulator.state import EmulatorError, is_int

SHORT_TO_LONG = {
    "nbf": "nbf", "exp": "exp", "iat": "iat", "d": "domain_id", "r": "room_name", "ud": "user_id",
    "u": "user_name", "o": "is_owner", "k": "knocking", "ctoe": "close_tab_on_exit",
    "rome": "redirect_on_meeting_exit", "ij": "intercom_join_alert", "sro": "start_cloud_recording_opts",
    "er": "enable_recording", "ss": "enable_screenshare", "vo": "start_video_off", "ao": "start_audio_off",
    "mjh": "meeting_join_hook", "ejt": "eject_at_token_exp", "eje": "eject_after_elapsed", "uil": "lang",
    "erui": "enable_recording_ui", "p": "permissions", "sr": "start_cloud_recording",
    "ast": "auto_start_transcription",
}  # fmt: skip
LONG_TO_SHORT = {long: short for short, long in SHORT_TO_LONG.items()}
# Long properties POST /meeting-tokens accepts that have no self-signed abbreviation.
_REST_ONLY = {"enable_prejoin_ui", "enable_live_captions_ui", "enable_terse_logging"}
_PERMS = {"hp": "hasPresence", "cs": "canSend", "cr": "canReceive", "ca": "canAdmin"}
_SEND = {"v": "video", "a": "audio", "sv": "screenVideo", "sa": "screenAudio"}
_ADMIN = {"p": "participants", "s": "streaming", "t": "transcription"}
_BOOL_PROPERTIES = {"is_owner", "start_video_off", "start_audio_off", "enable_screenshare", "knocking",
                    "eject_at_token_exp"}
USER_ID_MAX = 36


def long_permissions(short: Mapping[str, Any]) -> dict[str, Any]:
    """Self-signed `p` ({"hp": .., "cs": "v,a", ..}) in the REST form ({"hasPresence": .., ...})."""
    out: dict[str, Any] = {}
    for key, value in short.items():
        name = _PERMS.get(key, key)
        if name in ("canSend", "canAdmin") and isinstance(value, str):
            table = _SEND if name == "canSend" else _ADMIN
            value = [table.get(part.strip(), part.strip()) for part in value.split(",") if part.strip()]
        out[name] = value
    return out


def permissions_problem(perms: Mapping[str, Any]) -> str | None:
    """What is wrong with long-form permissions (daily-api.md §3.2), or None."""
    for key, value in perms.items():
        if key == "hasPresence" and not isinstance(value, bool):
            return "permissions.hasPresence must be a boolean"
        if key in ("canSend", "canAdmin"):
            allowed = set((_SEND if key == "canSend" else _ADMIN).values())
            if not isinstance(value, bool) and not (
                    isinstance(value, list) and all(isinstance(v, str) and v in allowed for v in value)):
                return f"permissions.{key} must be a boolean or a list of {', '.join(sorted(allowed))}"
        elif key == "canReceive":
            if not isinstance(value, dict):
                return "permissions.canReceive must be an object"
        elif key != "hasPresence":
            return f"unknown permission {key}"
    return None


def _props_problem(props: Mapping[str, Any]) -> str | None:
    """Value checks shared by POST /meeting-tokens and self-signed tokens (long names)."""
    for key, value in props.items():
        if key in _BOOL_PROPERTIES and not isinstance(value, bool):
            return f"{key} must be a boolean"
        if key == "permissions":
            if not isinstance(value, dict):
                return "permissions must be an object"
            problem = permissions_problem(value)
            if problem:
                return problem
    return None


def validate_rest_properties(props: Mapping[str, Any]) -> str | None:
    """What is wrong with POST /meeting-tokens properties, or None."""
    for key, value in props.items():
        if key in ("domain_id", "iat") or (key not in LONG_TO_SHORT and key not in _REST_ONLY):
            return f"unknown property {key}"
        if key in ("exp", "nbf", "eject_after_elapsed") and not is_int(value):
            return f"{key} must be an integer (unix seconds)"
        if key in ("room_name", "user_name", "user_id") and not isinstance(value, str):
            return f"{key} must be a string"
    problem = _props_problem(props)
    if problem:
        return problem
    user_id = props.get("user_id")
    if isinstance(user_id, str) and len(user_id) > USER_ID_MAX:
        return f"user_id must be at most {USER_ID_MAX} characters"
    return None


class TokenBook:
    def __init__(self, *, api_key: str, domain_id: str, clock: Callable[[], float] = time.time) -> None:
        self._api_key = api_key
        self._domain_id = domain_id
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self._issued: dict[str, dict[str, Any]] = {}

    def issue(self, props: Mapping[str, Any]) -> str:
        """A token for already-validated long-form properties (POST /meeting-tokens)."""
        now = int(self._clock())
        claims = {LONG_TO_SHORT.get(k, k): v for k, v in props.items()}
        claims.update(d=self._domain_id, iat=now)
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        self._issued[token] = {**props, "domain_id": self._domain_id, "iat": now}
        return token

    def properties(self, token: str, *, ignore_nbf: bool = False) -> dict[str, Any]:
        """Long-form properties of a valid token; EmulatorError(reason) otherwise."""
        props = self._issued.get(token)
        if props is None:
            props = self._self_signed(token)
        now = self._clock()
        exp, nbf = props.get("exp"), props.get("nbf")
        if exp is not None and (not is_int(exp) or exp <= now):
            raise EmulatorError("exp-token", "meeting token has expired")
        if nbf is not None and not ignore_nbf and (not is_int(nbf) or nbf > now):
            raise EmulatorError("nbf-token", "meeting token is not valid yet")
        return props

    def _self_signed(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self._api_key,
                algorithms=["HS256"],
                # Time claims are checked against the emulator's clock below, not the wall clock.
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise EmulatorError("invalid-token", f"signature or format rejected ({type(exc).__name__})") from None
        unknown = sorted(k for k in claims if k not in SHORT_TO_LONG)
        if unknown:  # Daily ignores tokens with long or standard claim names
            raise EmulatorError("invalid-token", f"unknown claims {unknown}")
        for required in ("r", "d", "iat"):
            if required not in claims:
                raise EmulatorError("invalid-token", f"missing claim {required}")
        if claims["d"] != self._domain_id:
            raise EmulatorError("invalid-token", "token is for another domain")
        if not is_int(claims["iat"]):
            raise EmulatorError("invalid-token", "iat must be an integer")
        props = {SHORT_TO_LONG[k]: v for k, v in claims.items()}
        short_p = props.get("permissions")
        if isinstance(short_p, dict):
            unknown_p = sorted(k for k in short_p if k not in _PERMS)
            if unknown_p:  # long names inside `p` are not understood either
                raise EmulatorError("invalid-token", f"unknown permission claims {unknown_p}")
            if any(isinstance(short_p.get(k), list) for k in ("cs", "ca")):  # arrays are the REST form
                raise EmulatorError("invalid-token", "p.cs and p.ca take a comma-separated string")
            props["permissions"] = long_permissions(short_p)
        problem = _props_problem(props)
        if problem:
            raise EmulatorError("invalid-token", problem)
        return props
