"""argon2id password hashing."""

from __future__ import annotations

from argon2 import PasswordHasher

from producers.auth.passwords import Passwords

passwords = Passwords(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))


async def test_hashes_are_argon2id_and_verify() -> None:
    stored = await passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "wrong")


async def test_unknown_users_and_broken_hashes_never_verify() -> None:
    assert not await passwords.verify(None, "not-a-real-password")  # the dummy hash's own password
    assert not await passwords.verify("not a hash", "anything")


def test_default_hasher_is_argon2id() -> None:
    assert Passwords()._hasher.type.name == "ID"
