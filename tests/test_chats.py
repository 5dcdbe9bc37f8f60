"""Principals and room names, compatible with the original bridge."""

from __future__ import annotations

import pytest
from helpers import ALICE, BOB, COMMUNITY, GROUP

from videobridge.chats import (
    ChannelChat,
    DirectChat,
    GroupChat,
    InvalidChat,
    chat_from_claim,
    chat_from_json,
    chat_from_room,
    chat_to_json,
    parse_channel_id,
    room_name,
)
from videobridge.principal import InvalidPrincipal, bytes_to_principal, principal_to_bytes


@pytest.mark.parametrize("text", [ALICE, GROUP, "aaaaa-aa", "2vxsx-fae",
                                  "wp3oc-ig6b4-6xvef-yoj27-qt3kw-u2xmp-qbvuv-2grco-s2ndy-wv3ud-7qe"])
def test_principal_round_trip(text):
    assert bytes_to_principal(principal_to_bytes(text)) == text


@pytest.mark.parametrize("text", ["", "abc", "724ke-xyaaa-aaaan-ayptq-caa", "724KE-XYAAA-AAAAN-AYPTQ-CAI",
                                  "724ke-xyaaaaaaan-ayptq-cai", "-aaaa", "aaaaa-aa-"])
def test_bad_principals(text):
    with pytest.raises(InvalidPrincipal):
        principal_to_bytes(text)


def test_spec_examples():
    assert room_name(chat_from_claim({"Group": GROUP}, ALICE)) == "GAAAAAAHwqV0BAQ"
    assert room_name(chat_from_claim({"Direct": ALICE}, BOB)) == "DAAAAAAGgw_cBAQAAAAAAIBR7IBAQ"
    assert room_name(chat_from_claim({"Direct": BOB}, ALICE)) == "DAAAAAAGgw_cBAQAAAAAAIBR7IBAQ"
    assert room_name(chat_from_claim({"Channel": [COMMUNITY, 2846315027]}, ALICE)) == \
        "CAAAAAAIw1BwBAQAAAAAAAAAAAAAAAAqadSEw"


@pytest.mark.parametrize("chat", [GroupChat(GROUP), DirectChat.between(ALICE, BOB), ChannelChat(COMMUNITY, 0),
                                  ChannelChat(COMMUNITY, 2**32 - 1)])
def test_room_names_decode_back(chat):
    assert chat_from_room(room_name(chat)) == chat
    assert chat_from_json(chat_to_json(chat)) == chat


def test_channel_ids_reduce_mod_2_32():
    assert parse_channel_id(2**32 + 5) == 5 == parse_channel_id(str(2**32 + 5))
    for bad in (-1, "x", True, 1.5, None, "1" * 41):
        with pytest.raises(InvalidChat):
            parse_channel_id(bad)


@pytest.mark.parametrize("name", ["", "X", "G!", "Ga=c", "D" + "A" * 10, "C" + "A" * 20, "G" + "A" * 200])
def test_foreign_room_names_are_refused(name):
    with pytest.raises(InvalidChat):
        chat_from_room(name)


def test_direct_chat_knows_the_other_user():
    chat = DirectChat.between(BOB, ALICE)
    assert chat.users == (ALICE, BOB) and chat.other(ALICE) == BOB and chat.other(BOB) == ALICE


def test_direct_and_channel_chats_need_canister_ids():
    short = bytes_to_principal(b"\x01\x02")
    with pytest.raises(InvalidChat, match="canister id"):
        chat_from_claim({"Direct": short}, ALICE)
    with pytest.raises(InvalidChat, match="canister id"):
        chat_from_claim({"Direct": BOB}, short)
    with pytest.raises(InvalidChat, match="canister id"):
        chat_from_claim({"Channel": [short, 1]}, ALICE)
    assert chat_from_claim({"Group": short}, ALICE) == GroupChat(short)  # group names have one id only
