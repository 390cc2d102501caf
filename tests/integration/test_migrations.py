"""Migrations against the real PostgreSQL when services start together: two projectors (or an API's
processes) on a fresh schema each migrate it at the same moment. Every one succeeds, and each file is
applied once. ``CREATE ... IF NOT EXISTS`` alone lost that race in CI (the catalogue's unique index
refused the second creator of ``schema_migrations``)."""

from __future__ import annotations

import asyncio

import pytest

from infra.postgres import migration_files
from infra.settings import Settings
from projections.database import MIGRATIONS, drop_schema, make_pool, migrate
from tests.integration.projections_support import unique_schema

pytestmark = pytest.mark.integration

PROCESSES = 6  # services starting at once on one fresh schema
ROUNDS = 3


async def test_services_migrating_a_fresh_schema_at_once_all_succeed(settings: Settings) -> None:
    wanted = sorted(path.name for _, path in migration_files(MIGRATIONS))
    for _ in range(ROUNDS):
        schema = unique_schema()
        pools = [make_pool(settings.postgres, name=f"migrate-{i}", schema=schema) for i in range(PROCESSES)]
        for pool in pools:
            await pool.open()
        try:
            results = await asyncio.gather(*(migrate(pool, schema) for pool in pools), return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
            applied = sorted(name for names in results if isinstance(names, list) for name in names)
            assert applied == wanted  # each file once, by whichever process came first
            assert await migrate(pools[0], schema) == []  # and nothing left to do
        finally:
            await drop_schema(pools[0], schema)
            for pool in pools:
                await pool.close()
