"""Candid types of OpenChat's video-call methods, and the reply type they all share.

The argument records come from the Rust API structs (reference/openchat.md §3.3, §4c): start and
end on user, group and community canisters (with `audio_only`, and the user canister's `user_id`
/ `them` since #9401), and `video_call_declined` on the local user index (SPEC §9). They are
written out here once as a small schema and turned into
icp-py-core `Types.*` on first use; no `.did` text is parsed at runtime. icp-py-core itself is
imported lazily, so `Success` / `Error` can be imported anywhere without the agent's weight.

icp-py-core's encoder does not type-check values (a nat32 overflow is a bare `struct.error`, a
missing field a `KeyError`), so `encode_args` validates every field against the schema first.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeAlias

from videobridge.models import CanisterKind
from videobridge.principal import InvalidPrincipal, principal_to_bytes

START_METHOD = "start_video_call_v2"
END_METHOD = "end_video_call_v2"
DECLINED_METHOD = "video_call_declined"
CALL_TYPES = ("Default", "Broadcast")  # the canisters' VideoCallType: an Audio call is Default + audio_only
CHAT_KINDS = ("Direct", "Group", "Channel")


@dataclass(frozen=True, slots=True)
class Success:
    """`UnitResult::Success`."""


@dataclass(frozen=True, slots=True)
class Error:
    """`UnitResult::Error(OCError(code, message))`, e.g. 101 InitiatorNotAuthorized."""

    code: int
    message: str | None = None


Reply: TypeAlias = Success | Error


class CandidArgError(ValueError):
    """Arguments that do not fit the method's Candid record (never sent)."""


class CandidReplyError(ValueError):
    """Reply bytes that are not a `UnitResult`."""


# Field specs: a scalar name, "opt <scalar>", "call_type" (variant { Default; Broadcast }) or
# "chat_id" (variant { Direct : principal; Group : principal; Channel : record { principal; nat32 } }).
_START_COMMON: tuple[tuple[str, str], ...] = (
    ("message_id", "nat64"),
    ("initiator", "principal"),
    ("initiator_username", "text"),
    ("initiator_display_name", "opt text"),
    ("max_duration", "opt nat64"),
    ("call_type", "call_type"),
    ("audio_only", "opt bool"),
)
# The user canister before #9401 took `user_id` = the other user; `Outbox` can still send that.
LEGACY_USER_END: tuple[tuple[str, str], ...] = (("user_id", "principal"), ("message_id", "nat64"))

SCHEMA: dict[tuple[CanisterKind, str], tuple[tuple[str, str], ...]] = {
    (CanisterKind.GROUP, START_METHOD): _START_COMMON,
    (CanisterKind.GROUP, END_METHOD): (("message_id", "nat64"),),
    (CanisterKind.COMMUNITY, START_METHOD): (("channel_id", "nat32"), *_START_COMMON),
    (CanisterKind.COMMUNITY, END_METHOD): (("channel_id", "nat32"), ("message_id", "nat64")),
    (CanisterKind.USER, START_METHOD): (("user_id", "principal"), *_START_COMMON, ("initiator_avatar_id", "opt nat")),
    (CanisterKind.USER, END_METHOD): (("user_id", "principal"), ("them", "principal"), ("message_id", "nat64")),
    (CanisterKind.LOCAL_USER_INDEX, DECLINED_METHOD): (
        ("user_id", "principal"), ("chat_id", "chat_id"), ("message_id", "nat64")),
}

_NAT_BITS = {"nat64": 64, "nat32": 32, "nat16": 16}


def _scalar_type(Types: Any, spec: str) -> Any:
    return {
        "nat64": Types.Nat64,
        "nat32": Types.Nat32,
        "nat": Types.Nat,
        "principal": Types.Principal,
        "text": Types.Text,
        "bool": Types.Bool,
    }[spec]


@cache
def _types() -> tuple[dict[tuple[CanisterKind, str], Any], Any, Any]:
    """(arg record per (kind, method), UnitResult, the legacy user end record), built once."""
    from icp_candid import Types

    composite = {
        "call_type": Types.Variant({"Default": Types.Null, "Broadcast": Types.Null}),
        "chat_id": Types.Variant({"Direct": Types.Principal, "Group": Types.Principal,
                                  "Channel": Types.Tuple(Types.Principal, Types.Nat32)}),
    }

    def field_type(spec: str) -> Any:
        if spec in composite:
            return composite[spec]
        if spec.startswith("opt "):
            return Types.Opt(_scalar_type(Types, spec[4:]))
        return _scalar_type(Types, spec)

    def record(fields: tuple[tuple[str, str], ...]) -> Any:
        return Types.Record({name: field_type(spec) for name, spec in fields})

    records = {key: record(fields) for key, fields in SCHEMA.items()}
    oc_error = Types.Tuple(Types.Nat16, Types.Opt(Types.Text))
    unit_result = Types.Variant({"Success": Types.Null, "Error": oc_error})
    return records, unit_result, record(LEGACY_USER_END)


