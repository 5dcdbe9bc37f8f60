"""Verify IC certificates as agent-js does, with BLS12-381 from py-arkworks-bls12381.

A certificate (IC interface spec, "Certification") is a hash tree, a BLS signature over its
root hash and, from an application subnet, a delegation: a certificate signed by the root key
that gives the subnet's key and the canister ranges the subnet speaks for. As agent-js's
`Certificate.verify` (the original bridge's IC client), a certificate passes when:
  * its root hash is signed (min-sig: 48-byte G1 signature, 96-byte G2 key) by the root key, or
    by the key of a subnet whose delegation is itself signed by the root key (one level only);
  * that delegation's canister ranges hold the canister that was called;
  * its `time` is at most 5 minutes old and at most 5 minutes ahead; a delegation's only the
    latter (a subnet keeps its delegation for a long time).
icp-py-core's own check needs the `blst` module, which is not on PyPI, and reads the root key
from a module global; this verifier is self-contained and holds its root key per instance.
py-arkworks-bls12381 (pinned in pyproject) is used here and nowhere else.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DER_PREFIX = bytes.fromhex("308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100")
MAINNET_ROOT_KEY = DER_PREFIX + bytes.fromhex(
    "814c0e6ec71fab583b08bd81373c255c3c371b2e84863c98a4f1e08b74235d14fb5d9c0cd546d9685f913a0c0b2cc5341583bf"
    "4b4392e467db96d65b9bb4cb717112f8472e0d5a4d14505ffd7484b01291091c5f87b98883463f98091a0baaae"
)
DST = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_"
MAX_AGE_NS = 5 * 60 * 1_000_000_000
MAX_AHEAD_NS = 5 * 60 * 1_000_000_000
_DELEGATION_CACHE = 16  # subnets whose verified delegation is kept (one per subnet in practice)


def _sep(name: str) -> bytes:
    return bytes([len(name)]) + name.encode()


_STATE_ROOT, _EMPTY, _FORK, _LABELED, _LEAF = (
    _sep(s) for s in ("ic-state-root", "ic-hashtree-empty", "ic-hashtree-fork", "ic-hashtree-labeled",
                      "ic-hashtree-leaf"))


class CertificateError(Exception):
    """The certificate does not prove the reply: bad signature, delegation, range, time or shape."""


# ---- BLS (the only code that knows the library) ----

def _bls() -> Any:
    import py_arkworks_bls12381

    return py_arkworks_bls12381


def _g2(raw: bytes) -> Any:
    """A compressed G2 public key as a point; ValueError when it is not one (or is the identity)."""
    bls = _bls()
    if len(raw) != 96:
        raise ValueError("a BLS public key is 96 bytes")
    try:
        point = bls.G2Point.from_compressed_bytes(raw)  # checks the curve and the subgroup
    except Exception as exc:
        raise ValueError(f"not a BLS12-381 G2 point ({exc})"[:120]) from None
    if point == bls.G2Point.identity():
        raise ValueError("the identity is not a public key")
    return point


def bls_verify(public_key: Any, signature: bytes, message: bytes) -> bool:
    """Min-sig BLS: e(sig, g2) == e(H(msg), pk), H = hash_to_curve G1 with the IC's DST."""
    bls = _bls()
    if len(signature) != 48:
        return False
    try:
        sig = bls.G1Point.from_compressed_bytes(signature)
    except Exception:
        return False
    if sig == bls.G1Point.identity():
        return False
    hashed = bls.G1Point.hash_to_curve(message, DST)
    return bool(bls.GT.pairing_check([sig, -hashed], [bls.G2Point(), public_key]))


# ---- root keys ----

