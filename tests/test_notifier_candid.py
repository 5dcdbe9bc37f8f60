"""Candid encoding of the video-call methods and decoding of their reply (reference/ic.md §1.2, SPEC §9)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from fakeic import decode_call_arg

from videobridge.models import CanisterKind
from videobridge.notifier import CandidArgError, CandidReplyError, Error, Success, decode_reply, encode_args

# Produced by @dfinity/candid with the upstream video-bridge idl.js (ic.md §1.2).
GOLDEN_ARGS = [
    (CanisterKind.COMMUNITY, {"channel_id": 1576343893, "message_id": 99},
     "4449444c016c02979aec1c7993a5bf950d7801005519f55d6300000000000000"),
    (CanisterKind.GROUP, {"message_id": 1}, "4449444c016c0193a5bf950d7801000100000000000000"),
    # The pre-#9401 user end (VIDEOBRIDGE_LEGACY_USER_END): user_id = the other user.
    (CanisterKind.USER, {"user_id": "aaaaa-aa", "message_id": 12345},
     "4449444c016c028fc1d4fb066893a5bf950d78010001003930000000000000"),
]

# Built by hand from the Candid spec (DIDL, type table, arg types, values; fields in label-hash
# order; hash(label) = fold(h * 223 + byte) mod 2^32, LEB128): user_id 1869947023 = 8fc1d4fb06,
# them 1291584220 = dc85f0e704, message_id 3534738067 = 93a5bf950d, chat_id 3502107170 = a2d4f7850d,
# Group 757211935 = 9fc688e902, Channel 2585995427 = a3d18cd109, Direct 4043226953 = c9fefa870f,
# initiator_username 6701798 = e6859903, audio_only 149905589 = b5c1bd47, initiator 1038986415 =
# afd9b6ef03, max_duration 1372882831 = 8f8fd28e05, initiator_display_name 2988267896 = f8b2f5900b,
# call_type 4180408635 = bbf2afc90f, Default 1762984097 = a181d4c806, Broadcast 2162983649 = e185b28708.
# Principals: 01 <len> <bytes>; aaaaa-aa is empty, 2vxsx-fae (anonymous) is 04.
_DECLINED_TABLE = ("4449444c03"
                   "6c03" "8fc1d4fb06" "68" "a2d4f7850d" "01" "93a5bf950d" "78"  # 0: the record
                   "6b03" "9fc688e902" "68" "a3d18cd109" "02" "c9fefa870f" "68"  # 1: chat_id variant
                   "6c02" "00" "68" "01" "79"  # 2: record { principal; nat32 }
                   "0100")  # one argument, of type 0
GOLDEN_NEW = [
    # user end since #9401: {user_id: the owner, them: the other user, message_id}
    (CanisterKind.USER, "end_video_call_v2", {"user_id": "aaaaa-aa", "them": "2vxsx-fae", "message_id": 12345},
     "4449444c016c03" "dc85f0e704" "68" "8fc1d4fb06" "68" "93a5bf950d" "78" "0100"
     "010104" "0100" "3930000000000000"),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": "2vxsx-fae", "chat_id": {"Channel": ["aaaaa-aa", 2**32 - 1]}, "message_id": 2**64 - 1},
     _DECLINED_TABLE + "010104" + "01" "0100" "ffffffff" + "ffffffffffffffff"),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": "2vxsx-fae", "chat_id": {"Group": "aaaaa-aa"}, "message_id": 7},
     _DECLINED_TABLE + "010104" + "00" "0100" + "0700000000000000"),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": "aaaaa-aa", "chat_id": {"Direct": "2vxsx-fae"}, "message_id": 1},
     _DECLINED_TABLE + "0100" + "02" "010104" + "0100000000000000"),
    # group start of an Audio call: call_type Default, audio_only = opt true
    (CanisterKind.GROUP, "start_video_call_v2",
     {"message_id": 1, "initiator": "aaaaa-aa", "initiator_username": "alice", "initiator_display_name": None,
      "max_duration": 3_600_000, "call_type": "Default", "audio_only": True},
     "4449444c05"
     "6c07" "e6859903" "71" "b5c1bd47" "01" "afd9b6ef03" "68" "8f8fd28e05" "02" "f8b2f5900b" "03"
     "93a5bf950d" "78" "bbf2afc90f" "04"  # 0: the record
     "6e7e" "6e78" "6e71"  # 1: opt bool, 2: opt nat64, 3: opt text
     "6b02" "a181d4c806" "7f" "e185b28708" "7f"  # 4: variant { Default; Broadcast }
     "0100"
     "05" + b"alice".hex() + "0101" "0100" "01" "80ee360000000000" "00" "0100000000000000" "00"),
]
GOLDEN_SUCCESS = "4449444c036e716c02007a01006b02a8f7dc3201a39bfdac087f010201"
# The same agent-js type table, value `Error(101, opt "Video call type not allowed")`:
# variant index 0 (Error), nat16 101 little-endian, opt present, text of 27 bytes.
GOLDEN_ERROR = ("4449444c036e716c02007a01006b02a8f7dc3201a39bfdac087f0102" + "00" + "6500" + "01" + "1b"
                + b"Video call type not allowed".hex())

USER = "xkbqi-2qaaa-aaaah-qbpqq-cai"
START_COMMON: dict[str, Any] = {
    "message_id": 2**64 - 1, "initiator": USER, "initiator_username": "alice",
    "initiator_display_name": "Alice & Bob #1", "max_duration": 7_200_000, "call_type": "Broadcast",
    "audio_only": None,
}
ALL_SIX: list[tuple[CanisterKind, str, dict[str, Any]]] = [
    (CanisterKind.GROUP, "start_video_call_v2", START_COMMON),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "call_type": "Default", "audio_only": True}),
    (CanisterKind.GROUP, "end_video_call_v2", {"message_id": 0}),
    (CanisterKind.COMMUNITY, "start_video_call_v2", {"channel_id": 2**32 - 1, **START_COMMON}),
    (CanisterKind.COMMUNITY, "start_video_call_v2", {"channel_id": 9, **START_COMMON, "audio_only": False}),
    (CanisterKind.COMMUNITY, "end_video_call_v2", {"channel_id": 0, "message_id": 5}),
    (CanisterKind.USER, "start_video_call_v2",
     {"user_id": "2vxsx-fae", **START_COMMON, "initiator_avatar_id": 2**100 + 7, "call_type": "Default",
      "audio_only": True}),
    (CanisterKind.USER, "end_video_call_v2", {"user_id": "aaaaa-aa", "them": USER, "message_id": 2**63}),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": USER, "chat_id": {"Channel": ["aaaaa-aa", 3]}, "message_id": 2**63}),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": USER, "chat_id": {"Direct": "aaaaa-aa"}, "message_id": 1}),
]


@pytest.mark.parametrize(("kind", "args", "golden"), GOLDEN_ARGS)
def test_end_args_match_the_golden_vectors(kind: CanisterKind, args: dict[str, Any], golden: str) -> None:
    assert encode_args(kind, "end_video_call_v2", args).hex() == golden


@pytest.mark.parametrize(("kind", "method", "args", "golden"), GOLDEN_NEW,
                         ids=["user-end", "declined-channel", "declined-group", "declined-direct", "audio-start"])
def test_newer_shapes_match_hand_built_vectors(kind: CanisterKind, method: str, args: dict[str, Any],
                                               golden: str) -> None:
    assert encode_args(kind, method, args).hex() == golden
    # and the canister's own types (parsed from Candid text by the fake IC) read the hand-built bytes
    assert decode_call_arg(kind, method, bytes.fromhex(golden)) == args


def test_legacy_user_end_is_what_a_pre_9401_canister_reads() -> None:
    data = encode_args(CanisterKind.USER, "end_video_call_v2", {"user_id": USER, "message_id": 4})
    assert decode_call_arg(CanisterKind.USER, "end_video_call_v2", data, legacy=True) == {
        "user_id": USER, "message_id": 4}
    with pytest.raises(ValueError, match="mismatch"):  # a #9401 canister needs `them`
        decode_call_arg(CanisterKind.USER, "end_video_call_v2", data)


def test_a_pre_9401_canister_skips_the_new_start_fields() -> None:
    args = {"user_id": "2vxsx-fae", **START_COMMON, "initiator_avatar_id": None, "audio_only": True}
    ignored: list[str] = []
    decoded = decode_call_arg(CanisterKind.USER, "start_video_call_v2",
                              encode_args(CanisterKind.USER, "start_video_call_v2", args), legacy=True,
                              ignored=ignored)
    assert sorted(ignored) == ["audio_only", "user_id"]
    assert decoded == {k: v for k, v in args.items() if k not in ("user_id", "audio_only")}


def test_success_reply_golden_vector() -> None:
    assert decode_reply(bytes.fromhex(GOLDEN_SUCCESS)) == Success()


def test_error_reply_in_agent_js_layout() -> None:
    assert decode_reply(bytes.fromhex(GOLDEN_ERROR)) == Error(101, "Video call type not allowed")


def test_error_reply_in_icp_py_core_layout_and_without_message() -> None:
    from icp_candid import encode

    from videobridge.notifier.candid import unit_result_type

    for value, expected in [({"Error": [285, ["already ended"]]}, Error(285, "already ended")),
                            ({"Error": [201, []]}, Error(201, None)),
                            ({"Success": None}, Success())]:
        assert decode_reply(encode([{"type": unit_result_type(), "value": value}])) == expected


@pytest.mark.parametrize(("kind", "method", "args"), ALL_SIX)
def test_all_six_round_trip_through_the_did_text(kind: CanisterKind, method: str, args: dict[str, Any]) -> None:
    # The fake IC decodes against types parsed from the Candid text of openchat.md §3.3 and checks
    # the wire type table field by field, so this cross-checks the hand-built types.
    assert decode_call_arg(kind, method, encode_args(kind, method, args)) == args


def test_optional_fields_may_be_absent() -> None:
    args = {"user_id": USER, **START_COMMON, "initiator_display_name": None, "max_duration": None,
            "initiator_avatar_id": None}
    data = encode_args(CanisterKind.USER, "start_video_call_v2", args)
    assert decode_call_arg(CanisterKind.USER, "start_video_call_v2", data) == args


@pytest.mark.parametrize(("kind", "method", "args", "needle"), [
    (CanisterKind.GROUP, "end_video_call_v2", {}, "missing field(s): message_id"),
    (CanisterKind.GROUP, "end_video_call_v2", {"message_id": 1, "channel_id": 2},
     "unexpected field(s): channel_id"),
    (CanisterKind.GROUP, "end_video_call_v2", {"message_id": 2**64}, "does not fit in nat64"),
    (CanisterKind.GROUP, "end_video_call_v2", {"message_id": -1}, "natural number"),
    (CanisterKind.GROUP, "end_video_call_v2", {"message_id": True}, "natural number"),
    (CanisterKind.GROUP, "end_video_call_v2", {"message_id": "1"}, "natural number"),
    (CanisterKind.COMMUNITY, "end_video_call_v2", {"channel_id": 2**32, "message_id": 1}, "nat32"),
    (CanisterKind.USER, "end_video_call_v2", {"user_id": "not-a-principal", "message_id": 1}, "principal"),
    (CanisterKind.USER, "end_video_call_v2", {"user_id": USER, "them": "nope", "message_id": 1}, "them"),
    (CanisterKind.USER, "end_video_call_v2", {"them": USER, "message_id": 1}, "missing field(s): user_id"),
    (CanisterKind.USER, "start_video_call_v2", {**START_COMMON, "initiator_avatar_id": None},
     "missing field(s): user_id"),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "audio_only": "yes"}, "true or false"),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "audio_only": 1}, "true or false"),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "call_type": "Audio"}, "Default, Broadcast"),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": USER, "chat_id": {"Community": USER}, "message_id": 1}, "Direct, Group, Channel"),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": USER, "chat_id": {"Group": USER, "Direct": USER}, "message_id": 1}, "Direct, Group, Channel"),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": USER, "chat_id": {"Channel": [USER]}, "message_id": 1}, "[community, channel]"),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": USER, "chat_id": {"Channel": [USER, 2**32]}, "message_id": 1}, "nat32"),
    (CanisterKind.LOCAL_USER_INDEX, "video_call_declined",
     {"user_id": USER, "chat_id": {"Group": "x"}, "message_id": 1}, "chat_id.Group: not a principal"),
    (CanisterKind.LOCAL_USER_INDEX, "end_video_call_v2", {"message_id": 1}, "no method"),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "call_type": "Private"}, "Default, Broadcast"),
    (CanisterKind.GROUP, "start_video_call_v2", {k: v for k, v in START_COMMON.items() if k != "audio_only"},
     "missing field(s): audio_only"),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "initiator_username": None}, "text"),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "initiator_display_name": "\ud800"}, "Unicode"),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "max_duration": 2**64}, "nat64"),
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "initiator_avatar_id": 1}, "unexpected"),
    (CanisterKind.GROUP, "start_video_call", {"message_id": 1}, "no method"),
    ("wallet", "end_video_call_v2", {"message_id": 1}, "no method"),
])
def test_bad_arguments_are_refused(kind: Any, method: str, args: dict[str, Any], needle: str) -> None:
    with pytest.raises(CandidArgError) as info:
        encode_args(kind, method, args)
    assert needle in str(info.value)


@pytest.mark.parametrize("data", [
    b"", b"DIDL", b"not candid at all",
    bytes.fromhex("4449444c0001710568656c6c6f"),  # ("hello" : text)
    bytes.fromhex(GOLDEN_ARGS[1][2]),  # an argument record, not a reply
    bytes.fromhex("4449444c016b01d1a7cf027f010000"),  # variant { Other }: unknown label
    bytes.fromhex(GOLDEN_ERROR)[:-5],  # truncated
])
def test_garbage_replies_raise(data: bytes) -> None:
    with pytest.raises(CandidReplyError):
        decode_reply(data)


def test_importing_the_package_does_not_load_icp_py_core() -> None:
    code = ("import sys, videobridge.notifier; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'icp_agent', 'icp_candid', 'icp_core', 'icp_identity', 'httpx', 'ecdsa', 'cbor2'}); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
