"""A fake IC boundary node for tests: real HTTP on 127.0.0.1, real envelopes, real signatures.

It follows reference/ic.md §2.2 and is deliberately independent of the code under test: the
request id is recomputed with its own representation-independent hash, signatures are checked
with `ecdsa`, and the expected argument types come from the Candid *text* in openchat.md §3.3 and
§4c (parsed by icp-py-core's DID loader, not the hand-built types in videobridge.notifier.candid),
compared field for field against the type table on the wire; as Candid allows, a canister skips
wire fields its type lacks (recorded in `FakeCall.ignored`) and reads a missing opt as none. A
canister added with `legacy=True` runs the Candid from before OpenChat #9401 / #9455.

    with FakeIC() as fake:                      # or the `fake_ic` fixture below
        fake.add_canister(group_id, CanisterKind.GROUP)   # legacy=True: the Candid before #9401/#9455
        fake.add_users(alice, bob)              # their canisters (MultiUser for an indexed id)
        fake.unrouted = {canister_id}           # the boundary node knows no subnet for it (HTTP 400)
        fake.operators = {principal_text}       # everyone else gets a non_replicated_rejection
        fake.reply = Error(101, "Video call type not allowed")   # default Success()
        ... IcNotifier(ic_url=fake.url, ...) ...
        fake.calls[0].args  ->  {"message_id": 7, "initiator": "...", "call_type": "Default", ...}
        fake.go_down() / fake.hang() / fake.fail_with(503) / fake.heal()
        IcNotifier(..., root_key=fake.root_key_der)   # or VIDEOBRIDGE_IC_ROOT_KEY=fake.root_key_hex
        fake.sign_wrongly("stale_time") / fake.sign_correctly()   # see CERTIFICATE_FAULTS

Served by a ThreadingHTTPServer in a daemon thread, so it works from async tests, sync tests and
CLI tests that run their own event loop. HTTP/1.1 with keep-alive, like a boundary node, so
clients' connection pools are exercised; go_down() and stop() also cut open connections.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cbor2
import ecdsa
from ecdsa.util import sigdecode_string
from icp_candid import DIDLoader, Types, decode, encode
from icp_candid.candid import LEB128, OptClass, Pipe, RecClass, RecordClass, TypeIds, VariantClass, VecClass
from py_arkworks_bls12381 import G1Point, G2Point, Scalar

from videobridge.models import CanisterKind
from videobridge.notifier.candid import Reply, Success
from videobridge.principal import bytes_to_principal, principal_to_bytes

_PRELUDE = """
type MessageId = nat64; type Milliseconds = nat64; type UserId = principal; type ChannelId = nat32;
type VideoCallType = variant { Broadcast; Default };
type OCError = record { nat16; opt text };
type UnitResult = variant { Success; Error : OCError };
"""
_START_FIELDS = """message_id : MessageId; initiator : UserId; initiator_username : text;
    initiator_display_name : opt text; max_duration : opt Milliseconds; call_type : VideoCallType"""
# The canisters as OpenChat runs them since #9401 (MultiUser) and #9455 (audio calls), SPEC §9.
DIDS = {
    CanisterKind.USER: _PRELUDE + f"""service : {{
  start_video_call_v2 : (record {{ user_id : UserId; {_START_FIELDS}; initiator_avatar_id : opt nat;
    audio_only : opt bool }}) -> (UnitResult);
  end_video_call_v2 : (record {{ user_id : UserId; them : UserId; message_id : MessageId }}) -> (UnitResult);
}}""",
    CanisterKind.GROUP: _PRELUDE + f"""service : {{
  start_video_call_v2 : (record {{ {_START_FIELDS}; audio_only : opt bool }}) -> (UnitResult);
  end_video_call_v2 : (record {{ message_id : MessageId }}) -> (UnitResult);
}}""",
    CanisterKind.COMMUNITY: _PRELUDE + f"""service : {{
  start_video_call_v2 : (record {{ channel_id : ChannelId; {_START_FIELDS}; audio_only : opt bool }})
    -> (UnitResult);
  end_video_call_v2 : (record {{ channel_id : ChannelId; message_id : MessageId }}) -> (UnitResult);
}}""",
    CanisterKind.LOCAL_USER_INDEX: _PRELUDE + """type CommunityId = principal; type ChatId = principal;
