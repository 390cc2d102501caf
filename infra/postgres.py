"""The PostgreSQL adapter: connection pools, versioned migrations, and driver-error translation.

Migrations are plain SQL files named ``NNNN_what_it_does.sql`` in a component's own folder
(``projections/migrations``, ``producers/migrations``...). Each component's applied versions are
recorded in ``schema_migrations``; a file is applied once, in its own transaction, under an advisory
lock so two services starting together do not race, and the idempotent DDL around them (the schema,
``schema_migrations`` itself) runs under one too (:func:`run_ddl`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg.abc import Query
from psycopg_pool import AsyncConnectionPool

from infra.settings import PostgresSettings

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Every component's applied versions, in the schema the connection resolves names in.
SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " component text NOT NULL, version int NOT NULL, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))"
)


# Serialises idempotent DDL across processes: CREATE ... IF NOT EXISTS is no guard against a creator
# running at the same moment (the catalogue's unique index refuses the second one), as two services
# (two projectors, two API processes) migrating a fresh database at once do.
_DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('esports:ddl'))"


async def run_ddl(conn: psycopg.AsyncConnection[Any], *statements: Query) -> None:
    """Run idempotent DDL (``CREATE ... IF NOT EXISTS``) in a transaction of its own, under one
    advisory lock: whoever comes second waits and finds it done. Call it on a connection with no
    transaction open."""
    async with conn.transaction():
        await conn.execute(_DDL_LOCK)
        for statement in statements:
            await conn.execute(statement)


class DatabaseError(Exception):
    """Base of this adapter's errors; ``retriable`` says whether trying again can help."""

    retriable = False


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL could not be reached or dropped the connection."""

    retriable = True


class DatabaseConflict(DatabaseError):
    """A transaction lost a serialization or deadlock conflict with a concurrent one: run it again."""

    retriable = True


class MigrationError(DatabaseError):
    """A migration file is misnamed or failed to apply."""


def translate(error: BaseException, action: str) -> DatabaseError:
    """The one place psycopg errors become ours."""
    state = getattr(error, "sqlstate", None)
    if state in ("40001", "40P01"):  # serialization failure, deadlock
        return DatabaseConflict(f"{action}: conflict with a concurrent transaction ({state})")
    if isinstance(error, psycopg.OperationalError | psycopg.errors.ConnectionTimeout):
        return DatabaseUnavailable(f"{action}: PostgreSQL unavailable ({error})")
    return DatabaseError(f"{action}: {error}")


def make_pool(
    settings: PostgresSettings, *, name: str, min_size: int = 1, max_size: int = 10
) -> AsyncConnectionPool:
    """A pool for one service (not opened: ``async with`` it or ``await pool.open()``)."""
    return AsyncConnectionPool(
        settings.dsn + f" application_name={name}",
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        kwargs={"autocommit": False},
    )


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    """The component's migrations in order; a misnamed .sql file is an error, not silently skipped."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_snake.sql")
        found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return found


async def apply_migrations(pool: AsyncConnectionPool, component: str, directory: Path) -> list[str]:
    """Apply the component's pending migrations; returns the file names applied (empty if none)."""
    applied: list[str] = []
    try:
        async with pool.connection() as conn:
            await run_ddl(conn, SCHEMA_MIGRATIONS_DDL)
            for version, path in migration_files(directory):
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrate:{component}",)
                    )
                    cur = await conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE component = %s AND version = %s",
                        (component, version),
                    )
                    if await cur.fetchone():
                        continue
                    await conn.execute(path.read_text())  # trusted SQL from the repo, not user input
                    await conn.execute(
                        "INSERT INTO schema_migrations (component, version, name) VALUES (%s, %s, %s)",
                        (component, version, path.name),
                    )
                    applied.append(path.name)
                    log.info("migration applied component=%s file=%s", component, path.name)
    except psycopg.Error as e:
        raise translate(e, f"migrating {component}") from e
    return applied
