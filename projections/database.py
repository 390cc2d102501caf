"""The read-model database: a connection pool bound to one schema, and that schema's migrations.

Every table of the read model lives in one PostgreSQL schema (default ``public``). The pool sets
``search_path`` on each connection it opens, so SQL names tables without a schema and a test, or a
rebuild next to the live model, just uses another schema name.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from infra.postgres import DatabaseError, apply_migrations, run_ddl, translate
from infra.settings import PostgresSettings

__all__ = ["MIGRATIONS", "checked_schema", "drop_schema", "make_pool", "migrate"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
COMPONENT = "projections"
# Plain lower-case identifiers only: the name goes into a connection option, where quoting rules
# differ from SQL's, and a schema name never needs more.
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_schema(schema: str) -> str:
    """``schema`` if it is a plain identifier; ``ValueError`` otherwise."""
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r}: use lower-case letters, digits and _ (max 63)")
    return schema


def make_pool(
    settings: PostgresSettings, *, name: str, schema: str = "public", min_size: int = 1, max_size: int = 4
) -> AsyncConnectionPool:
    """A pool whose connections resolve table names in ``schema`` (not opened yet)."""
    conninfo = make_conninfo(
        settings.dsn, application_name=name, options=f"-c search_path={checked_schema(schema)}"
    )
    return AsyncConnectionPool(
        conninfo, min_size=min_size, max_size=max_size, open=False, name=name, kwargs={"autocommit": False}
    )


async def migrate(pool: AsyncConnectionPool, schema: str = "public") -> list[str]:
    """Create ``schema`` if missing and apply the read model's pending migrations into it.

    ``pool`` must come from :func:`make_pool` with the same schema (checked: migrating into the
    wrong schema would be silent otherwise).
    """
    try:
        async with pool.connection() as conn:
            await run_ddl(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            cur = await conn.execute("SELECT current_schema()")
            row = await cur.fetchone()
    except psycopg.Error as e:
        raise translate(e, f"creating schema {schema}") from e
    if row is None or row[0] != schema:
        raise DatabaseError(f"the pool resolves names in {row}, not in {schema!r}: build it with make_pool")
    return await apply_migrations(pool, COMPONENT, MIGRATIONS)


async def drop_schema(pool: AsyncConnectionPool, schema: str) -> None:
    """Drop ``schema`` and everything in it (a rebuild starts from an empty schema; tests clean up)."""
    try:
        async with pool.connection() as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(checked_schema(schema)))
            )
    except psycopg.Error as e:
        raise translate(e, f"dropping schema {schema}") from e
