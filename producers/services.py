"""The API's composition: one :class:`Services` built from Settings, holding every client the routes use.

Nothing here is a module global; :func:`producers.app.create_api` builds (or is given) one instance
and routes reach it through ``deps.py``. A :class:`Namespace` says where the API's data lives, so tests
can run against their own PostgreSQL schemas and Redis key prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from events.codec import EventCodec
from infra.kafka import BrokerUnavailable, EventPublisher
from infra.postgres import apply_migrations, run_ddl
from infra.redis import RedisClient, make_client
from infra.settings import PostgresSettings, Settings
from infra.tokens import AccessTokens
from producers.auth.login_limiter import LoginLimiter
from producers.auth.passwords import Passwords
from producers.auth.verified_tokens import RememberedTokens
from producers.commands import CommandBus
from producers.listings import CatalogReader, StreamReader, TournamentReader
from producers.metrics import ApiMetrics
from producers.store.accounts import AccountStore
from producers.store.channels import ChannelStore
from producers.store.facts import FactCache
from schemas import SCHEMAS_DIR

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
PRODUCER_NAME = "producers.api"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ConfigurationError(Exception):
    """A setting the API needs is missing or invalid."""


@dataclass(frozen=True, slots=True)
class Namespace:
    """Where the API's data lives: read-model schema, command-side schema, Redis key prefix."""

    read_schema: str = "public"
    command_schema: str = "public"
    redis_prefix: str = ""

    def __post_init__(self) -> None:
        for schema in (self.read_schema, self.command_schema):
            if not _SCHEMA_NAME.match(schema):
                raise ConfigurationError(f"invalid PostgreSQL schema name {schema!r}")

    @property
    def search_path(self) -> str:
        # Command tables first (migrations create there), then the read model's; names never collide.
        schemas = dict.fromkeys((self.command_schema, self.read_schema))
        return ",".join(schemas)


def make_api_pool(
    settings: PostgresSettings, namespace: Namespace, *, max_size: int = 10
) -> AsyncConnectionPool:
    """A pool whose connections see the command schema, then the read-model schema."""
    return AsyncConnectionPool(
        settings.dsn + " application_name=esports-api",
        min_size=1,
        max_size=max_size,
        open=False,
        name="esports-api",
        kwargs={"autocommit": True, "options": f"-c search_path={namespace.search_path}"},
    )


async def migrate(pool: AsyncConnectionPool, namespace: Namespace) -> list[str]:
    """Create the command schema if needed and apply producers/migrations to it."""
    async with pool.connection() as conn:
        # Only when missing: CREATE SCHEMA checks the right to create schemas even when it exists, a
        # right the API's own role lacks under ESPORTS_POSTGRES__SERVICE_ROLES.
        found = await conn.execute("SELECT to_regnamespace(%s)", (namespace.command_schema,))
        if (row := await found.fetchone()) is None or row[0] is None:
            await run_ddl(
                conn,
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(namespace.command_schema)),
            )
    return await apply_migrations(pool, "producers", MIGRATIONS)


@dataclass(slots=True)
class Services:
    """Every client and component the routes need, built once per process."""

    settings: Settings
    namespace: Namespace
    pool: AsyncConnectionPool
    redis: RedisClient
    bus: CommandBus
    codec: EventCodec
    passwords: Passwords
    tokens: AccessTokens
    limiter: LoginLimiter
    metrics: ApiMetrics
    accounts: AccountStore
    channels: ChannelStore
    catalog: CatalogReader
    streams: StreamReader
    tournaments: TournamentReader
    facts: FactCache  # what accounts and channels keep of their rows (producers.store.facts)

    @property
    def internal_token(self) -> str:
        token = self.settings.auth.internal_token
        return token.get_secret_value() if token else ""

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        namespace: Namespace | None = None,
        *,
        metrics: ApiMetrics | None = None,
        passwords: Passwords | None = None,
    ) -> AsyncIterator[Services]:
        """Connect to PostgreSQL (and migrate), Redis and Kafka; close them all on exit."""
        namespace = namespace or Namespace()
        tokens = _access_tokens(settings)
        metrics = metrics or ApiMetrics()
        codec = EventCodec.load(SCHEMAS_DIR)
        async with AsyncExitStack() as stack:
            pool = make_api_pool(settings.postgres, namespace)
            await pool.open(wait=True, timeout=15)
            stack.push_async_callback(pool.close)
            await migrate(pool, namespace)
            facts = FactCache(namespace.command_schema)
            stack.push_async_callback(_cancelled, asyncio.create_task(facts.listen(_notices_dsn(settings))))
            redis = make_client(settings.redis, name="esports-api")
            stack.push_async_callback(redis.aclose)
            publisher = EventPublisher(settings.kafka, codec, producer=PRODUCER_NAME)
            stack.push_async_callback(publisher.stop)
            await _start_publisher(publisher, settings.api.publish_timeout_s)
            yield cls(
                settings=settings,
                namespace=namespace,
                pool=pool,
                redis=redis,
                bus=CommandBus(
                    publisher, metrics, producer=PRODUCER_NAME, timeout_s=settings.api.publish_timeout_s
                ),
                codec=codec,
                passwords=passwords or Passwords(),
                tokens=tokens,
                limiter=LoginLimiter(
                    redis, prefix=namespace.redis_prefix, per_minute=settings.auth.login_attempts_per_minute
                ),
                metrics=metrics,
                accounts=AccountStore(pool, facts),
                channels=ChannelStore(pool, facts),
                catalog=CatalogReader(pool),
                streams=StreamReader(pool, redis, prefix=namespace.redis_prefix),
                tournaments=TournamentReader(pool),
                facts=facts,
            )


def _notices_dsn(settings: Settings) -> str:
    return settings.postgres.dsn + " application_name=esports-api-notices"


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _start_publisher(publisher: EventPublisher, timeout_s: float) -> None:
    """Connect to Kafka if it answers in time; if not, the API starts anyway (queries and /health work,
    commands answer 503) and the first command after Kafka is back connects it."""
    try:
        await publisher.start(timeout_s=timeout_s)
    except BrokerUnavailable as e:
        log.warning("Kafka unreachable at start, commands answer 503 until it is back: %s", e)


def _access_tokens(settings: Settings) -> AccessTokens:
    secret = settings.auth.jwt_secret
    if secret is None or not settings.auth.internal_token:
        raise ConfigurationError(
            "ESPORTS_AUTH__JWT_SECRET and ESPORTS_AUTH__INTERNAL_TOKEN are required (`esports infra up` "
            "writes local ones to .run/secrets.env)"
        )
    return RememberedTokens(
        secret.get_secret_value(),
        issuer=settings.auth.jwt_issuer,
        audience=settings.auth.jwt_audience,
        ttl_s=settings.auth.access_ttl_s,
    )
