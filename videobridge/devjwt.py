"""A development OpenChat signer: mints JWTs in OpenChat's exact wire format.

Used by `videobridge sandbox` (which has no real OpenChat key) and by the tests. The format
matches the backend's `jwt` library: header exactly {"alg":"ES256"}, compact claims in
emission order, raw 64-byte r||s signature, base64url without padding.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

TOKEN_VALIDITY_SECONDS = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class DevSigner:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())

    @property
    def public_pem(self) -> str:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, claims: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
        head = b64url(json.dumps(header or {"alg": "ES256"}, separators=(",", ":")).encode())
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{head}.{body}".encode()
        der = self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{head}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def video_call_token(self, claim_type: str, *, user_id: str, chat_id: dict[str, Any],
                         call_type: str = "Default", is_diamond: bool = False,
                         exp: int | None = None, **extra: Any) -> str:
        """`extra` adds the newer claims' fields (`audio_only`, `local_user_index`, `message_id`)."""
        claims: dict[str, Any] = {
            "exp": int(time.time()) + TOKEN_VALIDITY_SECONDS if exp is None else exp,
            "claim_type": claim_type,
            "user_id": user_id,
            "chat_id": chat_id,
        }
        if claim_type == "StartVideoCall":
            claims["call_type"] = call_type
            claims["is_diamond"] = is_diamond
        claims.update(extra)
        return self.sign(claims)
