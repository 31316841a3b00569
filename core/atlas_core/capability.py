"""Short-lived, scoped capability tokens for the sandbox (Ed25519-signed JWTs).

rag-api and the task-worker hold the signing key and mint one token per sandbox call: audience
``atlas-sandbox``, a lifetime of at most five minutes, a unique ``jti`` the sandbox accepts once, the task it
serves, the languages it may run and the limits it may use. The sandbox holds only the public key: it can check
tokens but never mint one, so a compromised sandbox cannot call itself with wider rights.

The signing key setting is any strong secret string; the Ed25519 seed is its SHA-256, so ``atlas up`` can
generate it like every other secret and derive the public key the sandbox gets.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SANDBOX_AUDIENCE = "atlas-sandbox"
MAX_TTL_S = 300
ALGORITHM = "EdDSA"


def signing_key(secret: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(secret.encode()).digest())


def public_key_text(secret: str) -> str:
    """The public half of the key derived from ``secret``, as the sandbox's ATLAS_SANDBOX_VERIFY_KEY value."""
    raw = signing_key(secret).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verify_key(text: str) -> Ed25519PublicKey:
    """Parse a verify key (base64url of the 32 raw bytes); ValueError names what is wrong."""
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError:
        raise ValueError("must be base64url text (the public key atlas up derives)") from None
    if len(raw) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def mint(key: Ed25519PrivateKey, *, issuer: str, task_id: str, languages: Iterable[str],
         limits: Mapping[str, Any] | None = None, ttl_s: int = 60) -> str:
    """One single-use token for one sandbox call."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be in 1..{MAX_TTL_S}")
    now = int(time.time())
    claims = {"iss": issuer, "aud": SANDBOX_AUDIENCE, "iat": now, "exp": now + ttl_s, "jti": uuid.uuid4().hex,
              "task": task_id, "langs": sorted(set(languages)), "limits": dict(limits or {})}
    return jwt.encode(claims, key, algorithm=ALGORITHM)
