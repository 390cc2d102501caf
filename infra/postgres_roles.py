"""A PostgreSQL role per service, each with the least privileges it needs (ESPORTS_POSTGRES__SERVICE_ROLES).

Run by the admin (a superuser) on the platform's database, idempotently:

- **the API** (``esports_api``) owns the command-side tables it migrates (``producers/migrations``) and
  reads the read model: SELECT on every table and view, USAGE on every schema the projector creates,
  given by the projector's *default privileges*, so the tables of a rebuild's shadow schema, moved into
  the live schema by the swap, stay readable (a moved table keeps its grants);
- **the projector** (``esports_projector``) owns the read model it migrates: CREATE on the live schema
  and on the database (the rebuild's ``rebuild_<schema>`` shadow and the swap's ``rebuild_old_<schema>``);
  it has no right at all on the command side (stream keys and password hashes live there);
- ``schema_migrations``, shared by both components in the live schema, belongs to neither: the API may
  read and add rows, the projector also delete them (a swap replaces its component's rows);
- no role is a superuser or may create roles or databases; CREATE on ``public`` and CONNECT/TEMPORARY
  on the database are revoked from PUBLIC.

Objects the single platform role made before the switch are handed over: the command side's tables to
the API, every other relation of the live schema to the projector (readable by the API).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, sql

from infra.postgres import SCHEMA_MIGRATIONS_DDL

__all__ = ["API_ROLE", "PROJECTOR_ROLE", "ServiceRoles", "create_service_roles", "declared_tables"]

API_ROLE = "esports_api"
PROJECTOR_ROLE = "esports_projector"
CREATED_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)", re.IGNORECASE)
# What no service role may do, restated on every run (an operator's ALTER ROLE is undone).
LIMITS = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
# Relations a service may own (tables, views, sequences not owned by a column, foreign tables).
LEGACY_RELATIONS = """
SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND pg_get_userbyid(c.relowner) = %s AND c.relname <> 'schema_migrations'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
      AND d.deptype IN ('a', 'i')))
ORDER BY 1
"""
KIND_KEYWORD = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRoles:
    """The login role of each service that connects to PostgreSQL."""

    api: str = API_ROLE
    projector: str = PROJECTOR_ROLE

    def names(self) -> tuple[str, str]:
        return (self.api, self.projector)


def declared_tables(directory: Path) -> frozenset[str]:
    """The tables the migrations in ``directory`` create (the command side's, for the hand-over)."""
    return frozenset(
        name.lower() for path in directory.glob("*.sql") for name in CREATED_TABLE.findall(path.read_text())
    )


async def create_service_roles(
    conn: AsyncConnection[Any],
    roles: ServiceRoles,
    passwords: Mapping[str, str],
    *,
    schema: str = "public",
    command_tables: Collection[str] = (),
    adopt_from: str | None = None,
) -> None:
    """Create or update the roles and their grants on ``conn``'s database (an autocommit superuser
    connection); ``passwords`` maps each role to its password. Relations of ``schema`` owned by
    ``adopt_from`` (the former single role) are handed to the service they belong to."""
    for role in roles.names():
        await _login_role(conn, role, passwords[role])
    await _database_grants(conn, roles)
    await _schema_grants(conn, roles, schema)
    await _read_model_defaults(conn, roles)
    if adopt_from is not None:
        await _adopt(conn, roles, schema, adopt_from, frozenset(command_tables))


async def _login_role(conn: AsyncConnection[Any], role: str, password: str) -> None:
    found = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])).fetchone()
    verb = "ALTER" if found else "CREATE"
    await conn.execute(
        sql.SQL(f"{verb} ROLE {{}} LOGIN {LIMITS} PASSWORD {{}}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )


async def _database_grants(conn: AsyncConnection[Any], roles: ServiceRoles) -> None:
    row = await (await conn.execute("SELECT current_database()")).fetchone()
    database = sql.Identifier(row[0] if row else "")
    await conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(database))
    await conn.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
            database, sql.Identifier(roles.api), sql.Identifier(roles.projector)
        )
    )
    # The projector creates the shadow schema of a rebuild and the swap's old schema; the API none.
    await conn.execute(
        sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(database, sql.Identifier(roles.projector))
    )
    await conn.execute(
        sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(database, sql.Identifier(roles.api))
    )


async def _schema_grants(conn: AsyncConnection[Any], roles: ServiceRoles, schema: str) -> None:
    """Both create their tables in the live schema; ``schema_migrations`` there is shared."""
    live = sql.Identifier(schema)
    api, projector = sql.Identifier(roles.api), sql.Identifier(roles.projector)
    await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(live))
    await conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    await conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}, {}").format(live, api, projector))
    await conn.execute(sql.SQL("SET search_path = {}").format(live))
    await conn.execute(SCHEMA_MIGRATIONS_DDL)
    await conn.execute("RESET search_path")
    migrations = sql.Identifier(schema, "schema_migrations")
    await conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(migrations, api))
    await conn.execute(sql.SQL("GRANT SELECT, INSERT, DELETE ON {} TO {}").format(migrations, projector))


async def _read_model_defaults(conn: AsyncConnection[Any], roles: ServiceRoles) -> None:
    """Whatever the projector creates later, in any schema, the API may read (not write)."""
    api, projector = sql.Identifier(roles.api), sql.Identifier(roles.projector)
    for grant in ("SELECT ON TABLES", "USAGE ON SCHEMAS"):
        await conn.execute(
            sql.SQL(f"ALTER DEFAULT PRIVILEGES FOR ROLE {{}} GRANT {grant} TO {{}}").format(projector, api)
        )


async def _adopt(
    conn: AsyncConnection[Any], roles: ServiceRoles, schema: str, legacy: str, command_tables: frozenset[str]
) -> None:
    relations = await (await conn.execute(LEGACY_RELATIONS, (schema, legacy))).fetchall()
    for name, kind in relations:
        target = sql.Identifier(schema, name)
        keyword = sql.SQL(KIND_KEYWORD.get(kind, "FOREIGN TABLE"))
        owner = roles.api if name in command_tables else roles.projector
        await conn.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(keyword, target, sql.Identifier(owner)))
        if owner == roles.projector:
            await conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(target, sql.Identifier(roles.api)))
