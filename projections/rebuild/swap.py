"""Swapping a rebuilt shadow read model in for the live one, atomically.

PostgreSQL: one transaction moves the live read model's relations (tables with their indexes and
owned sequences, views, materialized views, sequences) and types and functions to an ``old`` schema,
moves the shadow's in under the same names, replaces the ``projections`` rows of
``schema_migrations``, and commits; the old schema is dropped afterwards. Objects are moved rather
than schemas renamed because the live schema (``public`` by default) also holds the command side's
tables, which must stay where they are. Readers resolve names per statement, so they see either the
old read model or the new one, never a mix; a statement waiting on a lock the swap holds re-resolves
the name once it gets it.

Redis: one Lua script per read model deletes its live keys (by its key patterns) and renames the
shadow keys over them; Redis runs a script alone, so readers see the old keys or the new. One script
per read model, not one for all, because a read model's keys, live and shadow, share one hash slot
(``projections/redis_keys.py``) while different read models do not: on a Redis Cluster a script may
only touch keys of one slot. Readers never combine two Redis read models, so nothing is lost.

Where the live projector goes on: the swapped-in offsets are the shadow's, so the live projector must
never have applied more than the shadow, or the events in between would be lost to the new model
(the live consumer is already past them). So each swap first checks, inside its atomic step, that the
shadow's offsets are at or past the live ones for every partition. PostgreSQL makes this exact: the
swap locks the live ``projection_offsets`` (the live projector's batches wait on it), reads the live
positions, lets the shadow catch up to them, then moves the tables. A live batch delivered again
after the swap is skipped by the shadow's offsets (exactly-once); one beyond them is applied. Redis
cannot hold a lock across round trips: the shadow catches up to the live offsets just read, and the
script refuses (``behind``) if the live projector moved on in between; the caller catches up again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from infra.postgres import DatabaseError, translate
from infra.redis import DRIVER_ERRORS, RedisClient
from infra.redis import translate as translate_redis
from projections.database import COMPONENT, checked_schema
from projections.projector import Partition
from projections.redis_keys import glob_escape

__all__ = [
    "LOCK_TIMEOUT",
    "LiveOffsets",
    "PostgresSwap",
    "RedisSwap",
    "ShadowBehind",
    "parse_offset_field",
    "redis_swap",
    "schema_swap",
]

log = logging.getLogger(__name__)

LOCK_TIMEOUT = "30s"  # how long the swap waits for the live projector's running batch
LiveOffsets = dict[str, dict[Partition, int]]  # projector name -> partition -> next offset
CatchUp = Callable[[LiveOffsets], Awaitable[None]]

RELATIONS = """
SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relname <> 'schema_migrations'
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
      AND d.deptype IN ('a', 'i')))
ORDER BY 1
"""
TYPES = """
SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = %s AND (t.typtype IN ('e', 'd')
      OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
ORDER BY 1
"""
ROUTINES = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s ORDER BY 1, 2
"""
KIND_KEYWORD = {
    "r": "TABLE",
    "p": "TABLE",
    "v": "VIEW",
    "m": "MATERIALIZED VIEW",
    "S": "SEQUENCE",
    "f": "FOREIGN TABLE",
}


class ShadowBehind(Exception):
    """The live projector has applied events the shadow has not: catch up, then swap again."""


@dataclass(frozen=True, slots=True)
class PostgresSwap:
    """What a schema swap moved."""

    relations: int
    replaced: int


@dataclass(frozen=True, slots=True)
class RedisSwap:
    """What a key swap did."""

    deleted: int
    moved: int


def old_schema(live: str) -> str:
    return checked_schema(f"rebuild_old_{live}"[:63])


async def schema_swap(
    pool: AsyncConnectionPool, *, live: str, shadow: str, projectors: list[str], catch_up: CatchUp
) -> PostgresSwap:
    """Swap ``shadow``'s read model in for ``live``'s (see the module docstring).

    ``pool`` may be bound to any schema: every name here is qualified. ``catch_up`` is awaited with
    the live positions of ``projectors`` while the live offsets are locked.
    """
    old = old_schema(live)
    try:
        async with pool.connection() as conn:
            await _drop(conn, old)
            async with conn.transaction():
                await conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
                await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(live)))
                await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(old)))
                positions = await _lock_live_offsets(conn, live, projectors)
                await catch_up(positions)
                await _check_not_behind(conn, shadow, positions)
                swapped = await _move_all(conn, live=live, shadow=shadow, old=old)
                await _replace_migrations(conn, live, shadow)
            await _drop(conn, old)
            await _drop(conn, shadow)
    except psycopg.Error as e:
        raise translate(e, f"swapping schema {shadow} in for {live}") from e
    return swapped


