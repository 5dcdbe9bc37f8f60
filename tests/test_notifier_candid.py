"""Candid encoding of the six methods and decoding of their reply (reference/ic.md §1.2)."""

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
    (CanisterKind.USER, {"user_id": "aaaaa-aa", "message_id": 12345},
     "4449444c016c028fc1d4fb066893a5bf950d78010001003930000000000000"),
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
}
ALL_SIX: list[tuple[CanisterKind, str, dict[str, Any]]] = [
    (CanisterKind.GROUP, "start_video_call_v2", START_COMMON),
    (CanisterKind.GROUP, "end_video_call_v2", {"message_id": 0}),
    (CanisterKind.COMMUNITY, "start_video_call_v2", {"channel_id": 2**32 - 1, **START_COMMON}),
    (CanisterKind.COMMUNITY, "end_video_call_v2", {"channel_id": 0, "message_id": 5}),
    (CanisterKind.USER, "start_video_call_v2",
     {**START_COMMON, "initiator_avatar_id": 2**100 + 7, "call_type": "Default"}),
    (CanisterKind.USER, "end_video_call_v2", {"user_id": "aaaaa-aa", "message_id": 2**63}),
]


@pytest.mark.parametrize(("kind", "args", "golden"), GOLDEN_ARGS)
def test_end_args_match_the_golden_vectors(kind: CanisterKind, args: dict[str, Any], golden: str) -> None:
    assert encode_args(kind, "end_video_call_v2", args).hex() == golden


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
    args = {**START_COMMON, "initiator_display_name": None, "max_duration": None, "initiator_avatar_id": None}
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
    (CanisterKind.GROUP, "start_video_call_v2", {**START_COMMON, "call_type": "Private"}, "Default, Broadcast"),
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