type Chat = variant { Direct : ChatId; Group : ChatId; Channel : record { CommunityId; ChannelId } };
service : {
  video_call_declined : (record { user_id : UserId; chat_id : Chat; message_id : MessageId }) -> (UnitResult);
}""",
}
# The same canisters before #9401 / #9455 (openchat.md §3.3): what `add_canister(..., legacy=True)` runs.
LEGACY_DIDS = {
    CanisterKind.USER: _PRELUDE + f"""service : {{
  start_video_call_v2 : (record {{ {_START_FIELDS}; initiator_avatar_id : opt nat }}) -> (UnitResult);
  end_video_call_v2 : (record {{ user_id : UserId; message_id : MessageId }}) -> (UnitResult);
}}""",
    CanisterKind.GROUP: _PRELUDE + f"""service : {{
  start_video_call_v2 : (record {{ {_START_FIELDS} }}) -> (UnitResult);
  end_video_call_v2 : (record {{ message_id : MessageId }}) -> (UnitResult);
}}""",
    CanisterKind.COMMUNITY: _PRELUDE + f"""service : {{
  start_video_call_v2 : (record {{ channel_id : ChannelId; {_START_FIELDS} }}) -> (UnitResult);
  end_video_call_v2 : (record {{ channel_id : ChannelId; message_id : MessageId }}) -> (UnitResult);
}}""",
}
_METHODS = {kind: DIDLoader().load_did_source(did)["methods"] for kind, did in DIDS.items()}
_LEGACY_METHODS = {kind: DIDLoader().load_did_source(did)["methods"] for kind, did in LEGACY_DIDS.items()}


def user_canister(user_id: str) -> str:
    """The canister holding a user (#9401), written out here independently of videobridge.userid."""
    raw = principal_to_bytes(user_id)
    if len(raw) == 10 and raw[9] & 0x80:
        return bytes_to_principal(raw[:8] + b"\x01\x01")
    return user_id

MAX_EXPIRY_NS = (5 * 60 + 30) * 1_000_000_000  # 5 minutes plus clock skew, as the replica allows
_ROUTE = re.compile(r"^/api/v([234])/canister/([a-z0-9-]+)/(call|read_state)$")
_SECP256K1_SPKI_PREFIX = bytes.fromhex("3056301006072a8648ce3d020106052b8104000a034200")


@dataclass(frozen=True)
class FakeCall:
    """One accepted update call, with the argument decoded to plain Python (as in Notification.args)."""

    canister_id: str
    kind: CanisterKind
    method: str
    args: dict[str, Any]
    sender: str
    request_id: bytes
    ignored: tuple[str, ...] = ()  # wire fields the canister's type lacks (Candid lets it skip them)


@dataclass(frozen=True)
class Trap:
    """Configure as `fake.reply` to make the canister trap (a certified reject, code 5)."""

    message: str = "canister trapped"


FakeReply = Reply | Trap


@dataclass
class _Outcome:
    status: str  # "replied" | "rejected"
    reply: bytes = b""
    reject_code: int = 0
    reject_message: str = ""
    error_code: str = ""


class _Refusal(Exception):
    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status


def generate_pem() -> str:
    """A fresh secp256k1 key as a bare SEC1 PEM (the form agent-js and `OC_IDENTITY` use)."""
    return ecdsa.SigningKey.generate(curve=ecdsa.SECP256k1).to_pem(format="ssleay").decode()


def principal_of_pem(pem: str) -> str:
    der = ecdsa.SigningKey.from_pem(pem).get_verifying_key().to_der()
    return bytes_to_principal(hashlib.sha224(der).digest() + b"\x02")


# ---- representation-independent hash (request ids) ----

def _hash_value(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(value)).digest()
    if isinstance(value, str):
        return hashlib.sha256(value.encode()).digest()
    if isinstance(value, bool) or not isinstance(value, (int, list, dict)):
        raise _Refusal(400, f"cannot hash a {type(value).__name__} in the request content")
    if isinstance(value, int):
        return hashlib.sha256(LEB128.encode_u(value)).digest()
    if isinstance(value, list):
        return hashlib.sha256(b"".join(_hash_value(v) for v in value)).digest()
    return request_id(value)


def request_id(content: dict[str, Any]) -> bytes:
    pairs = sorted(hashlib.sha256(k.encode()).digest() + _hash_value(v) for k, v in content.items())
    return hashlib.sha256(b"".join(pairs)).digest()


# ---- certificates: IC hash trees, BLS-signed under the fake's own test root key ----
# reference/ic.md §2.2 step 8. Written apart from videobridge.notifier.certificate (own tree
# digest, own signing) so the verifier is checked against an independent implementation.

_BLS_DER_PREFIX = bytes.fromhex("308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100")
_BLS_DST = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_"
_BLS_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
_NNS_REGISTRY = bytes.fromhex("00000000000000000101")  # rwlgt-iiaaa-aaaaa-aaaaa-cai, on no test subnet
# How the fake can be told to sign wrongly (FakeIC.sign_wrongly):
CERTIFICATE_FAULTS = {
    "wrong_key": "the certificate is signed by a key other than the one it names",
    "wrong_root": "the subnet delegation is signed by a key other than the root key",
    "junk_signature": "the signature is 48 bytes that are not a curve point",
    "stale_time": "the certificate's time is 10 minutes old",
    "future_time": "the certificate's time is 10 minutes ahead",
    "tampered": "the tree was changed after it was signed",
    "uncovered": "the subnet delegation does not cover the called canister",
}


def _domain(name: str) -> bytes:
    return bytes([len(name)]) + name.encode()


def _digest(node: list[Any]) -> bytes:
    tag = node[0]
    if tag == 0:
        return hashlib.sha256(_domain("ic-hashtree-empty")).digest()
    if tag == 1:
        return hashlib.sha256(_domain("ic-hashtree-fork") + _digest(node[1]) + _digest(node[2])).digest()
    if tag == 2:
        return hashlib.sha256(_domain("ic-hashtree-labeled") + node[1] + _digest(node[2])).digest()
    if tag == 3:
        return hashlib.sha256(_domain("ic-hashtree-leaf") + node[1]).digest()
    return bytes(node[1])


class BlsKey:
    """A BLS12-381 min-sig key pair (G2 public key, G1 signatures), as the IC's subnets use."""

    def __init__(self) -> None:
        self._secret = Scalar(secrets.randbelow(_BLS_ORDER - 1) + 1)
        self.der = _BLS_DER_PREFIX + (G2Point() * self._secret).to_compressed_bytes()

    def sign_tree(self, tree: list[Any]) -> bytes:
        message = _domain("ic-state-root") + _digest(tree)
        return (G1Point.hash_to_curve(message, _BLS_DST) * self._secret).to_compressed_bytes()


def _tree(mapping: dict[bytes, Any]) -> list[Any]:
    nodes: list[Any] = [[2, label, _tree(v) if isinstance(v, dict) else [3, v]]
                        for label, v in sorted(mapping.items())]
    if not nodes:
        return [0]
    while len(nodes) > 1:
        nodes = [[1, nodes[i], nodes[i + 1]] if i + 1 < len(nodes) else nodes[i]
                 for i in range(0, len(nodes), 2)]
    return nodes[0]


def _status_entries(statuses: dict[bytes, _Outcome]) -> dict[bytes, Any]:
    entries: dict[bytes, Any] = {}
    for rid, out in statuses.items():
        if out.status == "replied":
            entries[rid] = {b"status": b"replied", b"reply": out.reply}
        else:
            entries[rid] = {b"status": b"rejected", b"reject_code": LEB128.encode_u(out.reject_code),
                            b"reject_message": out.reject_message.encode(),
                            b"error_code": out.error_code.encode()}
    return entries


# ---- strict Candid shape check against the wire type table ----

def _idl_hash(label: str | int) -> int:
    if isinstance(label, int) or label.isdigit():
        return int(label)
    h = 0
    for byte in label.encode():
        h = (h * 223 + byte) % 2**32
    return h


def _shape(t: Any) -> str:
    if isinstance(t, RecClass):
        return _shape(t.get_type())
    if isinstance(t, OptClass):
        return f"opt {_shape(t._type)}"
    if isinstance(t, VecClass):
        return f"vec {_shape(t._type)}"
    if isinstance(t, (RecordClass, VariantClass)):
        kind = "record" if isinstance(t, RecordClass) else "variant"
        fields = sorted((_idl_hash(name), _shape(ft)) for name, ft in t._field_map.values())
        return f"{kind} {{{'; '.join(f'{h}:{s}' for h, s in fields)}}}"
    return str(t.name)


def _wire_types(data: bytes) -> list[Any]:
    """The argument types as declared in the DIDL type table (only what these methods use)."""
    if data[:4] != b"DIDL":
        raise ValueError("argument is not DIDL")
    pipe = Pipe(data[4:])
    table = [Types.Rec() for _ in range(LEB128.decode_u(pipe))]

    def ref(idx: int) -> Any:
        if idx >= 0:
            return table[idx]
        prims = {-1: Types.Null, -2: Types.Bool, -3: Types.Nat, -6: Types.Nat16, -7: Types.Nat32, -8: Types.Nat64,
                 -15: Types.Text, -24: Types.Principal}
        if idx not in prims:
            raise ValueError(f"unexpected primitive type {idx}")
        return prims[idx]

    for entry in table:
        code = LEB128.decode_i(pipe)
        if code == TypeIds.Opt.value:
            entry.fill(Types.Opt(ref(LEB128.decode_i(pipe))))
        elif code == TypeIds.Vec.value:
            entry.fill(Types.Vec(ref(LEB128.decode_i(pipe))))
        elif code in (TypeIds.Record.value, TypeIds.Variant.value):
            fields = {}
            for _ in range(LEB128.decode_u(pipe)):
                label = LEB128.decode_u(pipe)
                fields[label] = ref(LEB128.decode_i(pipe))
            entry.fill(Types.Record(fields) if code == TypeIds.Record.value else Types.Variant(fields))
        else:
            raise ValueError(f"unexpected type code {code}")
    return [ref(LEB128.decode_i(pipe)) for _ in range(LEB128.decode_u(pipe))]


def _resolve(t: Any) -> Any:
    return t.get_type() if isinstance(t, RecClass) else t


def _fits(wire: Any, expected: Any, ignored: list[str]) -> bool:
    """Candid record subtyping at the top level: extra wire fields are skipped, a missing field
    must be an opt; every field present must have exactly the expected shape."""
    wire, expected = _resolve(wire), _resolve(expected)
    if not (isinstance(wire, RecordClass) and isinstance(expected, RecordClass)):
        return _shape(wire) == _shape(expected)
    wire_fields = {_idl_hash(n): t for n, t in wire._field_map.values()}
    expected_fields = {_idl_hash(n): t for n, t in expected._field_map.values()}
    for h, t in expected_fields.items():
        if h in wire_fields:
            if _shape(wire_fields[h]) != _shape(t):
                return False
        elif not isinstance(_resolve(t), OptClass):
            return False
    ignored += sorted(_LABELS.get(h, str(h)) for h in wire_fields.keys() - expected_fields.keys())
    return True


_LABELS = {_idl_hash(name): name for methods in _METHODS.values() for func in methods.values()
           for arg in func.args for name, _ in _resolve(arg)._field_map.values()}


def _plain(value: Any, t: Any) -> Any:
    """icp-py-core decoded values -> the JSON-able form of Notification.args, guided by the type."""
    t = _resolve(t)
    if hasattr(value, "to_str"):
        return value.to_str()
    if isinstance(t, OptClass):
        return _plain(value[0], t._type) if value else None
    if isinstance(t, VariantClass):
        ((tag, payload),) = value.items()
        inner = next(ft for name, ft in t._field_map.values() if name == tag)
        return tag if payload is None else {tag: _plain(payload, inner)}
    if isinstance(t, RecordClass):
        fields = [ft for _, (_, ft) in sorted(t._field_map.items())]
        if isinstance(value, list):  # a tuple record
            return [_plain(v, ft) for v, ft in zip(value, fields, strict=True)]
        types = {name: ft for name, ft in t._field_map.values()}
        return {name: _plain(v, types[name]) for name, v in value.items()}
    return value


def _methods(kind: CanisterKind, legacy: bool) -> dict[str, Any]:
    return (_LEGACY_METHODS if legacy else _METHODS).get(kind, {})


def decode_call_arg(kind: CanisterKind, method: str, arg: bytes, *, legacy: bool = False,
                    ignored: list[str] | None = None) -> dict[str, Any]:
    """Decode and type-check one call argument as the canister would; ValueError when it does not fit.

    `legacy` decodes as a canister from before #9401 / #9455. Wire fields the canister's type
    lacks are skipped (as Candid does) and their label hashes appended to `ignored`.
    """
    func = _methods(kind, legacy).get(method)
    if func is None:
        raise LookupError(f"Canister has no update method '{method}'")
    expected = func.args
    wire = _wire_types(arg)
    skipped: list[str] = []
    if len(wire) != len(expected) or not all(_fits(w, e, skipped) for w, e in zip(wire, expected)):
        raise ValueError(f"argument type mismatch: wire {[_shape(t) for t in wire]}, "
                         f"expect {[_shape(t) for t in expected]}")
    if ignored is not None:
        ignored += skipped
    (decoded,) = decode(arg, expected)
    return _plain(decoded["value"], expected[0])


def _encode_reply(kind: CanisterKind, method: str, reply: Reply, legacy: bool = False) -> bytes:
    ret = _methods(kind, legacy)[method].rets[0]
    if isinstance(reply, Success):
        value: Any = {"Success": None}
    else:
        value = {"Error": [reply.code, [] if reply.message is None else [reply.message]]}
    return encode([{"type": ret, "value": value}])


# ---- the server ----

class FakeIC:
    """See the module docstring. Thread-safe; all public attributes may be set from tests."""

    def __init__(self, *, operators: set[str] | None = None) -> None:
        self.operators: set[str] = set(operators or ())
        self.canisters: dict[str, CanisterKind] = {}
        self.legacy: set[str] = set()  # canisters running the Candid from before #9401 / #9455
        # Canister ids no subnet hosts: the boundary node answers HTTP 400 canister_not_found.
        self.unrouted: set[str] = set()
        # A Reply / Trap, or a function of the FakeCall returning one.
        self.reply: FakeReply | Callable[[FakeCall], FakeReply] = Success()
        self.respond_202 = False  # answer /call with 202 and let the client poll read_state
        self.calls: list[FakeCall] = []
        self.refused = 0  # non-operator calls (non_replicated_rejection)
        self.bad_requests: list[str] = []  # HTTP 400 reasons (bad signature, expiry, ...)
        self.requests = 0  # every HTTP request that reached a handler, in any mode
        self.mode = "healthy"  # healthy | hang | http_error | down
        self.http_error_status = 503
        self.port = 0
        # Certificates: clients trust `root_key_der`. Signed, as an application subnet does, by a
        # subnet key under a delegation from the root key; delegate=False signs with the root key.
        self.root_key = BlsKey()
        self.subnet_key = BlsKey()
        self.subnet_id = hashlib.sha224(self.subnet_key.der).digest() + b"\x02"  # self-authenticating
        self.delegate = True
        self.certificate_fault: str | None = None  # a key of CERTIFICATE_FAULTS, see sign_wrongly()
        self._delegations: dict[str | None, bytes] = {}
        self._lock = threading.Lock()
        self._results: dict[bytes, _Outcome] = {}
        self._release = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle and modes --

    def start(self) -> FakeIC:
        self._serve()
        return self

    def stop(self) -> None:
        self._release.set()
        self._close_server()

    def __enter__(self) -> FakeIC:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_canister(self, canister_id: str, kind: CanisterKind, *, legacy: bool = False) -> None:
        principal_to_bytes(canister_id)
        self.canisters[canister_id] = CanisterKind(kind)
        (self.legacy.add if legacy else self.legacy.discard)(canister_id)

    def add_users(self, *user_ids: str, legacy: bool = False) -> None:
        """Create the canisters holding these users (a MultiUser canister for an indexed id)."""
        for user_id in user_ids:
            self.add_canister(user_canister(user_id), CanisterKind.USER, legacy=legacy)

    def go_down(self) -> None:
        """Close the listening socket: connection refused until heal()."""
        self.mode = "down"
        self._release.set()
        self._close_server()

    def hang(self) -> None:
        """Accept connections and read requests, but never answer (until heal() or stop())."""
        self._release = threading.Event()
        self.mode = "hang"

    def fail_with(self, status: int = 503) -> None:
        """Answer every request with this HTTP status and a text body."""
        self.http_error_status = status
        self.mode = "http_error"

    @property
    def root_key_der(self) -> bytes:
        return self.root_key.der

    @property
    def root_key_hex(self) -> str:
        """The test root key as VIDEOBRIDGE_IC_ROOT_KEY takes it."""
        return self.root_key.der.hex()

    def sign_wrongly(self, fault: str) -> None:
        """Answer with certificates that must not verify, in one of CERTIFICATE_FAULTS' ways."""
        if fault not in CERTIFICATE_FAULTS:
            raise ValueError(f"unknown certificate fault {fault!r}; one of {sorted(CERTIFICATE_FAULTS)}")
        self.certificate_fault = fault

    def sign_correctly(self) -> None:
        self.certificate_fault = None

    def heal(self) -> None:
        self.mode = "healthy"
        self._release.set()
        if self._server is None:
            self._serve()

    def _serve(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-ic-{self.port}", daemon=True)
        self._thread.start()

    def _close_server(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections would otherwise keep being served
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- request handling (called from handler threads) --

    def _handle_post(self, version: str, canister_id: str, endpoint: str, body: bytes) -> tuple[int, bytes]:
        try:
            content = self._authenticate(body)
            if endpoint == "read_state":
                return self._read_state(content)
            return self._call(version, canister_id, content)
        except _Refusal as exc:
            with self._lock:
                self.bad_requests.append(str(exc))
            return exc.http_status, str(exc).encode()

    def _authenticate(self, body: bytes) -> dict[str, Any]:
        try:
            envelope = cbor2.loads(body)
        except Exception as exc:
            raise _Refusal(400, f"body is not CBOR: {exc}") from None
        if isinstance(envelope, cbor2.CBORTag) and envelope.tag == 55799:
            envelope = envelope.value
        if not isinstance(envelope, dict) or not isinstance(envelope.get("content"), dict):
            raise _Refusal(400, "envelope has no content map")
        content, pubkey, sig = envelope["content"], envelope.get("sender_pubkey"), envelope.get("sender_sig")
        if not isinstance(pubkey, bytes) or not isinstance(sig, bytes):
            raise _Refusal(400, "anonymous or unsigned request")
        if not pubkey.startswith(_SECP256K1_SPKI_PREFIX):
            raise _Refusal(400, "sender_pubkey is not a secp256k1 SPKI DER key")
        if content.get("sender") != hashlib.sha224(pubkey).digest() + b"\x02":
            raise _Refusal(400, "sender does not match sender_pubkey")
        rid = request_id(content)
        try:
            key = ecdsa.VerifyingKey.from_der(pubkey)
            # Like the replica: accept high-S signatures (malleable verification).
            ok = key.verify(sig, b"\x0aic-request" + rid, hashfunc=hashlib.sha256, sigdecode=sigdecode_string)
        except Exception:
            ok = False
        if not ok:
            raise _Refusal(400, "invalid signature")
        expiry, now = content.get("ingress_expiry"), time.time_ns()
        if not isinstance(expiry, int) or not now < expiry <= now + MAX_EXPIRY_NS:
            raise _Refusal(400, "ingress_expiry out of range")
        content["_request_id"] = rid
        return content

    def _call(self, version: str, canister_id: str, content: dict[str, Any]) -> tuple[int, bytes]:
        rid = content.pop("_request_id")
        if content.get("request_type") != "call":
            raise _Refusal(400, "request_type is not call")
        if content.get("canister_id") != principal_to_bytes(canister_id):
            raise _Refusal(400, "canister_id does not match the URL")
        sender = bytes_to_principal(content["sender"])
        kind = self.canisters.get(canister_id)
        if kind is None:  # what the replica answers for a canister id in its range that does not exist
            return 200, self._non_replicated(3, f"Canister {canister_id} not found", "IC0301")
        legacy = canister_id in self.legacy
        method = content.get("method_name")
        if sender not in self.operators:  # OpenChat's inspect_message refuses non-operators
            with self._lock:
                self.refused += 1
            return 200, self._non_replicated(5, f"Canister {canister_id} rejected the message: "
                                             "caller is not a video call operator", "IC0406")
        ignored: list[str] = []
        try:
            args = decode_call_arg(kind, str(method), bytes(content.get("arg", b"")), legacy=legacy,
                                   ignored=ignored)
        except LookupError as exc:
            outcome = _Outcome("rejected", reject_code=3, reject_message=str(exc), error_code="IC0536")
        except Exception as exc:
            outcome = _Outcome("rejected", reject_code=5, error_code="IC0503",
                               reject_message=f"Canister {canister_id} trapped: failed to decode "
                                              f"call arguments: {exc}")
        else:
            call = FakeCall(canister_id, kind, str(method), args, sender, rid, tuple(ignored))
            with self._lock:
                self.calls.append(call)
            reply = self.reply(call) if callable(self.reply) else self.reply
            if isinstance(reply, Trap):
                outcome = _Outcome("rejected", reject_code=5, error_code="IC0503",
                                   reject_message=f"Canister {canister_id} trapped: {reply.message}")
            else:
                outcome = _Outcome("replied", reply=_encode_reply(kind, str(method), reply, legacy))
        with self._lock:
            self._results[rid] = outcome
        if version == "2" or self.respond_202:
            return 202, b""
        return 200, cbor2.dumps({"status": "replied", "certificate": self._certificate({rid: outcome})})

    def _read_state(self, content: dict[str, Any]) -> tuple[int, bytes]:
        content.pop("_request_id")
        paths = content.get("paths")
        if content.get("request_type") != "read_state" or not isinstance(paths, list):
            raise _Refusal(400, "not a read_state request")
        wanted: dict[bytes, _Outcome] = {}
        for path in paths:
            if len(path) >= 2 and path[0] == b"request_status":
                with self._lock:
                    outcome = self._results.get(bytes(path[1]))
                if outcome is not None:
                    wanted[bytes(path[1])] = outcome
        return 200, cbor2.dumps({"certificate": self._certificate(wanted)})

    def _certificate(self, statuses: dict[bytes, _Outcome]) -> bytes:
        fault = self.certificate_fault
        skew = {"stale_time": -600, "future_time": 600}.get(fault or "", 0) * 1_000_000_000
        issued = time.time_ns() + skew
        tree = _tree({b"request_status": _status_entries(statuses), b"time": LEB128.encode_u(issued)})
        cert: dict[str, Any] = {}
        signer = self.root_key
        if self.delegate or fault in ("wrong_root", "uncovered"):
            signer = self.subnet_key
            cert["delegation"] = {"subnet_id": self.subnet_id, "certificate": self._delegation(fault)}
        if fault == "wrong_key":
            signer = BlsKey()
        signature = signer.sign_tree(tree)
        if fault == "junk_signature":
            signature = b"\x00" + secrets.token_bytes(47)
        if fault == "tampered":
            tree = _tree({b"request_status": _status_entries(statuses), b"time": LEB128.encode_u(issued + 1)})
        cert.update(tree=tree, signature=signature)
        return cbor2.dumps(cbor2.CBORTag(55799, cert))

    def _delegation(self, fault: str | None) -> bytes:
        """The root's certificate for our subnet: its key and canister ranges (API v4 layout)."""
        key = fault if fault in ("wrong_root", "uncovered") else None
        with self._lock:
            if key in self._delegations:
                return self._delegations[key]
        low, high = (_NNS_REGISTRY, _NNS_REGISTRY) if fault == "uncovered" else (b"", b"\xff" * 29)
        sid = self.subnet_id
        tree = _tree({
            b"canister_ranges": {sid: {low: cbor2.dumps([[low, high]])}},
            b"subnet": {sid: {b"public_key": self.subnet_key.der}},
            b"time": LEB128.encode_u(time.time_ns() - 3600 * 1_000_000_000),  # delegations live long
        })
        signer = BlsKey() if fault == "wrong_root" else self.root_key
        delegation = cbor2.dumps(cbor2.CBORTag(55799, {"tree": tree, "signature": signer.sign_tree(tree)}))
        with self._lock:
            self._delegations[key] = delegation
        return delegation

    @staticmethod
    def _non_replicated(code: int, message: str, error_code: str) -> bytes:
        return cbor2.dumps({"status": "non_replicated_rejection", "reject_code": code,
                            "reject_message": message, "error_code": error_code})

    def status_body(self) -> bytes:
        return cbor2.dumps({"ic_api_version": "0.18.0", "impl_version": "fake-ic",
                            "root_key": self.root_key.der, "replica_health_status": "healthy"})


class _Handler(BaseHTTPRequestHandler):
    fake: FakeIC
    server_version = "fake-ic/1"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _prelude(self) -> bool:
        """Count the request and apply the failure modes; True when the request was handled."""
        fake = self.fake
        with fake._lock:
            fake.requests += 1
        if fake.mode == "hang":
            fake._release.wait(timeout=60)
            self.close_connection = True
            return True
        if fake.mode == "http_error":
            self._send(fake.http_error_status, b"fake IC failure", "text/plain")
            return True
        return False

    def _send(self, status: int, body: bytes, content_type: str = "application/cbor") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self._prelude():
            return
        if self.path == "/api/v2/status":
            self._send(200, self.fake.status_body())
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self._prelude():
            return
        match = _ROUTE.match(self.path)
        if match is None:
            self._send(404, b"not found", "text/plain")
            return
        version, canister_id, endpoint = match.groups()
        try:
            principal_to_bytes(canister_id)
        except ValueError:
            self._send(400, b"bad canister id", "text/plain")
            return
        if canister_id in self.fake.unrouted:  # ic-boundary: no subnet's range holds this id
            self.send_response(400)
            self.send_header("x-ic-error-cause", "canister_not_found")
            body = b"error: canister_not_found\ndetails: The specified canister does not exist."
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        status, payload = self.fake._handle_post(version, canister_id, endpoint, body)
        self._send(status, payload, "application/cbor" if status in (200, 202) else "text/plain")
