"""``esports rebuild`` against the real Kafka, PostgreSQL and Redis, with the live projector service
running all along: the rebuilt read models equal the live ones row by row and key by key, also when
the rebuild is killed (``kill -9``) mid-way and run again, and the live projector goes on from the
swapped-in positions (events published during and after the rebuild land exactly once)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from infra.kafka import EventPublisher, Position
from infra.settings import REPO_ROOT, Settings
from projections.database import MIGRATIONS, drop_schema
from projections.rebuild.command import Options, rebuild, shadow_prefix, shadow_schema
from projections.rebuild.progress import Progress
from projections.redis_projector import glob_escape
from projections.service import build_stores
from tests.integration.projections_support import (
    dump_tables,
    read_model,
    redis_space,
    running_service,
    unique_schema,
)
from tests.integration.test_rebuild_support import STREAMS, dump_keys, session_events, wait_applied

pytestmark = pytest.mark.integration


async def dumps(
    pool: AsyncConnectionPool, schema: str, client: aioredis.Redis, prefix: str
) -> tuple[Any, Any]:
    return await dump_tables(pool, schema), await dump_keys(client, prefix)


def assert_same(live: tuple[Any, Any], rebuilt: tuple[Any, Any]) -> None:
    assert set(rebuilt[0]) == set(live[0])
    for table, rows in live[0].items():
        assert rebuilt[0][table] == rows, table
    assert rebuilt[1] == live[1]


@asynccontextmanager
async def shadows_dropped(
    pool: AsyncConnectionPool, client: aioredis.Redis, schema: str, prefix: str
) -> AsyncIterator[None]:
    """Whatever happens, no shadow is left behind in the shared database and Redis."""
    try:
        yield
    finally:
        await drop_schema(pool, shadow_schema(schema))
        keys = [k async for k in client.scan_iter(match=f"{glob_escape(shadow_prefix(prefix))}*")]
        if keys:
            await client.delete(*keys)


async def schema_exists(pool: AsyncConnectionPool, schema: str) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return await cur.fetchone() is not None


def chatter(stream: str, start: int, count: int) -> list[ChatMessageAccepted]:
    return [
        ChatMessageAccepted(
            message_id=f"late-{stream}-{n}",
            stream_id=stream,
            user_id="late",
            display_name="Late",
            text=f"late {n}",
        )
        for n in range(start, start + count)
    ]


async def test_rebuild_while_live_serves_equals_the_live_read_models(
    namespace: Settings, codec: EventCodec
) -> None:
    schema = unique_schema()
    async with (
        EventPublisher(namespace.kafka, codec, producer="tests.rebuild") as publisher,
        read_model(namespace, schema) as pool,
        redis_space(namespace) as (client, prefix),
        running_service(namespace, schema, prefix),
        shadows_dropped(pool, client, schema, prefix),
    ):
        positions = await publisher.publish_many(session_events())
        await wait_applied(pool, client, schema=schema, prefix=prefix, positions=positions)
        await _command_side_neighbours(pool, client, prefix)
        live = await dumps(pool, schema, client, prefix)
        assert sum(map(len, live[0].values())) > 400 and len(live[1]) > 30

        # Rebuild with nothing moving: the swapped-in models are the live ones, row by row.
        options = Options(schema=schema, redis_prefix=prefix, batch_size=50)
        stderr = io.StringIO()
        summary = await rebuild(namespace, options, Progress(stderr))
        assert summary.events >= len(positions)
        assert_same(live, await dumps(pool, schema, client, prefix))
        assert not await schema_exists(pool, shadow_schema(schema))
        assert not [k async for k in client.scan_iter(match=f"{shadow_prefix(prefix)}*")]
        assert "rebuild done" in stderr.getvalue() and "events/s" in stderr.getvalue()

        # One Redis projector alone: its keys are replaced, the other projectors' are left alone.
        alone = await rebuild(
            namespace, replace(options, names=("redis.chat",)), Progress(stderr, quiet=True)
        )
        assert alone.projectors == ["redis.chat"] and alone.redis is not None and alone.redis.moved > 0
        assert alone.postgres is None
        assert_same(live, await dumps(pool, schema, client, prefix))

        # Chat keeps coming during a second rebuild and after it: the live projector goes on from
        # the swapped-in positions, so everything lands once; a third rebuild changes nothing.
        more: list[Position] = []
        publishing = asyncio.create_task(_publish_slowly(publisher, more))
        await rebuild(namespace, options, Progress(io.StringIO(), quiet=True))
        await publishing
        more += await publisher.publish_many(chatter(STREAMS[1], 1000, 20))
        await wait_applied(pool, client, schema=schema, prefix=prefix, positions=positions + more)
        after = await dumps(pool, schema, client, prefix)
        late = [row for row in after[0]["chat_messages"] if row[0].startswith("late-")]
        assert len(late) == len(more)
        # ... in one process this time (the others forked a worker for a share of the projectors).
        await rebuild(namespace, replace(options, processes=1), Progress(io.StringIO(), quiet=True))
        assert_same(after, await dumps(pool, schema, client, prefix))
        await _command_side_neighbours(pool, client, prefix, check=True)


async def _command_side_neighbours(
    pool: AsyncConnectionPool, client: aioredis.Redis, prefix: str, *, check: bool = False
) -> None:
    """What else lives in the live schema and prefix (the command side's tables and migrations, the
    API's keys) is left alone by the swaps: created before, checked after."""
    async with pool.connection() as conn:
        if not check:
            await conn.execute("CREATE TABLE command_side_accounts (id text PRIMARY KEY, a text, b text)")
            await conn.execute("INSERT INTO command_side_accounts VALUES ('alice', 'a', 'b')")
            await conn.execute(
                "INSERT INTO schema_migrations (component, version, name) VALUES ('producers', 1, 'x')"
            )
            await client.set(f"{prefix}api:idempotency:k1", "kept")
            return
        rows = await (await conn.execute("SELECT id FROM command_side_accounts")).fetchall()
        producers = await (
            await conn.execute("SELECT name FROM schema_migrations WHERE component = 'producers'")
        ).fetchall()
        ours = await (
            await conn.execute("SELECT count(*) FROM schema_migrations WHERE component = 'projections'")
        ).fetchone()
    assert rows == [("alice",)] and producers == [("x",)]
    assert ours is not None and ours[0] == len(list(MIGRATIONS.glob("*.sql")))
    assert await client.get(f"{prefix}api:idempotency:k1") == "kept"


async def _publish_slowly(publisher: EventPublisher, positions: list[Position]) -> None:
    for n in range(20):
        positions += await publisher.publish_many(chatter(STREAMS[0], n * 5, 5))
        await asyncio.sleep(0.02)


_STARTED: list[subprocess.Popen[bytes]] = []  # rebuild processes of the running test


@pytest.fixture(autouse=True)
def _no_rebuild_outlives_its_test() -> Iterator[None]:
    """A test that fails while its rebuild runs must not leave it running (one did, for half an hour,
    spinning on a broker that was gone)."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


def rebuild_process(settings: Settings, schema: str, prefix: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix}
    command = [sys.executable, "-m", "infra.cli", "rebuild", "--schema", schema, "--redis-prefix", prefix]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [*command, "--batch-size", "10"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    _STARTED.append(process)
    return process


async def no_rebuild_left(schema: str, timeout_s: float = 5.0) -> None:
    """No process runs ``esports rebuild --schema <schema>`` (a forked worker has its parent's
    command line) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while left := [p for p in Path("/proc").glob("[0-9]*") if _rebuilds(p, schema)]:
        assert time.monotonic() < deadline, f"rebuild processes left: {left}"
        await asyncio.sleep(0.05)


def _rebuilds(process: Path, schema: str) -> bool:
    try:
        words = (process / "cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile
        return False
    return b"rebuild" in words and schema.encode() in words


async def shadow_applied(pool: AsyncConnectionPool, shadow: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{shadow}.projection_offsets",))
        row = await cur.fetchone()
        if not (row and row[0]):
            return 0
        query = sql.SQL("SELECT coalesce(sum(next_offset), 0) FROM {}").format(
            sql.Identifier(shadow, "projection_offsets")
        )
        row = await (await conn.execute(query)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    ("stop", "exit_code"), [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)], ids=["kill-9", "ctrl-c"]
)
async def test_rebuild_killed_mid_way_resumes_and_equals_the_live_read_models(
    namespace: Settings, codec: EventCodec, tmp_path: Path, stop: signal.Signals, exit_code: int
) -> None:
    schema = unique_schema()
    shadow, log_path = shadow_schema(schema), tmp_path / "rebuild.log"
    async with (
        EventPublisher(namespace.kafka, codec, producer="tests.rebuild") as publisher,
        read_model(namespace, schema) as pool,
        redis_space(namespace) as (client, prefix),
        running_service(namespace, schema, prefix),
        shadows_dropped(pool, client, schema, prefix),
    ):
        positions = await publisher.publish_many(session_events(catalog=1500, chat_per_stream=150))
        await wait_applied(pool, client, schema=schema, prefix=prefix, positions=positions)
        live = await dumps(pool, schema, client, prefix)

        first = rebuild_process(namespace, schema, prefix, log_path)
        deadline = time.monotonic() + 60
        while await shadow_applied(pool, shadow) < 200:
            assert first.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.005)
        # Frozen first, so that a fast rebuild cannot finish between the check above and the signal:
        # the signal is handled as soon as it runs again, mid-way.
        first.send_signal(signal.SIGSTOP)
        first.send_signal(stop)
        first.send_signal(signal.SIGCONT)
        assert await asyncio.to_thread(first.wait, 30) == exit_code, log_path.read_text()[-3000:]
        await no_rebuild_left(schema)  # its worker process went with it, even after kill -9
        killed_at = await shadow_applied(pool, shadow)
        assert 0 < killed_at < len(positions), killed_at
        assert_same(live, await dumps(pool, schema, client, prefix))  # the live models are untouched

        second = rebuild_process(namespace, schema, prefix, log_path)
        assert await asyncio.to_thread(second.wait, 120) == 0, log_path.read_text()[-3000:]
        output = log_path.read_text()
        assert "rebuild catching up:" in output  # plain progress lines: stderr is not a terminal
        resumed = re.search(r"^rebuilt .*: ([\d,]+) events applied", output, flags=re.MULTILINE)
        assert resumed, output
        if stop == signal.SIGINT:
            assert "interrupted; run it again to resume" in output
        # Resumed, not started over: what the first run stored in the shadow is not applied again.
        topics = Counter(p.topic for p in positions)
        full = sum(
            topics[t]
            for store in build_stores(pool, client, schema=schema, redis_prefix=prefix)
            for t in store.topics
        )
        assert int(resumed.group(1).replace(",", "")) <= full - killed_at
        print(f"\nstopped with {killed_at} offsets applied in the shadow; the second run: {resumed.group(0)}")
        assert_same(live, await dumps(pool, schema, client, prefix))
        assert not await schema_exists(pool, shadow)
