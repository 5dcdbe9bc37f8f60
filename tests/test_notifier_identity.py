"""OC_IDENTITY loading: PEM forms, literal \\n, principal derivation, and safe error messages."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from videobridge.notifier import InvalidIdentity, identity_principal, load_identity
from videobridge.principal import bytes_to_principal, principal_to_bytes

# DER of the secp256k1 OID, as `openssl ecparam -name secp256k1` prints it.
EC_PARAMETERS = "-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256K1())


def pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, fmt: serialization.PrivateFormat,
        encryption: serialization.KeySerializationEncryption | None = None) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             encryption or serialization.NoEncryption()).decode()


def expected_principal(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    assert len(der) == 88
    return bytes_to_principal(hashlib.sha224(der).digest() + b"\x02")


def forms(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    sec1 = pem(key, serialization.PrivateFormat.TraditionalOpenSSL)
    return {
        "sec1": sec1,
        "sec1 with EC PARAMETERS": EC_PARAMETERS + sec1,
        "pkcs8": pem(key, serialization.PrivateFormat.PKCS8),
    }


@pytest.mark.parametrize("form", ["sec1", "sec1 with EC PARAMETERS", "pkcs8"])
def test_all_pem_forms_give_the_same_principal(key: ec.EllipticCurvePrivateKey, form: str) -> None:
    identity = load_identity(forms(key)[form])
    principal = identity_principal(identity)
    assert principal == expected_principal(key)
    raw = principal_to_bytes(principal)  # valid, canonical text for videobridge.principal too
    assert len(raw) == 29 and raw[-1] == 0x02
    assert identity.der_pubkey == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("form", ["sec1", "sec1 with EC PARAMETERS", "pkcs8"])
def test_literal_backslash_n_as_in_dotenv(key: ec.EllipticCurvePrivateKey, form: str) -> None:
    one_line = forms(key)[form].strip().replace("\n", "\\n")
    assert "\n" not in one_line
    assert identity_principal(load_identity(one_line)) == expected_principal(key)
    quoted_crlf = '"' + forms(key)[form].replace("\n", "\r\n") + '"'
    assert identity_principal(load_identity(quoted_crlf)) == expected_principal(key)


def test_signatures_verify_with_the_public_key(key: ec.EllipticCurvePrivateKey) -> None:
    identity = load_identity(forms(key)["sec1"])
    message = b"\x0aic-request" + bytes(32)
    der, sig = identity.sign(message)
    assert len(sig) == 64
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    key.public_key().verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))


def test_repr_shows_the_principal_not_the_key(key: ec.EllipticCurvePrivateKey) -> None:
    identity = load_identity(forms(key)["pkcs8"])
    secret_hex = f"{key.private_numbers().private_value:064x}"
    for text in (repr(identity), str(identity), f"{identity}"):
        assert secret_hex not in text
        assert identity_principal(identity) in text


def _secret_fragments(key_pem: str) -> list[str]:
    body = "".join(line for line in key_pem.splitlines() if not line.startswith("-----"))
    return [body[i:i + 12] for i in range(0, len(body) - 12, 6)]


@pytest.mark.parametrize("case", ["truncated", "corrupt", "p256", "ed25519", "encrypted", "public",
                                  "empty", "not pem", "secp256k1 with garbage body"])
def test_bad_identities_raise_readably_without_key_material(key: ec.EllipticCurvePrivateKey, case: str) -> None:
    sec1 = forms(key)["sec1"]
    lines = sec1.splitlines()
    bad = {
        "truncated": "\n".join(lines[:2] + lines[-1:]),
        "corrupt": sec1.replace(lines[1], lines[1][::-1]),
        "p256": pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8),
        "ed25519": pem(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8),
        "encrypted": pem(key, serialization.PrivateFormat.PKCS8,
                         serialization.BestAvailableEncryption(b"passphrase")),
        "public": key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "empty": "  \n ",
        "not pem": base64.b64encode(b"x" * 64).decode(),
        "secp256k1 with garbage body": "-----BEGIN EC PRIVATE KEY-----\n"
                                       + base64.b64encode(b"\x30\x82" + b"k" * 100).decode()
                                       + "\n-----END EC PRIVATE KEY-----\n",
    }[case]
    with pytest.raises(InvalidIdentity) as info:
        load_identity(bad)
    message = str(info.value)
    assert message and "\n" not in message
    # No chained exception either: ecdsa's own messages may quote DER bytes.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    for fragment in _secret_fragments(bad) + _secret_fragments(sec1):
        assert fragment not in message
    assert f"{key.private_numbers().private_value:064x}" not in message
    assert isinstance(info.value, ValueError)


def test_wrong_curve_is_named(key: ec.EllipticCurvePrivateKey) -> None:
    p256 = pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL)
    with pytest.raises(InvalidIdentity, match="secp256k1"):
        load_identity(p256)
