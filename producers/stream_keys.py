"""Channel stream keys: made with ``secrets``, shown once, stored only as sha256, compared in constant time.

The key itself never leaves this module except in the rotate response: events carry ``key_id``,
tables hold ``key_hash``, and nothing here logs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

KEY_PREFIX = "live_"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A fresh key: ``secret`` goes to the owner once; ``key_id`` and ``key_hash`` are kept."""

    key_id: str
    secret: str
    key_hash: str

    def __repr__(self) -> str:  # never print the secret by accident
        return f"IssuedKey(key_id={self.key_id!r})"


def issue_key() -> IssuedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return IssuedKey(key_id="sk_" + uuid.uuid4().hex[:16], secret=secret, key_hash=hash_key(secret))


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def matches(presented: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(presented), stored_hash)