async def _drop(conn: AsyncConnection, schema: str) -> None:
    await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    await conn.commit()


async def _exists(conn: AsyncConnection, schema: str, relation: str) -> bool:
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{relation}"',))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _lock_live_offsets(conn: AsyncConnection, live: str, projectors: list[str]) -> LiveOffsets:
    positions: LiveOffsets = {name: {} for name in projectors}
    if not await _exists(conn, live, "projection_offsets"):
        return positions
    table = sql.Identifier(live, "projection_offsets")
    await conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
    query = sql.SQL("SELECT projector, topic, partition, next_offset FROM {} WHERE projector = ANY(%s)")
    cur = await conn.execute(query.format(table), (projectors,))
    for projector, topic, partition, offset in await cur.fetchall():
        positions[projector][(topic, partition)] = offset
    return positions


async def _check_not_behind(conn: AsyncConnection, shadow: str, live: LiveOffsets) -> None:
    cur = await conn.execute(
        sql.SQL("SELECT projector, topic, partition, next_offset FROM {}").format(
            sql.Identifier(shadow, "projection_offsets")
        )
    )
    mine = {(p, t, n): o for p, t, n, o in await cur.fetchall()}
    for projector, offsets in live.items():
        for (topic, partition), offset in offsets.items():
            shadow_at = mine.get((projector, topic, partition), 0)
            if shadow_at < offset:
                raise ShadowBehind(
                    f"{projector} {topic}:{partition}: shadow at {shadow_at}, live at {offset}"
                )


async def _move_all(conn: AsyncConnection, *, live: str, shadow: str, old: str) -> PostgresSwap:
    incoming = await _objects(conn, shadow)
    present = await _objects(conn, live)
    replaced = [item for item in incoming if item in present]
    for keyword, name in replaced:
        await conn.execute(_set_schema(keyword, live, name, old))
    for keyword, name in incoming:
        await conn.execute(_set_schema(keyword, shadow, name, live))
    log.debug("swapped %s objects of %s into %s (%s replaced)", len(incoming), shadow, live, len(replaced))
    return PostgresSwap(relations=len(incoming), replaced=len(replaced))


async def _objects(conn: AsyncConnection, schema: str) -> list[tuple[str, str]]:
    """(keyword, name) of every movable object of ``schema``; a routine's name carries its arguments."""
    found = [
        (KIND_KEYWORD[kind], name)
        for name, kind in await (await conn.execute(RELATIONS, (schema,))).fetchall()
    ]
    found += [("TYPE", name) for (name,) in await (await conn.execute(TYPES, (schema,))).fetchall()]
    routines = await (await conn.execute(ROUTINES, (schema,))).fetchall()
    found += [("ROUTINE", f"{name}\x00{arguments}") for name, arguments in routines]
    return found


def _set_schema(keyword: str, schema: str, name: str, to: str) -> sql.Composed:
    if keyword == "ROUTINE":
        routine, arguments = name.split("\x00")
        # identity arguments come from the catalogue (pg_get_function_identity_arguments), not users
        return sql.SQL("ALTER ROUTINE {}({}) SET SCHEMA {}").format(
            sql.Identifier(schema, routine), sql.SQL(arguments), sql.Identifier(to)
        )
    return sql.SQL(f"ALTER {keyword} {{}} SET SCHEMA {{}}").format(
        sql.Identifier(schema, name), sql.Identifier(to)
    )


