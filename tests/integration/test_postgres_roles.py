"""A role per service on the shared PostgreSQL, in a database of this test's own with uniquely named
roles (dropped afterwards): each service's migrations run as its role; the API writes the command side
and only reads the read model, the projector cannot touch the command side, neither can create roles
or databases, and a read model swapped in by a rebuild is still readable by the API."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from infra.postgres_roles import ServiceRoles, create_service_roles, declared_tables
from infra.settings import Settings
from infra.stack import apps
from infra.stack import postgres as stack_postgres
from producers.services import MIGRATIONS as COMMAND_MIGRATIONS
from producers.services import Namespace, make_api_pool
from producers.services import migrate as migrate_command_side
from projections.database import make_pool
from projections.database import migrate as migrate_read_model
from projections.rebuild.swap import schema_swap
from tests.chaos.platform import environment, esports, run_folder, settings_of

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Platform:
    """The test's database and the settings each service connects with."""

    database: str
    roles: ServiceRoles
    api: Settings
    projector: Settings


def _admin_dsn(settings: Settings, database: str) -> str:
    sockets = settings.stack.run_dir / "postgres" / "socket"
    return make_conninfo(host=str(sockets), port=settings.postgres.port, user="postgres", dbname=database)


def _as(settings: Settings, database: str, role: str, password: str) -> Settings:
    postgres = settings.postgres.model_copy(
        update={"user": role, "password": password, "password_file": None, "database": database}
    )
    return settings.model_copy(update={"postgres": postgres})


@pytest.fixture(params=["fresh", "adopted"])
async def platform(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Platform]:
    """Roles on an empty database, or on one the former single role (``legacy``) had migrated."""
    tag = uuid.uuid4().hex[:10]
    database, legacy = f"roles_{tag}", f"legacy_{tag}"
    roles = ServiceRoles(api=f"api_{tag}", projector=f"projector_{tag}")
    passwords = {role: secrets.token_urlsafe(18) for role in (*roles.names(), legacy)}
    admin = _admin_dsn(settings, "postgres")
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(legacy), sql.Literal(passwords[legacy])
            )
        )
        await conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(legacy))
        )
    try:
        if request.param == "adopted":
            single = _as(settings, database, legacy, passwords[legacy])
            await _migrated(single, single)
        async with await psycopg.AsyncConnection.connect(
            _admin_dsn(settings, database), autocommit=True
        ) as conn:
            for _ in range(2):  # idempotent
                await create_service_roles(
                    conn,
                    roles,
                    passwords,
                    command_tables=declared_tables(COMMAND_MIGRATIONS),
                    adopt_from=legacy,
                )
        yield Platform(
            database,
            roles,
            api=_as(settings, database, roles.api, passwords[roles.api]),
            projector=_as(settings, database, roles.projector, passwords[roles.projector]),
        )
    finally:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            for role in (*roles.names(), legacy):
                await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


async def _migrated(projector: Settings, api: Settings) -> None:
    """Both services' migrations, each as its role (a no-op where the database is up to date)."""
    async with make_pool(projector.postgres, name="roles-test") as pool:
        await migrate_read_model(pool)
    async with make_api_pool(api.postgres, Namespace(), max_size=1) as pool:
        await migrate_command_side(pool, Namespace())


async def _connect(settings: Settings) -> psycopg.AsyncConnection[tuple[object, ...]]:
    return await psycopg.AsyncConnection.connect(settings.postgres.dsn, autocommit=True)


async def test_the_api_writes_the_command_side_and_only_reads_the_read_model(platform: Platform) -> None:
    await _migrated(platform.projector, platform.api)
    async with await _connect(platform.api) as conn:
        await conn.execute(
            "INSERT INTO idempotency_keys (idem_key, user_id, route, request_hash)"
            " VALUES ('k', 'u', 'POST /x', 'h')"
        )
        assert await (await conn.execute("SELECT count(*) FROM streams")).fetchone() == (0,)
        assert await (await conn.execute("SELECT count(*) FROM poll_results")).fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            await conn.execute("DELETE FROM projection_offsets")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            await conn.execute("CREATE SCHEMA sneaky")