def root_key_from_text(text: str) -> bytes:
    """Parse a root key given as hex: the DER form (133 bytes, `308182…`) or the bare 96-byte key.

    Returns the DER form; ValueError (one line) when it is not a BLS12-381 G2 public key.
    """
    hexits = re.sub(r"[\s:]", "", text).lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]*", hexits) or len(hexits) % 2:
        raise ValueError("must be hex (the DER root key, 308182..., or the bare 96-byte key)")
    raw = bytes.fromhex(hexits)
    if len(raw) == len(DER_PREFIX) + 96:
        if not raw.startswith(DER_PREFIX):
            raise ValueError("not a DER BLS12-381 root key (expected the 308182301d... prefix)")
        raw = raw[len(DER_PREFIX):]
    elif len(raw) != 96:
        raise ValueError(f"must be 133 bytes (DER) or 96 bytes (bare key), got {len(raw)}")
    _g2(raw)
    return DER_PREFIX + raw


def _key_of_der(der: bytes) -> Any:
    if len(der) != len(DER_PREFIX) + 96 or not der.startswith(DER_PREFIX):
        raise CertificateError("public key is not a DER BLS12-381 key")
    try:
        return _g2(der[len(DER_PREFIX):])
    except ValueError as exc:
        raise CertificateError(f"public key: {exc}") from None


# ---- hash trees ----

