"""The certificate verifier on its own: real IC mainnet data, spec vectors and broken inputs.

MAINNET_CERT is a certificate the IC mainnet returned (a `read_state` answer for a call to
ivg37-qiaaa-aaaab-aaaga-cai, with a subnet delegation), recorded in agent-rs's tests and reused
in agent-js's `certificate.test.ts`; it verifies under the real mainnet root key at its own time.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
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
from videobridge.principal import principal_to_bytes

MAINNET_CERT = bytes.fromhex(
    "d9d9f7a364747265658301830182045820250f5e26868d9c1ea7ab29cbe9c15bf1c47c0d7605e803e39e375a7fe09c6ebb8301"
    "83024e726571756573745f7374617475738301820458204b268227774ec77ff2b37ecb12157329d54cf376694bdd59ded7803e"
    "fd82386f83025820edad510eaaa08ed2acd4781324e6446269da6753ec17760f206bbe81c465ff528301830183024b72656a65"
    "63745f636f64658203410383024e72656a6563745f6d6573736167658203584443616e69737465722069766733372d71696161"
    "612d61616161622d61616167612d63616920686173206e6f20757064617465206d6574686f64202772656769737465722783"
    "024673746174757382034872656a65637465648204582097232f31f6ab7ca4fe53eb6568fc3e02bc22fe94ab31d010e5fb3c6"
    "42301f1608301820458203a48d1fc213d49307103104f7d72c2b5930edba8787b90631f343b3aa68a5f0a83024474696d6582"
    "0349e2dc939091c696eb16697369676e6174757265583089a2be21b5fa8ac9fab1527e041327ce899d7da971436a1f216539"
    "3947b4d942365bfe5488710e61a619ba48388a21b16a64656c65676174696f6ea2697375626e65745f6964581dd77b2a2f71"
    "99b9a8aec93fe6fb588661358cf12223e9a3af7b4ebac4026b6365727469666963617465590231d9d9f7a264747265658301"
    "82045820ae023f28c3b9d966c8fb09f9ed755c828aadb5152e00aaf700b18c9c067294b483018302467375626e6574830182"
    "045820e83bb025f6574c8f31233dc0fe289ff546dfa1e49bd6116dd6e8896d90a4946e830182045820e782619092d69d5beb"
    "f0924138bd4116b0156b5a95e25c358ea8cf7e7161a661830183018204582062513fa926c9a9ef803ac284d620f303189588"
    "e1d3904349ab63b6470856fc4883018204582060e9a344ced2c9c4a96a0197fd585f2d259dbd193e4eada56239cac26087f9"
    "c58302581dd77b2a2f7199b9a8aec93fe6fb588661358cf12223e9a3af7b4ebac402830183024f63616e69737465725f7261"
    "6e6765738203581bd9d9f781824a000000000020000001014a00000000002fffff010183024a7075626c69635f6b65798203"
    "5885308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c050302010361009933e1f89e8a3c4d7fdccc"
    "dbd518089e2bd4d8180a261f18d9c247a52768ebce98dc7328a39814a8f911086a1dd50cbe015e2a53b7bf78b55288893daa"
    "15c346640e8831d72a12bdedd979d28470c34823b8d1c3f4795d9c3984a247132e94fe82045820996f17bb926be3315745de"
    "a7282005a793b58e76afeb5d43d1a28ce29d2d158583024474696d6582034995b8aac0e4eda2ea16697369676e6174757265"
    "5830ace9fcdd9bc977e05d6328f889dc4e7c99114c737a494653cb27a1f55c06f4555e0f160980af5ead098acc195010b2f7"
)
MAINNET_CERT_TIME = 1_645_601_880_652_705_378  # its `time`: 2022-02-23T07:38:00.652Z
CANISTER = principal_to_bytes("ivg37-qiaaa-aaaab-aaaga-cai")
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