async def test_the_projector_cannot_touch_the_command_side(platform: Platform) -> None:
    await _migrated(platform.projector, platform.api)
    async with await _connect(platform.projector) as conn:
        await conn.execute("DELETE FROM projection_offsets")
        for statement in ("DELETE FROM credentials", "SELECT * FROM channel_stream_keys"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                await conn.execute(statement)


@pytest.mark.parametrize("service", ["api", "projector"])
@pytest.mark.parametrize("statement", ["CREATE ROLE intruder", "CREATE DATABASE intruder"])
async def test_no_service_creates_roles_or_databases(
    platform: Platform, service: str, statement: str
) -> None:
    async with await _connect(getattr(platform, service)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            await conn.execute(statement)
        row = await (
            await conn.execute(
                "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
            )
        ).fetchone()
    assert row == (False, False, False)


async def test_nobody_else_creates_in_public(platform: Platform) -> None:
    async with await _connect(platform.api) as conn:
        row = await (
            await conn.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')")
        ).fetchone()
    assert row == (False,)


async def test_a_read_model_swapped_in_by_a_rebuild_stays_readable_by_the_api(platform: Platform) -> None:
    await _migrated(platform.projector, platform.api)
    async with make_pool(platform.projector.postgres, name="roles-test", schema="rebuild_public") as shadow:
        await migrate_read_model(shadow, "rebuild_public")
        async with shadow.connection() as conn:
            await conn.execute(
                "INSERT INTO projection_offsets (projector, topic, partition, next_offset)"
                " VALUES ('p', 't', 0, 7)"
            )
            await conn.execute("CREATE TABLE rebuilt_later (id int)")  # a table no migration had yet
            await conn.execute("INSERT INTO rebuilt_later VALUES (1)")
        swap = await schema_swap(
            shadow, live="public", shadow="rebuild_public", projectors=[], catch_up=_nothing
        )
    assert swap.replaced > 0
    async with await _connect(platform.api) as conn:
        assert await (await conn.execute("SELECT next_offset FROM projection_offsets")).fetchone() == (7,)
        assert await (await conn.execute("SELECT id FROM rebuilt_later")).fetchone() == (1,)
        assert await (await conn.execute("SELECT count(*) FROM credentials")).fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            await conn.execute("INSERT INTO rebuilt_later VALUES (2)")
    async with await _connect(platform.projector) as conn:
        await conn.execute("INSERT INTO rebuilt_later VALUES (2)")


async def _nothing(_positions: object) -> None:
    """The shadow is never behind here: no live projector runs."""


def test_the_stack_gives_the_api_and_the_projector_their_own_role(settings: Settings, tmp_path: Path) -> None:
    local = settings.model_copy(
        update={
            "postgres": settings.postgres.model_copy(update={"service_roles": True}),
            "stack": settings.stack.model_copy(update={"run_dir": tmp_path}),
        }
    )
    env = {name: stack_postgres.service_env(local, app.postgres_role) for name, app in apps.APP_TABLE.items()}
    assert env["api"]["ESPORTS_POSTGRES__USER"] == "esports_api"
    assert env["projector"]["ESPORTS_POSTGRES__USER"] == "esports_projector"
    assert env["edge"] == {}
    secret = Path(env["api"]["ESPORTS_POSTGRES__PASSWORD_FILE"])
    assert secret.stat().st_mode & 0o777 == 0o600
    assert stack_postgres.service_env(settings, "esports_api") == {}  # off by default
    assert declared_tables(COMMAND_MIGRATIONS) == {
        "credentials",
        "refresh_tokens",
        "channel_claims",
        "channel_stream_keys",
        "idempotency_keys",
    }


async def test_infra_up_creates_the_roles_the_apps_connect_as() -> None:
    """`esports infra up postgres` with the setting, on a private instance in its own run folder."""
    with run_folder(Settings()) as run_dir:
        env = environment(run_dir, {"POSTGRES__SERVICE_ROLES": 1}, brokers=1)
        esports(env, "infra", "up", "postgres")
        try:
            local = settings_of(env)
            api = stack_postgres.service_env(local, "esports_api")
            password = Path(api["ESPORTS_POSTGRES__PASSWORD_FILE"]).read_text().strip()
            as_api = local.model_copy(
                update={
                    "postgres": local.postgres.model_copy(
                        update={"user": "esports_api", "password": password}
                    )
                }
            )
            async with await _connect(as_api) as conn:
                row = await (
                    await conn.execute(
                        "SELECT current_user, rolcreaterole FROM pg_roles WHERE rolname = current_user"
                    )
                ).fetchone()
            assert row == ("esports_api", False)
        finally:
            esports(env, "infra", "down", "postgres")
