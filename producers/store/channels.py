"""Channel claims (unique slugs, the owner of record) and stream-key hashes."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from producers import stream_keys
from producers.store import translated
from producers.store.facts import FactCache


@dataclass(frozen=True, slots=True)
class ChannelClaim:
    """A channel as the command side knows it: its id, owner and slug."""

    channel_id: str
    owner_id: str
    slug: str


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """The channel a presented key belongs to, and the opaque id of that key (never the key)."""

    channel_id: str
    key_id: str


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A channel's active key, as stored (hash only)."""

    key_id: str
    key_hash: str


class ChannelStore:
    """Reads and writes ``channel_claims`` and ``channel_stream_keys``."""

    def __init__(self, pool: AsyncConnectionPool, facts: FactCache | None = None) -> None:
        self._pool = pool
        self._facts = facts

    async def claim(self, claim: ChannelClaim) -> bool:
        """Reserve the slug for a new channel; False when the slug is taken."""
        with translated("claiming a channel slug"):
            async with self._pool.connection() as conn:
                try:
                    await conn.execute(
                        "INSERT INTO channel_claims (channel_id, owner_id, slug) VALUES (%s, %s, %s)",
                        (claim.channel_id, claim.owner_id, claim.slug),
                    )
                except psycopg.errors.UniqueViolation:
                    return False
        return True

    async def release(self, channel_id: str) -> None:
        with translated("releasing a channel claim"):
            async with self._pool.connection() as conn:
                await conn.execute("DELETE FROM channel_claims WHERE channel_id = %s", (channel_id,))
        if self._facts is not None:  # at once here; other processes when the change notice comes
            self._facts.forget("channel_claims", channel_id)

    async def by_id(self, channel: str) -> ChannelClaim | None:
        """The channel with this id, or else this slug."""
        with translated("reading a channel claim"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT channel_id, owner_id, slug FROM channel_claims WHERE channel_id = %s OR slug = %s"
                    " ORDER BY channel_id = %s DESC LIMIT 1",
                    (channel, channel, channel),
                )
                row = await cur.fetchone()
        return None if row is None else ChannelClaim(*row)

    async def by_channel_id(self, channel_id: str) -> ChannelClaim | None:
        """The claim of the channel with this id (:meth:`by_id`'s answer when that is the channel
        named by its id), from the process's fact cache when it holds it: a claim's id, owner and slug
        are never updated, and a claim is deleted only when its ChannelCreated was never recorded (see
        producers.store.facts). None if it is not such a channel (maybe a slug: ask :meth:`by_id`)."""
        facts = self._facts
        if facts is not None and (kept := facts.get("channel_claims", channel_id)) is not None:
            return kept
        generation = facts.generation if facts is not None else 0
        claim = await self.by_id(channel_id)
        if claim is None or claim.channel_id != channel_id:
            return None
        if facts is not None:
            facts.put("channel_claims", channel_id, claim, generation)
        return claim

    async def active_key(self, channel_id: str) -> StoredKey | None:
        with translated("reading a stream key"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT key_id, key_hash FROM channel_stream_keys WHERE channel_id = %s", (channel_id,)
                )
                row = await cur.fetchone()
        return None if row is None else StoredKey(*row)

    async def put_key(self, channel_id: str, key: StoredKey | None) -> None:
        """Make ``key`` the channel's only key (None removes it: the compensation of a failed rotation)."""
        with translated("storing a stream key"):
            async with self._pool.connection() as conn:
                if key is None:
                    await conn.execute("DELETE FROM channel_stream_keys WHERE channel_id = %s", (channel_id,))
                    return
                await conn.execute(
                    "INSERT INTO channel_stream_keys (channel_id, key_id, key_hash) VALUES (%s, %s, %s)"
                    " ON CONFLICT (channel_id) DO UPDATE"
                    " SET key_id = EXCLUDED.key_id, key_hash = EXCLUDED.key_hash, rotated_at = now()",
                    (channel_id, key.key_id, key.key_hash),
                )

    async def holder_of_key(self, presented: str) -> KeyHolder | None:
        """The channel whose active key is ``presented`` (and that key's id), compared in constant
        time; None if no channel."""
        with translated("checking a stream key"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT channel_id, key_hash, key_id FROM channel_stream_keys WHERE key_hash = %s",
                    (stream_keys.hash_key(presented),),
                )
                row = await cur.fetchone()
        if row is None or not stream_keys.matches(presented, row[1]):
            return None
        return KeyHolder(channel_id=str(row[0]), key_id=str(row[2]))
