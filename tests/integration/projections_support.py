"""Shared helpers of the projection tests (no tests here; the name keeps it with them).

Each helper isolates a test the way the contract asks: a unique PostgreSQL schema, a unique Redis
key prefix, and the unique topic prefix of the ``namespace`` fixture.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from events.topics import CATALOGUE
from infra.kafka import Position, TopicNames
from infra.redis import RedisClient, make_client
from infra.settings import Settings
from projections import catalog, chat, live, notifications, points, polls, viewer_counts, viewing_sessions
from projections.database import drop_schema, make_pool, migrate
from projections.live import LiveKeys
from projections.positions import wait_for_position
from projections.service import serve
from tests.ports import free_port

TABLES_EXCLUDED = {"schema_migrations"}  # applied_at differs between two schemas, by design


def unique_schema() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}:"


@asynccontextmanager
async def read_model(settings: Settings, schema: str | None = None) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on a fresh, migrated schema, dropped afterwards."""
    schema = schema or unique_schema()
    pool = make_pool(settings.postgres, name="tests", schema=schema)
    async with pool:
        await migrate(pool, schema)
        try:
            yield pool
        finally:
            await drop_schema(pool, schema)


@asynccontextmanager
async def redis_space(settings: Settings) -> AsyncIterator[tuple[RedisClient, str]]:
    """A client and a fresh key prefix whose keys are deleted afterwards."""
    client = make_client(settings.redis, name="tests")
    prefix = unique_prefix()
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def with_port(settings: Settings, port: int, **projections: Any) -> Settings:
    update = {"web_port": port, **projections}
    return settings.model_copy(update={"projections": settings.projections.model_copy(update=update)})


@asynccontextmanager
async def running_service(settings: Settings, schema: str, prefix: str) -> AsyncIterator[int]:
    """The projector service in-process (both projectors + /health); yields its web port and
    checks that it stops cleanly (exit code 0) when asked."""
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(with_port(settings, port), stop, schema=schema, redis_prefix=prefix))
    try:
        yield port
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


def last_positions(positions: Iterable[Position]) -> list[Position]:
    """The highest position of each partition (reaching it means reaching all before it)."""
    last: dict[tuple[str, int], Position] = {}
    for p in positions:
        if p.offset > last.get((p.topic, p.partition), Position(p.topic, p.partition, -1)).offset:
            last[(p.topic, p.partition)] = p
    return sorted(last.values(), key=lambda p: (p.topic, p.partition))


PG_PROJECTORS_BY_TOPIC: dict[str, list[str]] = {}
for _projector in (catalog, chat, notifications, points, polls, viewer_counts, viewing_sessions):
    for _topic in _projector.TOPICS:
        PG_PROJECTORS_BY_TOPIC.setdefault(_topic, []).append(_projector.NAME)


async def pg_caught_up(
    pool: AsyncConnectionPool, schema: str, positions: Iterable[Position], timeout_s: float
) -> None:
    """Every PostgreSQL projector reading a position's topic has applied it (``users`` is read by two)."""
    deadline = time.monotonic() + timeout_s
    for position in last_positions(positions):
        for projector in PG_PROJECTORS_BY_TOPIC.get(position.topic, ()):
            remaining = max(deadline - time.monotonic(), 0.0)
            reached = await wait_for_position(pool, position, remaining, schema=schema, projector=projector)
            assert reached, f"{projector} has not applied {position}"


async def redis_caught_up(
    client: RedisClient, prefix: str, positions: Iterable[Position], timeout_s: float
) -> None:
    wanted = [p for p in last_positions(positions) if p.topic in live.TOPICS]
    fields = [f"{p.topic}:{p.partition}" for p in wanted]
    deadline = time.monotonic() + timeout_s
    while True:
        stored = await client.hmget(LiveKeys(prefix).offsets, fields) if fields else []
        if all(int(s or 0) > p.offset for s, p in zip(stored, wanted, strict=True)):
            return
        assert time.monotonic() < deadline, f"redis.live did not reach {wanted}: {stored}"
        await asyncio.sleep(0.02)


async def caught_up(
    pool: AsyncConnectionPool,
    schema: str,
    client: RedisClient,
    prefix: str,
    positions: Iterable[Position],
    timeout_s: float = 30.0,
) -> None:
    positions = list(positions)
    await pg_caught_up(pool, schema, positions, timeout_s)
    await redis_caught_up(client, prefix, positions, timeout_s)


async def partitions_of(
    consumer: AIOKafkaConsumer, names: TopicNames, topics: Iterable[str]
) -> list[TopicPartition]:
    """Every partition of the catalogue ``topics`` (physical names), from fresh cluster metadata."""
    await consumer._client.force_metadata_update()
    cluster = consumer._client.cluster
    return [
        TopicPartition(names.physical(topic), p)
        for topic in topics
        for p in sorted(cluster.partitions_for_topic(names.physical(topic)) or ())
    ]


async def end_positions(settings: Settings, topics: Iterable[str] | None = None) -> list[Position]:
    """The last record of every partition of ``topics`` (every catalogue topic by default) now."""
    names = TopicNames(settings.kafka.topic_prefix)
    wanted = [spec.name for spec in CATALOGUE] if topics is None else list(topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await partitions_of(consumer, names, wanted))
    finally:
        await consumer.stop()
    return [Position(names.logical(tp.topic), tp.partition, end - 1) for tp, end in ends.items() if end > 0]


async def dump_tables(pool: AsyncConnectionPool, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of ``schema``, every row, ordered by the whole row (the primary key first)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,)
        )
        tables = [name for (name,) in await cur.fetchall() if name not in TABLES_EXCLUDED]
        dump = {}
        for table in tables:
            query = sql.SQL("SELECT * FROM {}.{} ORDER BY 1, 2, 3").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            dump[table] = await (await conn.execute(query)).fetchall()
    return dump


async def dump_redis(client: RedisClient, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` (prefix stripped) with its value, whatever its type."""
    dump: dict[str, Any] = {}
    async for key in client.scan_iter(match=f"{prefix}*"):
        kind = await client.type(key)
        if kind == "hash":
            value: Any = await client.hgetall(key)
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        else:
            value = await client.get(key)
        dump[key.removeprefix(prefix)] = value
    return dict(sorted(dump.items()))
