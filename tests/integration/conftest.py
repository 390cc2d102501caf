"""Fixtures for tests against the real Kafka, PostgreSQL and Redis that `make test` starts.

A service that is not reachable fails the test (never a skip): a green run must mean it ran for real.
Each test gets its own topic namespace (a unique prefix on every catalogue topic), so tests do
not see each other's events and can run against a broker that also serves `make up`.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from events.codec import EventCodec
from events.topics import CATALOGUE
from infra.kafka import TopicAdmin, TopicNames
from infra.settings import Settings
from schemas import SCHEMAS_DIR

pytestmark = pytest.mark.integration


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = Settings()
    host, port = settings.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)
    missing = [
        name
        for name, h, p in (
            ("Kafka", host, int(port)),
            ("PostgreSQL", settings.postgres.host, settings.postgres.port),
            ("Redis", settings.redis.host, settings.redis.port),
        )
        if not _reachable(h, p)
    ]
    if missing:
        pytest.fail(f"not reachable: {', '.join(missing)}; `make test` starts them (esports infra up)")
    return settings


@pytest.fixture(scope="session")
def codec() -> EventCodec:
    return EventCodec.load(SCHEMAS_DIR)


@pytest.fixture
async def namespace(settings: Settings) -> AsyncIterator[Settings]:
    """Settings whose topic prefix is unique to this test, with every catalogue topic created."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    scoped = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix, "default_partitions": 3})}
    )
    async with TopicAdmin(scoped.kafka) as admin:
        await admin.ensure(CATALOGUE)
    yield scoped
    names = TopicNames(prefix)
    async with TopicAdmin(scoped.kafka) as admin:
        await admin.delete([names.physical(t.name) for t in CATALOGUE])
