"""Where a join's CPU goes: the bridge's per-join steps timed in-process, next to the floor's own work.

    python tests/bench/costs.py          # also run as the "costs" section of run.py

Each step runs on fresh inputs (distinct JWTs and users, as in the HTTP benchmark). The plain
reference implementations below cross-check the bridge's faster ones (equal outputs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import jwt  # noqa: E402
from rel_support import principals  # noqa: E402

from videobridge.auth import JwtVerifier, parse_claims  # noqa: E402
from videobridge.chats import GroupChat, room_name  # noqa: E402
from videobridge.daily.tokens import TokenGrant, self_signed_token  # noqa: E402
from videobridge.devjwt import DevSigner  # noqa: E402
from videobridge.principal import _decode, principal_to_bytes  # noqa: E402

decode_fresh = _decode.__wrapped__  # what principal_to_bytes costs for a principal not in its cache

API_KEY = "bench-daily-api-key-" + "0123456789abcdef" * 2


# ---- reference implementations, to check the bridge's fast paths against ------------------------

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_TO_DIGITS = str.maketrans(_B32, "0123456789abcdefghijklmnopqrstuv")
_ALPHABET = frozenset(_B32)


def fast_principal_to_bytes(text: str) -> bytes:
    """principal_to_bytes without base64.b32decode/encode (pure Python loops in CPython 3.11):
    int(..., 32) does the base32 in C; canonical form is checked structurally."""
    if not isinstance(text, str) or len(text) > 63:
        raise ValueError("not a principal")
    groups = text.split("-")
    raw = "".join(groups)
    if not raw or not _ALPHABET.issuperset(raw) or any(len(g) != 5 for g in groups[:-1]) \
            or not 1 <= len(groups[-1]) <= 5:
        raise ValueError("not a principal")
    bits = len(raw) * 5
    nbytes, pad = divmod(bits, 8)
    value = int(raw.translate(_TO_DIGITS), 32)
    if pad and value & ((1 << pad) - 1):
        raise ValueError("not canonical")
    data = (value >> pad).to_bytes(nbytes, "big")
    if len(data) < 4 or len(data) - 4 > 29 or -(-(len(data) * 8) // 5) != len(raw):
        raise ValueError("wrong length")
    body = data[4:]
    if zlib.crc32(body).to_bytes(4, "big") != data[:4]:
        raise ValueError("bad checksum")
    return body


_HS256_HEAD = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


def fast_hs256(claims: dict[str, Any], key: bytes) -> str:
    """The same token PyJWT makes, without PyJWT re-vetting the HMAC key on every call."""
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
    signing_input = _HS256_HEAD + b"." + body
    sig = base64.urlsafe_b64encode(hmac.new(key, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + sig).decode()


_ES256_HEAD = base64.urlsafe_b64encode(b'{"alg":"ES256"}').rstrip(b"=").decode()


def header_is_exact(token: str) -> bool:
    """The header check without decoding the whole token twice (OpenChat's header is a constant)."""
    return token.startswith(_ES256_HEAD + ".")


# ---- timing -------------------------------------------------------------------------------------

def per_call(fn: Callable[[Any], Any], inputs: Sequence[Any], repeat: int = 5) -> float:
    """Best of `repeat` passes over distinct inputs: seconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for item in inputs:
            fn(item)
        best = min(best, (time.perf_counter() - t) / len(inputs))
    return best


def measure(n: int = 2000) -> list[tuple[str, float, str]]:
    from videobridge.logs import access_line, configure_logging
    from videobridge.metrics import Metrics

    signer = DevSigner()
    verifier = JwtVerifier(signer.public_pem)
    group = principals(1, 3)[0]
    users = principals(n, 11)
    exp0 = int(time.time()) + 3600
    tokens = [signer.video_call_token("JoinVideoCall", user_id=u, chat_id={"Group": group}, exp=exp0 + i)
              for i, u in enumerate(users)]
    payloads = [jwt.decode(t, options={"verify_signature": False}) for t in tokens]
    key = verifier._key
    now = int(time.time())
    grants = [TokenGrant(room_name=room_name(GroupChat(group)), user_id=u, user_name=f"user{i}", owner=False,
                         broadcast=False, exp=exp0) for i, u in enumerate(users)]

    for u in users[:200]:  # the sketches must agree with the real thing
        assert fast_principal_to_bytes(u) == principal_to_bytes(u)
    for g in grants[:50]:
        claims = jwt.decode(self_signed_token(g, api_key=API_KEY, domain_id="d", now=now), API_KEY,
                            algorithms=["HS256"])
        assert self_signed_token(g, api_key=API_KEY, domain_id="d", now=now) == fast_hs256(
            {"r": claims["r"], "d": "d", "iat": now, "exp": g.exp, "ud": claims["ud"], "u": claims["u"],
             "o": False, "p": claims["p"]}, API_KEY.encode())
    assert all(header_is_exact(t) for t in tokens[:50])

    def floor_work(i: int) -> None:
        claims = jwt.decode(tokens[i], key, algorithms=["ES256"])
        jwt.encode({"r": "room", "d": "d", "iat": now, "exp": exp0, "ud": claims["user_id"], "u": "x", "o": False,
                    "p": {"hp": True, "cs": True, "ca": False}}, API_KEY, algorithm="HS256")

    idx = list(range(n))
    rows: list[tuple[str, float, str]] = []
    floor = per_call(floor_work, idx)
    rows.append(("floor's own work: PyJWT ES256 decode + HS256 encode", floor, "the floor"))
    rows.append(("JwtVerifier.verify (whole)", per_call(lambda i: verifier.verify(tokens[i]), idx), "bridge"))
    rows.append(("  of which jwt.decode ES256 (as the floor)", per_call(
        lambda i: jwt.decode(tokens[i], key, algorithms=["ES256"], leeway=10,
                             options={"require": ["exp"], "verify_aud": False, "verify_iss": False}), idx), "floor"))
    rows.append(("  of which parse_claims (principal checks, chat)",
                 per_call(lambda i: parse_claims(payloads[i]), idx), "bridge only"))
    rows.append(("    principal_to_bytes, a principal seen before (memoised)",
                 per_call(lambda i: principal_to_bytes(users[i]), idx), "bridge only"))
    rows.append(("    principal_to_bytes, a principal first seen", per_call(lambda i: decode_fresh(users[i]), idx),
                 "bridge only"))
    rows.append(("room_name(chat)", per_call(lambda i: room_name(GroupChat(group)), idx), "bridge only"))
    prepared = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).prepare_key(API_KEY)
    rows.append(("meeting token (HS256, key vetted once)", per_call(
        lambda i: self_signed_token(grants[i], api_key=API_KEY, domain_id="d", now=now, prepared_key=prepared),
        idx), "bridge"))
    rows.append(("  vs. jwt.encode, as the floor does", per_call(
        lambda i: jwt.encode({"r": grants[i].room_name, "d": "d", "iat": now, "exp": exp0,
                              "ud": grants[i].user_id, "u": grants[i].user_name, "o": False,
                              "p": {"hp": True, "cs": True, "ca": False}}, API_KEY, algorithm="HS256"), idx),
        "floor"))

    sink = io.StringIO()
    configure_logging(fmt="json", level="info", stream=sink)
    import structlog

    log = structlog.get_logger("videobridge.http").bind()  # as the middleware binds it
    rows.append(("access_line (JSON template, written at once; the server writes a loop round's together)", per_call(
        lambda i: access_line(log, method="GET", path="/room/meeting_access_token", status=200,
                              duration_ms=0.8, claim_type="JoinVideoCall", chat_kind="group", outcome="joined"),
        idx), "bridge only"))
    dumps = json.JSONEncoder(separators=(",", ":")).encode

    def plain_line(i: int) -> None:
        sink.write(dumps({"timestamp": time.time(), "level": "info", "event": "http_request", "method": "GET",
                          "path": "/room/meeting_access_token", "status": 200, "duration_ms": 0.8,
                          "claim_type": "JoinVideoCall", "chat_kind": "group", "outcome": "joined",
                          "logger": "videobridge.http"}) + "\n")

    rows.append(("  vs. one bare json.dumps + write of the same fields", per_call(plain_line, idx), "no redaction"))
    metrics = Metrics()
    rows.append(("Metrics.observe_http", per_call(
        lambda i: metrics.observe_http("/room/meeting_access_token", "GET", 200, 0.0008), idx), "bridge only"))
    configure_logging(fmt="json", level="info", stream=open(os.devnull, "w"))
    return rows


def render(rows: list[tuple[str, float, str]]) -> str:
    floor = rows[0][1]
    out = ["| step | µs per join | × floor's work | who pays |", "|---|---|---|---|"]
    out += [f"| {name} | {sec * 1e6:.1f} | {sec / floor:.2f}× | {who} |" for name, sec, who in rows]
    return "\n".join(out)


if __name__ == "__main__":
    print(render(measure()))