def arg_type(canister_kind: CanisterKind, method: str) -> Any:
    try:
        return _types()[0][(CanisterKind(canister_kind), method)]
    except (KeyError, ValueError):
        raise CandidArgError(f"no method {method!r} on a {canister_kind} canister") from None


def unit_result_type() -> Any:
    return _types()[1]


def _check_scalar(name: str, spec: str, value: Any) -> Any:
    if spec == "bool":
        if not isinstance(value, bool):
            raise CandidArgError(f"{name}: expected true or false")
        return value
    if spec == "principal":
        try:
            principal_to_bytes(value)
        except InvalidPrincipal as exc:
            raise CandidArgError(f"{name}: not a principal ({exc})") from None
        return value
    if spec == "text":
        if not isinstance(value, str):
            raise CandidArgError(f"{name}: expected text")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot be sent
            raise CandidArgError(f"{name}: text is not valid Unicode") from None
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CandidArgError(f"{name}: expected a natural number")
    bits = _NAT_BITS.get(spec)
    if bits is not None and value >= 2**bits:
        raise CandidArgError(f"{name}: {value} does not fit in {spec}")
    return value


def _candid_value(name: str, spec: str, value: Any) -> Any:
    if spec == "call_type":
        if value not in CALL_TYPES:
            raise CandidArgError(f"{name}: expected one of {', '.join(CALL_TYPES)}")
        return {str(value): None}
    if spec == "chat_id":
        return _chat_id(name, value)
    if spec.startswith("opt "):
        return [] if value is None else [_check_scalar(name, spec[4:], value)]
    return _check_scalar(name, spec, value)


def _chat_id(name: str, value: Any) -> Any:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in CHAT_KINDS:
        raise CandidArgError(f"{name}: expected one of {', '.join(CHAT_KINDS)}")
    ((kind, inner),) = value.items()
    if kind != "Channel":
        return {kind: _check_scalar(f"{name}.{kind}", "principal", inner)}
    if not isinstance(inner, (list, tuple)) or len(inner) != 2:
        raise CandidArgError(f"{name}.Channel: expected [community, channel]")
    return {kind: [_check_scalar(f"{name}.Channel.0", "principal", inner[0]),
                   _check_scalar(f"{name}.Channel.1", "nat32", inner[1])]}


def encode_args(canister_kind: CanisterKind, method: str, args: dict[str, Any]) -> bytes:
    """DIDL bytes of the single argument record. `args` is a Notification's JSON-able dict.

    A user-canister end in the pre-#9401 shape (`user_id` + `message_id`, no `them`) is encoded
    as such: `Outbox` sends it when VIDEOBRIDGE_LEGACY_USER_END is set.
    """
    from icp_candid import encode

    record = arg_type(canister_kind, method)
    fields = SCHEMA[(CanisterKind(canister_kind), method)]
    if not isinstance(args, dict):
        raise CandidArgError("arguments must be a dict")
    if (CanisterKind(canister_kind), method) == (CanisterKind.USER, END_METHOD) and args.keys() == {
            "user_id", "message_id"}:
        fields, record = LEGACY_USER_END, _types()[2]
    expected = {name for name, _ in fields}
    if missing := sorted(expected - args.keys()):
        raise CandidArgError(f"missing field(s): {', '.join(missing)}")
    if extra := sorted(str(k) for k in args.keys() - expected):
        raise CandidArgError(f"unexpected field(s): {', '.join(extra)}")
    value = {name: _candid_value(name, spec, args[name]) for name, spec in fields}
    return bytes(encode([{"type": record, "value": value}]))


def reply_from_value(value: Any) -> Reply:
    """Map icp-py-core's decoded UnitResult (`{"Success": None}` / `{"Error": [code, [msg]]}`)."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, payload),) = value.items()
        if tag == "Success":
            return Success()
        if tag == "Error" and isinstance(payload, (list, tuple)) and len(payload) == 2:
            code, message = payload
            if isinstance(code, int) and isinstance(message, list) and len(message) <= 1:
                return Error(code, message[0] if message else None)
    raise CandidReplyError("reply is not a UnitResult")


def decode_reply(data: bytes) -> Reply:
    """Decode a method's DIDL reply bytes."""
    from icp_candid import decode

    try:
        decoded = decode(bytes(data), [unit_result_type()])
    except (ValueError, IndexError, KeyError, TypeError, struct.error) as exc:
        raise CandidReplyError(f"reply is not a UnitResult: {exc}") from exc
    if len(decoded) != 1:
        raise CandidReplyError("reply is not a UnitResult")
    return reply_from_value(decoded[0]["value"])