def _blob(value: Any, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise CertificateError(f"{what} is not a blob")
    return bytes(value)


def tree_digest(node: Any) -> bytes:
    if not isinstance(node, Sequence) or isinstance(node, (bytes, str)) or not node:
        raise CertificateError("malformed hash tree node")
    tag = node[0]
    if tag == 0 and len(node) == 1:
        return hashlib.sha256(_EMPTY).digest()
    if tag == 1 and len(node) == 3:
        return hashlib.sha256(_FORK + tree_digest(node[1]) + tree_digest(node[2])).digest()
    if tag == 2 and len(node) == 3:
        return hashlib.sha256(_LABELED + _blob(node[1], "label") + tree_digest(node[2])).digest()
    if tag == 3 and len(node) == 2:
        return hashlib.sha256(_LEAF + _blob(node[1], "leaf")).digest()
    if tag == 4 and len(node) == 2 and len(_blob(node[1], "pruned digest")) == 32:
        return bytes(node[1])
    raise CertificateError("malformed hash tree node")


def _children(node: Any) -> list[tuple[bytes, Any]]:
    """The labelled children of a (digest-checked) subtree, forks flattened."""
    if node[0] == 1:
        return _children(node[1]) + _children(node[2])
    if node[0] == 2:
        return [(bytes(node[1]), node[2])]
    return []


def lookup(tree: Any, path: Sequence[bytes]) -> Any | None:
    """The subtree at `path` (a leaf's value for a leaf), or None when absent or pruned."""
    node = tree
    for label in path:
        node = next((sub for lab, sub in _children(node) if lab == label), None)
        if node is None:
            return None
    if node[0] == 4:
        return None
    return bytes(node[1]) if node[0] == 3 else node


def _lookup_blob(tree: Any, path: Sequence[bytes], what: str) -> bytes:
    value = lookup(tree, path)
    if not isinstance(value, bytes):
        raise CertificateError(f"certificate has no {what}")
    return value


def _uleb(data: bytes) -> int:
    value = shift = 0
    for i, byte in enumerate(data):
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if i != len(data) - 1:
                break
            return value
    raise CertificateError("time is not a LEB128 number")


# ---- certificates ----

@dataclass(frozen=True, slots=True)
class _Subnet:
    key: Any  # G2 point
    ranges: tuple[tuple[bytes, bytes], ...]


class CertificateVerifier:
    """Checks certificates against one root key (mainnet's unless told otherwise).

    A verified delegation is remembered per subnet (it does not change between calls), so a
    notification costs one pairing check, not two; the called canister is checked every time.
    """

    def __init__(self, root_key: bytes = MAINNET_ROOT_KEY, *, clock: Callable[[], int] = time.time_ns) -> None:
        self._root = _key_of_der(root_key)
        self.root_key = root_key
        self._clock = clock
        self._delegations: OrderedDict[bytes, _Subnet] = OrderedDict()

    def verify(self, certificate: bytes, canister_id: bytes) -> None:
        """Raise CertificateError unless `certificate` (CBOR) is valid for a call to canister_id."""
        cert = self._decode(certificate)
        tree = cert.get("tree")
        root_hash = tree_digest(tree)
        self._check_time(tree, max_age=MAX_AGE_NS)
        delegation = cert.get("delegation")
        if delegation is None:
            key, what = self._root, "the root key"
        else:
            subnet = self._subnet(delegation)
            if not any(lo <= canister_id <= hi for lo, hi in subnet.ranges):
                raise CertificateError("the subnet's delegation does not cover the canister")
            key, what = subnet.key, "the subnet key"
        if not bls_verify(key, _blob(cert.get("signature"), "signature"), _STATE_ROOT + root_hash):
            raise CertificateError(f"signature does not verify under {what}")

    def _subnet(self, delegation: Any) -> _Subnet:
        if not isinstance(delegation, Mapping):
            raise CertificateError("malformed delegation")
        subnet_id = _blob(delegation.get("subnet_id"), "subnet id")
        raw = _blob(delegation.get("certificate"), "delegation certificate")
        if not 0 < len(subnet_id) <= 29:
            raise CertificateError("subnet id is not a principal")
        cache_key = hashlib.sha256(bytes([len(subnet_id)]) + subnet_id + raw).digest()
        if (hit := self._delegations.get(cache_key)) is not None:
            self._delegations.move_to_end(cache_key)
            return hit
        cert = self._decode(raw)
        if cert.get("delegation") is not None:
            raise CertificateError("delegations cannot be nested")
        tree = cert.get("tree")
        root_hash = tree_digest(tree)
        self._check_time(tree, max_age=None)
        if not bls_verify(self._root, _blob(cert.get("signature"), "delegation signature"), _STATE_ROOT + root_hash):
            raise CertificateError("delegation signature does not verify under the root key")
        key = _key_of_der(_lookup_blob(tree, [b"subnet", subnet_id, b"public_key"], "subnet public key"))
        subnet = _Subnet(key, _ranges(tree, subnet_id))
        self._delegations[cache_key] = subnet
        if len(self._delegations) > _DELEGATION_CACHE:
            self._delegations.popitem(last=False)
        return subnet

    def _check_time(self, tree: Any, *, max_age: int | None) -> None:
        issued = _uleb(_lookup_blob(tree, [b"time"], "time"))
        now = self._clock()
        if max_age is not None and issued < now - max_age:
            raise CertificateError(f"certificate is {(now - issued) / 1e9:.0f} s old (at most {max_age // 10**9} s)")
        if issued > now + MAX_AHEAD_NS:
            raise CertificateError(f"certificate is {(issued - now) / 1e9:.0f} s in the future")

    @staticmethod
    def _decode(data: bytes) -> Mapping[str, Any]:
        import cbor2

        try:
            cert = cbor2.loads(data)
        except Exception as exc:
            raise CertificateError(f"certificate is not CBOR ({type(exc).__name__})") from None
        if isinstance(cert, cbor2.CBORTag) and cert.tag == 55799:
            cert = cert.value
        if not isinstance(cert, Mapping):
            raise CertificateError("certificate is not a map")
        return cert


def _ranges(tree: Any, subnet_id: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """The canister ranges a delegation grants: `/canister_ranges/<subnet>/<shard>` (API v4),
    else `/subnet/<subnet>/canister_ranges` (v2/v3)."""
    import cbor2

    shards = lookup(tree, [b"canister_ranges", subnet_id])
    if isinstance(shards, bytes) or shards is None:
        blobs = [_lookup_blob(tree, [b"subnet", subnet_id, b"canister_ranges"], "canister ranges")]
    else:
        blobs = [bytes(sub[1]) for _, sub in _children(shards) if sub[0] == 3]
    ranges: list[tuple[bytes, bytes]] = []
    for blob in blobs:
        try:
            decoded = cbor2.loads(blob)
            if isinstance(decoded, cbor2.CBORTag):
                decoded = decoded.value
            ranges += [(bytes(lo), bytes(hi)) for lo, hi in decoded]
        except Exception:
            raise CertificateError("malformed canister ranges") from None
    return tuple(ranges)
