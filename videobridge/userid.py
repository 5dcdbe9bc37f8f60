"""OpenChat user ids and the canister that holds each user's data (OpenChat #9401, SPEC §9).

A user alone in a User canister is identified by that canister's id (10 bytes: a big-endian u64
and the class tag bytes 0x01 0x01). A user held in a MultiUser canister with others has an
*indexed* id: the canister id's first 8 bytes, then the user's 15-bit index in place of the tag
bytes (low byte first, then the high 7 bits with 0x80 set). No IC class tag has the top bit set,
so an indexed id can never be mistaken for a canister id.
"""

from __future__ import annotations

from videobridge.principal import bytes_to_principal, principal_to_bytes

CANISTER_ID_LENGTH = 10
CANISTER_ID_TAG = b"\x01\x01"
INDEXED_TAG = 0x80
MAX_USER_INDEX = (1 << 15) - 1


def _is_indexed(raw: bytes) -> bool:
    return len(raw) == CANISTER_ID_LENGTH and bool(raw[-1] & INDEXED_TAG)


def is_indexed(user_id: str) -> bool:
    """Whether the user shares a MultiUser canister (raises InvalidPrincipal for bad text)."""
    return _is_indexed(principal_to_bytes(user_id))


def user_canister_id(user_id: str) -> str:
    """The canister to notify about `user_id`'s copy of a direct chat: its own id unless indexed."""
    raw = principal_to_bytes(user_id)
    if not _is_indexed(raw):
        return user_id
    return bytes_to_principal(raw[:8] + CANISTER_ID_TAG)


def user_index(user_id: str) -> int:
    """The user's index within their MultiUser canister; 0 when the id is not indexed."""
    raw = principal_to_bytes(user_id)
    return raw[8] | ((raw[9] & ~INDEXED_TAG) << 8) if _is_indexed(raw) else 0


def indexed_user_id(canister_id: str, index: int) -> str:
    """The id of the user at `index` in MultiUser canister `canister_id` (the inverse of the above)."""
    raw = principal_to_bytes(canister_id)
    if len(raw) != CANISTER_ID_LENGTH or raw[8:] != CANISTER_ID_TAG:
        raise ValueError(f"not a canister id: {canister_id}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_USER_INDEX:
        raise ValueError(f"user index {index!r} is out of range 0..{MAX_USER_INDEX}")
    return bytes_to_principal(raw[:8] + bytes([index & 0xFF, INDEXED_TAG | (index >> 8)]))
