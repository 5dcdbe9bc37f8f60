"""MultiUser user ids (OpenChat #9401): which canister holds a user, and the inverse, both ways."""

from __future__ import annotations

import pytest

from videobridge.principal import InvalidPrincipal, bytes_to_principal
from videobridge.userid import MAX_USER_INDEX, indexed_user_id, is_indexed, user_canister_id, user_index

# A canister id: big-endian u64 0x00000000_01a0c3e7 then the class tag 0x01 0x01.
CANISTER = bytes.fromhex("0000000001a0c3e7" "0101")
# The rule written out by hand: the first 8 bytes, then index & 0xff, then 0x80 | index >> 8.
VECTORS = [
    (0, "0000000001a0c3e7" "00" "80"),
    (1, "0000000001a0c3e7" "01" "80"),
    (255, "0000000001a0c3e7" "ff" "80"),
    (256, "0000000001a0c3e7" "00" "81"),
    (0x1234, "0000000001a0c3e7" "34" "92"),
    (32767, "0000000001a0c3e7" "ff" "ff"),
]


def text(hex_bytes: str) -> str:
    return bytes_to_principal(bytes.fromhex(hex_bytes))


def test_the_text_codec_agrees_with_icp_py_core() -> None:
    from icp_principal import Principal

    for _, raw in VECTORS:
        assert text(raw) == Principal(bytes.fromhex(raw)).to_str()
    assert text(CANISTER.hex()) == "724ke-xyaaa-aaaan-ayptq-cai"


@pytest.mark.parametrize(("index", "raw"), VECTORS, ids=[str(i) for i, _ in VECTORS])
def test_indexed_ids_map_to_their_canister_and_back(index: int, raw: str) -> None:
    user = text(raw)
    assert is_indexed(user)
    assert user_canister_id(user) == text(CANISTER.hex())
    assert user_index(user) == index
    assert indexed_user_id(text(CANISTER.hex()), index) == user


@pytest.mark.parametrize("raw", [
    CANISTER.hex(),  # a user alone in a User canister
    "0000000000000001" "0101",
    "00000000000000000101" "00",  # 11 bytes, last byte without the top bit
    "ff" * 10 + "02",  # 11 bytes
    "0000000001a0c3e7" "ff",  # 9 bytes ending in 0xff: not 10 bytes, so not indexed
    "aa" * 28 + "02",  # a self-authenticating principal (a bot, a webhook)
    "04",  # anonymous
])
def test_other_ids_are_their_own_canister(raw: str) -> None:
    user = text(raw)
    assert not is_indexed(user)
    assert user_canister_id(user) == user
    assert user_index(user) == 0


def test_the_derived_canister_is_never_indexed_and_derivation_is_idempotent() -> None:
    user = indexed_user_id(text(CANISTER.hex()), 77)
    canister = user_canister_id(user)
    assert not is_indexed(canister) and user_canister_id(canister) == canister


@pytest.mark.parametrize("index", [-1, MAX_USER_INDEX + 1, 2**16, True, 1.0])
def test_out_of_range_indexes_are_refused(index: object) -> None:
    with pytest.raises(ValueError, match="out of range"):
        indexed_user_id(text(CANISTER.hex()), index)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["0000000001a0c3e7" "0080", "aa" * 28 + "02", "0000000001a0c3e7" "0102"])
def test_only_a_canister_id_takes_an_index(raw: str) -> None:
    with pytest.raises(ValueError, match="not a canister id"):
        indexed_user_id(text(raw), 1)


def test_bad_text_is_refused() -> None:
    with pytest.raises(InvalidPrincipal):
        user_canister_id("not-a-principal")
