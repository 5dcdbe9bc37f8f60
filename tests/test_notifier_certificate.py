"""The certificate verifier on its own: real IC mainnet data (certificate_support.MAINNET_CERT),
spec vectors and broken inputs."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from certificate_support import CANISTER, MAINNET_CERT, MAINNET_CERT_TIME
from fakeic import BlsKey

from videobridge.notifier.certificate import (
    DER_PREFIX,
    MAINNET_ROOT_KEY,
    CertificateError,
    CertificateVerifier,
    lookup,
    root_key_from_text,
    tree_digest,
)

MINUTE = 60 * 1_000_000_000


def at(ns: int, root_key: bytes = MAINNET_ROOT_KEY) -> CertificateVerifier:
    return CertificateVerifier(root_key, clock=lambda: ns)


def reencoded(change: Any) -> bytes:
    cert = dict(cbor2.loads(MAINNET_CERT))
    change(cert)
    return cbor2.dumps(cert)


def test_a_real_mainnet_certificate_verifies_under_the_mainnet_key() -> None:
    at(MAINNET_CERT_TIME).verify(MAINNET_CERT, CANISTER)
    at(MAINNET_CERT_TIME + 4 * MINUTE).verify(MAINNET_CERT, CANISTER)  # up to 5 minutes old
    at(MAINNET_CERT_TIME - 4 * MINUTE).verify(MAINNET_CERT, CANISTER)  # or ahead of our clock
    # the delegated range is 00000000002000000101 ..= 00000000002fffff0101, bounds included
    for inside in ("00000000002000000101", "000000000020000c0101", "00000000002fffff0101"):
        at(MAINNET_CERT_TIME).verify(MAINNET_CERT, bytes.fromhex(inside))


@pytest.mark.parametrize("canister", ["00000000000000020101", "00000000003000020101"])
def test_a_canister_outside_the_delegation_is_refused(canister: str) -> None:
    verifier = at(MAINNET_CERT_TIME)
    verifier.verify(MAINNET_CERT, CANISTER)  # the delegation is now cached; the range still counts
    with pytest.raises(CertificateError, match="does not cover the canister"):
        verifier.verify(MAINNET_CERT, bytes.fromhex(canister))


@pytest.mark.parametrize(("offset", "message"), [(6 * MINUTE, "s old"), (-6 * MINUTE, "in the future")])
def test_time_is_checked_both_ways(offset: int, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        at(MAINNET_CERT_TIME + offset).verify(MAINNET_CERT, CANISTER)


def test_another_root_key_refuses_it() -> None:
    with pytest.raises(CertificateError, match="delegation signature does not verify under the root key"):
        at(MAINNET_CERT_TIME, BlsKey().der).verify(MAINNET_CERT, CANISTER)


@pytest.mark.parametrize("signature", [bytes(48), b"\xc0" + bytes(47), b"\x01" * 47, None])
def test_junk_signatures_are_refused(signature: bytes | None) -> None:
    def swap(cert: dict[str, Any]) -> None:
        cert["signature"] = signature

    with pytest.raises(CertificateError, match="signature"):
        at(MAINNET_CERT_TIME).verify(reencoded(swap), CANISTER)


def test_a_flipped_bit_in_the_signature_or_the_tree_is_refused() -> None:
    def flip_signature(cert: dict[str, Any]) -> None:
        sig = bytearray(cert["signature"])
        sig[20] ^= 1
        cert["signature"] = bytes(sig)

    def change_time(cert: dict[str, Any]) -> None:
        cert["tree"] = _replace_leaf(cert["tree"], b"time", _uleb(MAINNET_CERT_TIME + 1))

    for change in (flip_signature, change_time):
        with pytest.raises(CertificateError, match="signature does not verify"):
            at(MAINNET_CERT_TIME).verify(reencoded(change), CANISTER)


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _replace_leaf(node: Any, label: bytes, value: bytes) -> Any:
    if node[0] == 1:
        return [1, _replace_leaf(node[1], label, value), _replace_leaf(node[2], label, value)]
    if node[0] == 2 and bytes(node[1]) == label:
        return [2, label, [3, value]]
    return list(node)


def test_nested_delegations_are_refused() -> None:
    def nest(cert: dict[str, Any]) -> None:
        cert["delegation"] = {"subnet_id": cert["delegation"]["subnet_id"], "certificate": MAINNET_CERT}

    with pytest.raises(CertificateError, match="nested"):
        at(MAINNET_CERT_TIME).verify(reencoded(nest), CANISTER)


@pytest.mark.parametrize("data", [b"", b"\xff\x00", cbor2.dumps([1, 2]), cbor2.dumps({"signature": bytes(48)}),
                                  cbor2.dumps({"tree": [9], "signature": bytes(48)}),
                                  cbor2.dumps({"tree": [3, b"x"], "signature": bytes(48)}),
                                  cbor2.dumps({"tree": [2, "text label", [0]], "signature": bytes(48)})])
def test_malformed_certificates_are_refused_not_crashed(data: bytes) -> None:
    with pytest.raises(CertificateError):
        at(MAINNET_CERT_TIME).verify(data, CANISTER)


def test_hash_tree_digest_matches_the_spec_vectors() -> None:
    # The interface spec's example tree and its pruned form share one root hash.
    full = cbor2.loads(bytes.fromhex(
        "8301830183024161830183018302417882034568656c6c6f810083024179820345776f726c64"
        "83024162820344676f6f648301830241638100830241648203476d6f726e696e67"))
    pruned = cbor2.loads(bytes.fromhex(
        "83018301830241618301820458201b4feff9bef8131788b0c9dc6dbad6e81e524249c879e9f1"
        "0f71ce3749f5a63883024179820345776f726c6483024162820458207b32ac0c6ba8ce35ac"
        "82c255fc7906f7fc130dab2a090f80fe12f9c2cae83ba6830182045820ec8324b8a1f1ac16"
        "bd2e806edba78006479c9877fed4eb464a25485465af601d830241648203476d6f726e696e67"))
    expected = "eb5c5b2195e62d996b84c9bcc8259d19a83786a2f59e0878cec84c811f669aa0"
    assert tree_digest(full).hex() == tree_digest(pruned).hex() == expected
    assert lookup(full, [b"a", b"y"]) == b"world" and lookup(full, [b"d"]) == b"morning"
    assert lookup(pruned, [b"a", b"x"]) is None and lookup(full, [b"e"]) is None


def test_root_keys_parse_from_hex_der_or_bare() -> None:
    der = BlsKey().der
    assert root_key_from_text(der.hex()) == der
    assert root_key_from_text(der[len(DER_PREFIX):].hex().upper()) == der
    assert root_key_from_text(f"  0x{der.hex()}\n") == der
    assert root_key_from_text(MAINNET_ROOT_KEY.hex()) == MAINNET_ROOT_KEY


@pytest.mark.parametrize(("text", "message"), [
    ("not hex at all", "must be hex"),
    ("abc", "must be hex"),
    ("00" * 32, "must be 133 bytes (DER) or 96 bytes (bare key), got 32"),
    ("11" * 133, "not a DER BLS12-381 root key"),
    ("00" * 96, "not a BLS12-381 G2 point"),
    ("c0" + "00" * 95, "the identity is not a public key"),
])
def test_bad_root_keys_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        root_key_from_text(text)
    assert message in str(info.value) and "\n" not in str(info.value)
