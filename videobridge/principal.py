"""Internet Computer principals: text form <-> raw bytes, with checksum validation.

The text form is base32 (RFC 4648, lower case, no padding) of CRC32(bytes) || bytes, grouped
in fives with dashes. Kept dependency-free so the hot path never imports the IC agent.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib

MAX_PRINCIPAL_BYTES = 29
_TEXT_RE = re.compile(r"^[a-z2-7]{1,5}(-[a-z2-7]{1,5})*$")


class InvalidPrincipal(ValueError):
    """The text is not a well-formed principal."""


def principal_to_bytes(text: str) -> bytes:
    """Decode and checksum-verify a principal's text form."""
    if not isinstance(text, str) or not _TEXT_RE.match(text) or len(text) > 63:
        raise InvalidPrincipal("not a principal in text form")
    raw = text.replace("-", "").upper()
    try:
        decoded = base64.b32decode(raw + "=" * (-len(raw) % 8))
    except (binascii.Error, ValueError) as exc:
        raise InvalidPrincipal("not base32") from exc
    if len(decoded) < 4 or len(decoded) - 4 > MAX_PRINCIPAL_BYTES:
        raise InvalidPrincipal("wrong length")
    checksum, body = decoded[:4], decoded[4:]
    if zlib.crc32(body).to_bytes(4, "big") != checksum:
        raise InvalidPrincipal("bad checksum")
    if bytes_to_principal(body) != text:
        raise InvalidPrincipal("not in canonical form")
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
