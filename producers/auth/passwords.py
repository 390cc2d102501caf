"""Password hashing with argon2id (argon2-cffi), off the event loop: a hash costs tens of milliseconds."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hashes and verifies passwords.

    ``verify`` of an unknown user still spends a full hash, so timing does not reveal usernames.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile by default
        self._dummy = self._hasher.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``stored_hash`` None (unknown user) burns the same time, False."""
        return await anyio.to_thread.run_sync(self._verify, stored_hash, password)

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored_hash or self._dummy, password)) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False
