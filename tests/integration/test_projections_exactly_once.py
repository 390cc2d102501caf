"""The generic PostgreSQL projector's guarantees, with a handler that logs every application: a batch
is applied once even when stored twice at the same time, a failing event stops the projector
without moving its offsets, and an unavailable database is retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.users import UserRegistered
from infra.kafka import ConsumedEvent, Position
from infra.settings import Settings
from projections.projector import Apply, Cursor, PostgresProjector, ProjectionFailed, store_with_retries
from tests.integration.projections_support import read_model, unique_schema

pytestmark = pytest.mark.integration


async def log_application(cur: Cursor, event: Event) -> None:
    await cur.execute("INSERT INTO applications (event_id) VALUES (%s)", (str(event.event_id),))


@pytest.fixture
async def model(settings: Settings) -> AsyncIterator[tuple[AsyncConnectionPool, str]]:
    schema = unique_schema()
    async with read_model(settings, schema) as pool:
        async with pool.connection() as conn:
            await conn.execute("CREATE TABLE applications (event_id text NOT NULL)")
        yield pool, schema


def batch(count: int, topic: str = "users", partition: int = 0, start: int = 0) -> list[ConsumedEvent]:
    return [
        ConsumedEvent(
            UserRegistered(user_id=f"u{n}", username=f"n{n}", display_name="d"),
            Position(topic, partition, start + n),
            None,
            [],
            0,
        )
        for n in range(count)
    ]


async def applications(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM applications")).fetchone()
    return int(row[0]) if row else 0


def projector(pool: AsyncConnectionPool, schema: str, handler: Apply = log_application) -> PostgresProjector:
    return PostgresProjector(
        pool, name="test", topics=("users",), handlers={UserRegistered: handler}, schema=schema
    )


async def test_the_same_batch_stored_twice_concurrently_is_applied_once(
    model: tuple[AsyncConnectionPool, str],
) -> None:
    pool, schema = model
    first, twin = projector(pool, schema), projector(pool, schema)  # a zombie after a rebalance
    events = batch(50) + batch(20, topic="users", partition=1)
    await asyncio.gather(first.store(events), twin.store(events))
    assert await applications(pool) == 70
    assert first.stats.applied + twin.stats.applied == 70
    assert first.stats.duplicates + twin.stats.duplicates == 70
    assert await first.start_positions([("users", 0), ("users", 1), ("users", 2)]) == {
        ("users", 0): 50,
        ("users", 1): 20,
        ("users", 2): 0,
    }
    await first.store(batch(60))  # overlapping redelivery: only offsets 50..59 are new
    assert await applications(pool) == 80


@pytest.mark.parametrize("failure", ["python", "sql"])
async def test_an_event_that_cannot_be_applied_stops_the_projector_and_moves_nothing(
    model: tuple[AsyncConnectionPool, str], failure: str
) -> None:
    pool, schema = model
    events = batch(5)

    async def refuse_the_third(cur: Cursor, event: Event) -> None:
        if event == events[3].event:
            if failure == "python":
                raise ValueError("no such thing")
            await cur.execute("SELECT 1 / 0")  # pipelined: reported only at the pipeline's sync
        await log_application(cur, event)

    store = projector(pool, schema, refuse_the_third)
    with pytest.raises(ProjectionFailed) as stopped:
        await store_with_retries(store, events)
    assert stopped.value.consumed is events[3]
    assert "users:0:3" in str(stopped.value) and str(events[3].event.event_id) in str(stopped.value)
    assert await applications(pool) == 0
    assert await store.start_positions([("users", 0)]) == {("users", 0): 0}


async def test_an_unavailable_database_is_retried_and_applies_once(
    model: tuple[AsyncConnectionPool, str],
) -> None:
    pool, schema = model
    failures = [psycopg.OperationalError("server closed the connection unexpectedly")]

    async def flaky(cur: Cursor, event: Event) -> None:
        await log_application(cur, event)
        if failures:
            raise failures.pop()

    store = projector(pool, schema, flaky)
    events: Sequence[ConsumedEvent] = batch(10)
    await store_with_retries(store, events, first_delay_s=0.01)
    assert await applications(pool) == 10
    assert store.stats.batches == 1
