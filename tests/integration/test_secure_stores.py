"""A private PostgreSQL with ssl=on (its certificate from the local CA) and a private Redis whose only
user is an ACL user, both from `esports infra up` in their own run folder and ports: the platform's
clients connect with sslmode=verify-full and as the ACL user; a client that does not trust the CA,
or a Redis client without the password, is refused."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from infra.postgres import make_pool
from infra.redis import make_client
from infra.settings import Settings
from infra.stack.certs import local_ca
from tests.chaos.platform import environment, esports, run_folder, settings_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secured() -> Iterator[Settings]:
    with run_folder(Settings()) as run_dir:
        extra = {
            "POSTGRES__SSL": 1,
            "REDIS__USERNAME": "esports-live",
            "REDIS__PASSWORD": secrets.token_urlsafe(18),
        }
        env = environment(run_dir, extra, brokers=1)
        esports(env, "infra", "up", "postgres", "redis")
        try:
            yield settings_of(env)
        finally:
            esports(env, "infra", "down", "postgres", "redis")


async def test_postgres_clients_connect_with_verify_full(secured: Settings) -> None:
    assert secured.postgres.sslmode == "verify-full"
    async with make_pool(secured.postgres, name="secure-test") as pool, pool.connection() as conn:
        row = await (
            await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ).fetchone()
    assert row == (True,)


async def test_postgres_refuses_a_client_that_does_not_trust_the_ca(secured: Settings, tmp_path) -> None:
    other_ca, _ = local_ca(tmp_path)
    untrusting = secured.postgres.model_copy(update={"sslrootcert": other_ca})
    with pytest.raises(psycopg.OperationalError, match="SSL error"):
        await psycopg.AsyncConnection.connect(untrusting.dsn, connect_timeout=3)


async def test_redis_clients_connect_as_the_acl_user_only(secured: Settings) -> None:
    client = make_client(secured.redis, name="secure-test")
    try:
        assert await client.acl_whoami() == "esports-live"
    finally:
        await client.aclose()
    # without the platform client's retries: a refused AUTH is a ConnectionError it would retry
    anonymous = aioredis.Redis(host="127.0.0.1", port=secured.redis.port, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()
