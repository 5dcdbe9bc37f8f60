"""The bridge's IC identity: OpenChat's video-call operator key (`OC_IDENTITY`, secp256k1 PEM).

Accepted forms: SEC1 `EC PRIVATE KEY` (the dfx / agent-js form, with or without a leading
`EC PARAMETERS` block) and PKCS#8 `PRIVATE KEY`. `.env` files carry the PEM on one line with
literal `\\n` sequences, so those are turned into newlines first, as the TypeScript bridge did.

Only secp256k1 is accepted: the operator principal registered in every OpenChat canister is
derived from that key, and a different key type can never be an operator.

Error messages and reprs never contain key material (icp-py-core's own `Identity.__repr__`
prints the private key in hex, hence the subclass).
"""

from __future__ import annotations

from functools import cache
from typing import Any


class InvalidIdentity(ValueError):
    """`OC_IDENTITY` is not a usable secp256k1 private key PEM."""


@cache
def _identity_class() -> type:
    from icp_identity import Identity

    class RedactedIdentity(Identity):  # type: ignore[misc]
        """icp-py-core Identity whose repr/str show the principal, never the key."""

        def __repr__(self) -> str:
            return f"Identity(secp256k1, principal={self.sender().to_str()})"

        __str__ = __repr__

    return RedactedIdentity


def normalize_pem(pem: str) -> str:
    """Literal `\\n` -> newline, CRLF -> LF, surrounding whitespace and quotes dropped."""
    text = pem.strip().strip("'\"").strip()
    return text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\r\n", "\n") + "\n"


def load_identity(pem: str) -> Any:
    """Build an icp-py-core `Identity` from a secp256k1 private key PEM."""
    import ecdsa
    from ecdsa.curves import SECP256k1

    if not isinstance(pem, str) or not pem.strip():
        raise InvalidIdentity("the identity PEM is empty")
    text = normalize_pem(pem)
    if "-----BEGIN" not in text:
        raise InvalidIdentity("the identity is not PEM text (no -----BEGIN line)")
    if "ENCRYPTED" in text:
        raise InvalidIdentity("the identity PEM is encrypted; an unencrypted key is needed")
    if "PRIVATE KEY-----" not in text:
        raise InvalidIdentity("the identity PEM holds no private key (expected EC PRIVATE KEY or PRIVATE KEY)")
    try:
        key = ecdsa.SigningKey.from_pem(text)
    except Exception as exc:  # ecdsa raises a zoo of types; their text may quote DER bytes
        raise InvalidIdentity(
            f"the identity PEM could not be parsed ({type(exc).__name__}); expected a secp256k1 key "
            "in SEC1 'EC PRIVATE KEY' or PKCS#8 'PRIVATE KEY' form"
        ) from None
    if key.curve != SECP256k1:
        raise InvalidIdentity(f"the identity key must be secp256k1, not {key.curve.name}")
    return _identity_class()(privkey=key.to_string().hex(), type="secp256k1")


def identity_principal(identity: Any) -> str:
    """The self-authenticating principal text: sha224(SPKI DER public key) || 0x02."""
    return str(identity.sender().to_str())