async def _replace_migrations(conn: AsyncConnection, live: str, shadow: str) -> None:
    if not await _exists(conn, shadow, "schema_migrations"):
        raise DatabaseError(f"schema {shadow} has no schema_migrations: not a migrated shadow")
    ours, theirs = sql.Identifier(live, "schema_migrations"), sql.Identifier(shadow, "schema_migrations")
    await conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING ALL)").format(ours, theirs))
    await conn.execute(sql.SQL("DELETE FROM {} WHERE component = %s").format(ours), (COMPONENT,))
    await conn.execute(
        sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE component = %s").format(ours, theirs), (COMPONENT,)
    )


# --- Redis --------------------------------------------------------------------------------------

# One read model: its keys, the offsets hashes (KEYS) included, share one hash slot (redis_keys.py),
# so on a Redis Cluster the script runs on the node holding that slot and SCAN there finds them all.
SWAP_SCRIPT = """
local live, shadow, live_glob, shadow_glob = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local current = redis.call('HGETALL', KEYS[1])
for j = 1, #current, 2 do
  local mine = tonumber(redis.call('HGET', KEYS[2], current[j]) or '0')
  if mine < tonumber(current[j + 1]) then
    return {'behind', KEYS[1], current[j], tostring(mine), current[j + 1]}
  end
end
local function matching(pattern)
  local keys, cursor = {}, '0'
  repeat
    local reply = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = reply[1]
    for _, key in ipairs(reply[2]) do table.insert(keys, key) end
  until cursor == '0'
  return keys
end
local deleted, moved = 0, 0
for i = 5, #ARGV do
  for _, key in ipairs(matching(live_glob .. ARGV[i])) do
    if string.sub(key, 1, #shadow) ~= shadow then
      redis.call('DEL', key)
      deleted = deleted + 1
    end
  end
  for _, key in ipairs(matching(shadow_glob .. ARGV[i])) do
    redis.call('RENAME', key, live .. string.sub(key, #shadow + 1))
    moved = moved + 1
  end
end
return {'swapped', tostring(deleted), tostring(moved)}
"""


def parse_offset_field(field: str) -> Partition:
    """``"topic:partition"`` (a Redis offsets hash field) back into a partition."""
    topic, partition = field.rsplit(":", 1)
    return topic, int(partition)


async def live_redis_offsets(client: RedisClient, offsets_keys: Mapping[str, str]) -> LiveOffsets:
    """projector -> its live positions, from the offsets hash of each (name -> key)."""
    try:
        return {
            name: {parse_offset_field(str(f)): int(v) for f, v in (await client.hgetall(key)).items()}
            for name, key in offsets_keys.items()
        }
    except DRIVER_ERRORS as e:
        raise translate_redis(e, "reading the live Redis offsets") from e


async def redis_swap(
    client: RedisClient, *, live: str, shadow: str, offsets: str, patterns: list[str]
) -> RedisSwap:
    """Replace one read model's live keys matching ``patterns`` (relative to the prefixes, MATCH
    syntax) with the shadow's, in one script; ``ShadowBehind`` if its live offsets hash (``offsets``,
    relative) is ahead of the shadow's. The two offsets hashes are the script's KEYS, which routes it
    to the read model's node on a cluster."""
    keys = [live + offsets, shadow + offsets]
    args = [live, shadow, glob_escape(live), glob_escape(shadow), *patterns]
    try:
        reply = await client.eval(SWAP_SCRIPT, len(keys), *keys, *args)
    except DRIVER_ERRORS as e:
        raise translate_redis(e, f"swapping the Redis keys under {shadow!r} in for {live!r}") from e
    if reply[0] == "behind":
        _, key, field, mine, theirs = reply
        raise ShadowBehind(f"{key} {field}: shadow at {mine}, live at {theirs}")
    log.debug("swapped Redis keys %r -> %r: %s deleted, %s moved", shadow, live, reply[1], reply[2])
    return RedisSwap(deleted=int(reply[1]), moved=int(reply[2]))
