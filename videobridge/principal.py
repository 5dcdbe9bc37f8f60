"""Internet Computer principals: text form <-> raw bytes, with checksum validation.

The text form is base32 (RFC 4648, lower case, no padding) of CRC32(bytes) || bytes, grouped
in fives with dashes. Kept dependency-free so the hot path never imports the IC agent.
"""

from __future__ import annotations

import base64
import functools
import re
import zlib

MAX_PRINCIPAL_BYTES = 29
_TEXT_RE = re.compile(r"^[a-z2-7]{1,5}(-[a-z2-7]{1,5})*$")
_GROUPED_RE = re.compile(r"(?:[a-z2-7]{5}-)*")  # after _TEXT_RE: canonical iff this eats all dashes
_TO_INT_BASE32 = str.maketrans("abcdefghijklmnopqrstuvwxyz234567", "0123456789abcdefghijklmnopqrstuv")
_VALID_TAIL = {0, 2, 4, 5, 7}  # unpadded base32 lengths mod 8 that whole bytes can produce


class InvalidPrincipal(ValueError):
    """The text is not a well-formed principal."""


def principal_to_bytes(text: str) -> bytes:
    """Decode and checksum-verify a principal's text form."""
    if not isinstance(text, str):
        raise InvalidPrincipal("not a principal in text form")
    return _decode(text)


@functools.lru_cache(maxsize=8192)  # pure; every join checks its chat's (and often its user's) again
def _decode(text: str) -> bytes:
    if not _TEXT_RE.match(text) or len(text) > 63:
        raise InvalidPrincipal("not a principal in text form")
    raw = text.replace("-", "")
    if len(raw) % 8 not in _VALID_TAIL or "-" in text[_GROUPED_RE.match(text).end():]:  # type: ignore[union-attr]
        raise InvalidPrincipal("not in canonical form")
    # base32 via int(): base64.b32decode is a pure-Python loop on 3.11 and this runs per request
    bits = 5 * len(raw)
    nbytes, spare = divmod(bits, 8)
    value = int(raw.translate(_TO_INT_BASE32), 32)
    if value & ((1 << spare) - 1):
        raise InvalidPrincipal("not in canonical form")  # non-zero padding bits
    decoded = (value >> spare).to_bytes(nbytes, "big")
    if len(decoded) < 4 or len(decoded) - 4 > MAX_PRINCIPAL_BYTES:
        raise InvalidPrincipal("wrong length")
    checksum, body = decoded[:4], decoded[4:]
    if zlib.crc32(body).to_bytes(4, "big") != checksum:
        raise InvalidPrincipal("bad checksum")
    return body


def bytes_to_principal(body: bytes) -> str:
    """Encode raw principal bytes into the canonical text form."""
    if len(body) > MAX_PRINCIPAL_BYTES:
        raise InvalidPrincipal("wrong length")
    data = zlib.crc32(body).to_bytes(4, "big") + body
    b32 = base64.b32encode(data).decode().rstrip("=").lower()
    return "-".join(b32[i : i + 5] for i in range(0, len(b32), 5))


def is_principal(text: object) -> bool:
    try:
        principal_to_bytes(text)  # type: ignore[arg-type]
    except InvalidPrincipal:
        return False
    return True
