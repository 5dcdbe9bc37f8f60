#!/usr/bin/env python
"""`videobridge serve` with the join-path fixes suggested by the benchmark, monkeypatched in.

NOT the shipped code: an experiment to size the suggestions (run.py --with-fixes benchmarks it as
a fourth target). Same behaviour on the join path, same libraries, same log line per request:

1. JwtVerifier.verify: OpenChat's header is the constant {"alg":"ES256"}, so compare the first
   segment with its base64url instead of decoding the whole token once more with
   jwt.get_unverified_header (anything else takes the original, slower path and its errors).
2. principal_to_bytes: base32 through int(text, 32) (C) instead of base64.b32decode/b32encode,
   which are pure-Python loops on CPython 3.11; canonical form checked structurally.
3. self_signed_token: HS256 with the stdlib hmac module (byte-identical token) instead of
   jwt.encode, which re-vets the HMAC key on every call (PEM/SSH/DER/JSON probes).
4. access_line: one json.dumps + write of the same fields (path still scrubbed) instead of the
   generic structlog chain with recursive redaction of every value.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def apply() -> None:
    import jwt

    import videobridge.auth as auth
    import videobridge.chats as chats
    import videobridge.daily.tokens as tokens
    import videobridge.principal as principal
    import videobridge.web.middleware as middleware
    from costs import _ES256_HEAD, fast_hs256, fast_principal_to_bytes
    from videobridge.logs import scrub

    def principal_to_bytes(text: str) -> bytes:
        try:
            return fast_principal_to_bytes(text)
        except (ValueError, TypeError) as exc:
            raise principal.InvalidPrincipal(str(exc)) from None

    principal.principal_to_bytes = principal_to_bytes
    chats.principal_to_bytes = principal_to_bytes

    original_verify = auth.JwtVerifier.verify
    head = _ES256_HEAD + "."
    options = {"require": ["exp"], "verify_aud": False, "verify_iss": False}

    def verify(self: Any, token: str | None, *, now: float | None = None) -> Any:
        if not token or len(token) > auth.MAX_JWT_LENGTH or not token.startswith(head):
            return original_verify(self, token, now=now)
        try:
            payload = jwt.decode(token, self._key, algorithms=["ES256"], leeway=auth.CLOCK_SKEW_SECONDS,
                                 options=options)
        except jwt.PyJWTError:
            return original_verify(self, token, now=now)  # same refusal, same message
        return auth.parse_claims(payload, now=now)

    auth.JwtVerifier.verify = verify  # type: ignore[method-assign]

    def self_signed_token(grant: Any, *, api_key: str, domain_id: str, now: int) -> str:
        claims: dict[str, Any] = {"r": grant.room_name, "d": domain_id, "iat": now, "exp": grant.exp,
                                  "ud": grant.user_id[:tokens.USER_ID_MAX], "u": grant.user_name, "o": grant.owner}
        if grant.owner:
            claims["p"] = tokens._OWNER_P
        elif grant.broadcast:
            claims["vo"] = True
            claims["ao"] = True
            claims["p"] = tokens._AUDIENCE_P
        else:
            claims["p"] = tokens._PARTICIPANT_P
        return fast_hs256(claims, api_key.encode())

    tokens.self_signed_token = self_signed_token

    dumps = json.JSONEncoder(separators=(", ", ": ")).encode
    out = sys.stdout
    utc = datetime.timezone.utc

    def access_line(log: Any, *, method: str, path: str, status: int, duration_ms: float,
                    claim_type: str | None = None, chat_kind: str | None = None, **extra: Any) -> None:
        fields: dict[str, Any] = {
            "timestamp": datetime.datetime.now(utc).isoformat().replace("+00:00", "Z"),
            "level": "error" if status >= 500 else "info", "event": "http_request", "method": method,
            "path": scrub(path.split("?", 1)[0].split("#", 1)[0]), "status": status,
            "duration_ms": round(duration_ms, 3)}
        if claim_type is not None:
            fields["claim_type"] = claim_type
        if chat_kind is not None:
            fields["chat_kind"] = chat_kind
        fields.update((k, v) for k, v in extra.items() if v is not None)
        fields["logger"] = "videobridge.http"
        out.write(dumps(fields) + "\n")
        out.flush()

    middleware.access_line = access_line


if __name__ == "__main__":
    apply()
    from videobridge.cli import main

    sys.argv = ["videobridge", *sys.argv[1:]]
    main()
