"""Credentials (argon2id hashes, the authoritative role) and rotating refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from producers.store import translated
from producers.store.facts import FactCache


@dataclass(frozen=True, slots=True)
class Credential:
    """One account as the command side knows it (the password hash never leaves this module's callers)."""

    user_id: str
    username: str
    display_name: str
    password_hash: str
    role: str
    created_at: datetime


class RefreshRejected(Exception):
    """The refresh token is unknown, expired, revoked, or was already used (its family is now revoked)."""


_CREDENTIAL = "SELECT user_id, username, display_name, password_hash, role, created_at FROM credentials"


class AccountStore:
    """Reads and writes ``credentials`` and ``refresh_tokens``."""

    def __init__(self, pool: AsyncConnectionPool, facts: FactCache | None = None) -> None:
        self._pool = pool
        self._facts = facts

    async def create(self, credential: Credential) -> bool:
        """Insert the account; False when the username is taken (the unique index decides)."""
        with translated("creating credentials"):
            async with self._pool.connection() as conn:
                try:
                    await conn.execute(
                        "INSERT INTO credentials"
                        " (user_id, username, display_name, password_hash, role, created_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s)",
                        (
                            credential.user_id,
                            credential.username,
                            credential.display_name,
                            credential.password_hash,
                            credential.role,
                            credential.created_at,
                        ),
                    )
                except psycopg.errors.UniqueViolation:
                    return False
        return True

    async def delete(self, user_id: str) -> None:
        with translated("deleting credentials"):
            async with self._pool.connection() as conn:
                await conn.execute("DELETE FROM credentials WHERE user_id = %s", (user_id,))
        if self._facts is not None:  # at once here; other processes when the change notice comes
            self._facts.forget("credentials", user_id)

    async def exists(self, user_id: str) -> bool:
        """Whether the account exists, from the process's fact cache when it holds it (an account is
        only ever deleted, never renamed to another id: see producers.store.facts)."""
        facts = self._facts
        if facts is None:
            return await self.by_id(user_id) is not None
        if facts.get("credentials", user_id):
            return True
        generation = facts.generation
        if await self.by_id(user_id) is None:
            return False
        facts.put("credentials", user_id, True, generation)
        return True

    async def by_username(self, username: str) -> Credential | None:
        return await self._one(_CREDENTIAL + " WHERE lower(username) = lower(%s)", username)

    async def by_id(self, user_id: str) -> Credential | None:
        return await self._one(_CREDENTIAL + " WHERE user_id = %s", user_id)

    async def _one(self, query: str, value: str) -> Credential | None:
        with translated("reading credentials"):
            async with self._pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(Credential))
                await cur.execute(query, (value,))
                return await cur.fetchone()

    async def set_role(self, user_id: str, role: str) -> None:
        with translated("changing a role"):
            async with self._pool.connection() as conn:
                await conn.execute("UPDATE credentials SET role = %s WHERE user_id = %s", (role, user_id))

    async def store_refresh(
        self, token_hash: str, family_id: str, user_id: str, expires_at: datetime
    ) -> None:
        with translated("storing a refresh token"):
            async with self._pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (token_hash, family_id, user_id, expires_at),
                )

    async def rotate_refresh(self, old_hash: str, new_hash: str, expires_at: datetime) -> str:
        """Mark ``old_hash`` used and store ``new_hash`` in its family; returns the user id.

        Presenting a used token again means it leaked: the whole family is revoked (committed
        before :class:`RefreshRejected` is raised).
        """
        with translated("rotating a refresh token"):
            async with self._pool.connection() as conn:
                async with conn.transaction():
                    outcome = await self._rotate(conn, old_hash, new_hash, expires_at)
        if outcome.startswith("rejected:"):
            raise RefreshRejected(outcome.removeprefix("rejected:"))
        return outcome

    async def _rotate(
        self, conn: psycopg.AsyncConnection[Any], old_hash: str, new_hash: str, expires_at: datetime
    ) -> str:
        cur = await conn.execute(
            "SELECT family_id, user_id, used_at, revoked_at, expires_at < now() FROM refresh_tokens"
            " WHERE token_hash = %s FOR UPDATE",
            (old_hash,),
        )
        row = await cur.fetchone()
        if row is None:
            return "rejected:unknown refresh token"
        family_id, user_id, used_at, revoked_at, expired = cast(tuple[Any, ...], row)
        if used_at is not None:
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %s AND revoked_at IS NULL",
                (family_id,),
            )
            return "rejected:refresh token reused: every token of this login is revoked"
        if revoked_at is not None or expired:
            return "rejected:refresh token expired or revoked"
        await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = %s", (old_hash,))
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES (%s, %s, %s, %s)",
            (new_hash, family_id, user_id, expires_at),
        )
        return str(user_id)

    async def revoke_family_of(self, token_hash: str) -> bool:
        """Revoke every token of the login ``token_hash`` belongs to; False if it is unknown."""
        with translated("revoking refresh tokens"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND family_id ="
                    " (SELECT family_id FROM refresh_tokens WHERE token_hash = %s)",
                    (token_hash,),
                )
                return cur.rowcount > 0
