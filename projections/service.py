"""The projector service: the composition root running every projector until SIGINT/SIGTERM.

Builds settings-driven clients (PostgreSQL pool bound to the read model's schema, Redis, the event
codec, a publisher for dead letters), applies the read model's migrations, then runs the projectors
(``pg.catalog``, ``pg.chat`` and ``pg.viewers`` into PostgreSQL, ``redis.live`` and ``redis.chat``
into Redis) under one ``asyncio.TaskGroup`` next to the ``/health`` and ``/metrics`` endpoints.
``esports projector`` calls :func:`run`; tests and operators can also start it as
``python -m projections [--schema S] [--redis-prefix P]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence

from psycopg_pool import AsyncConnectionPool

from events.codec import EventCodec
from events.topics import Topic, spec
from infra import logs
from infra.gc_tuning import tune_for_throughput
from infra.kafka import DeadLetters, EventPublisher, KafkaError, TopicAdmin, TopicNames
from infra.metrics import ConsumerLag
from infra.postgres import DatabaseError
from infra.redis import CacheError, RedisClient, make_client
from infra.settings import Settings
from projections import catalog, chat, notifications, points, polls, viewer_counts, viewing_sessions
from projections.chat_recent import RecentChatProjector
from projections.database import make_pool, migrate
from projections.ingest_health import IngestHealthProjector
from projections.live import LiveProjector
from projections.ops import Check, Monitored, OpsServer, ProjectorMetrics
from projections.projector import BatchStore, ProjectionFailed, consumer_for, project
from schemas import SCHEMAS_DIR

__all__ = ["build_stores", "main", "run", "serve"]

log = logging.getLogger(__name__)

FATAL = (ProjectionFailed, DatabaseError, CacheError, KafkaError, OSError)


class _Stopped(Exception):
    """Raised inside the task group to cancel every task when a stop signal arrives."""


def run(settings: Settings, *, schema: str = "public", redis_prefix: str = "") -> int:
    """Run the projectors until SIGINT/SIGTERM (returns 0) or until one cannot go on (returns 1)."""
    tune_for_throughput()
    return asyncio.run(_run_with_signals(settings, schema=schema, redis_prefix=redis_prefix))


async def _run_with_signals(settings: Settings, *, schema: str, redis_prefix: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await serve(settings, stop, schema=schema, redis_prefix=redis_prefix)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def serve(
    settings: Settings, stop: asyncio.Event, *, schema: str = "public", redis_prefix: str = ""
) -> int:
    """Run until ``stop`` is set (returns 0) or a projector stops on an error (logged; returns 1)."""
    codec = EventCodec.load(SCHEMAS_DIR)
    pool = make_pool(settings.postgres, name="projections", schema=schema)
    client = make_client(settings.redis, name="projections")
    try:
        async with (
            pool,
            EventPublisher(settings.kafka, codec, producer="projections") as publisher,
            TopicAdmin(settings.kafka) as admin,
        ):
            await migrate(pool, schema)
            dead_letter_topic = TopicNames(settings.kafka.topic_prefix).physical(Topic.DEADLETTER)
            stores = build_stores(pool, client, schema=schema, redis_prefix=redis_prefix)
            metrics = ProjectorMetrics()
            monitored = [
                metrics.monitor(store, DeadLetters(publisher, dead_letter_topic)) for store in stores
            ]
            ops = OpsServer(
                _checks(pool, client, admin),
                metrics.registry,
                host=settings.projections.web_host,
                port=settings.projections.web_port,
            )
            await ops.start()
            try:
                await _project_until_stopped(settings, codec, monitored, metrics.lag, stop)
            finally:
                await ops.close()
    except* FATAL as group:
        for error in group.exceptions:
            log.error("projections stopped: %s", error)
        exit_code = 1
    else:
        log.info("projections stopped on request")
        exit_code = 0
    finally:
        await client.aclose()
    return exit_code


def build_stores(
    pool: AsyncConnectionPool, client: RedisClient, *, schema: str, redis_prefix: str
) -> list[BatchStore]:
    """Every projector of the read model, writing into ``schema`` and under ``redis_prefix``.

    The one registry of projectors: the service runs these, and ``esports rebuild`` builds the same
    list on a shadow schema and prefix, so a projector added here is rebuilt too.
    """
    return [
        catalog.catalog_projector(pool, schema=schema),
        LiveProjector(client, prefix=redis_prefix),
        chat.chat_projector(pool, schema=schema),
        RecentChatProjector(client, prefix=redis_prefix),
        viewer_counts.viewer_counts_projector(pool, schema=schema),
        notifications.notifications_projector(pool, schema=schema),
        polls.polls_projector(pool, schema=schema),
        points.points_projector(pool, schema=schema),
        viewing_sessions.viewing_sessions_projector(pool, schema=schema),
        viewer_counts.MatchViewersProjector(client, prefix=redis_prefix),
        IngestHealthProjector(client, prefix=redis_prefix),
    ]


async def _project_until_stopped(
    settings: Settings,
    codec: EventCodec,
    monitored: Sequence[Monitored],
    lag: ConsumerLag,
    stop: asyncio.Event,
) -> None:
    try:
        async with asyncio.TaskGroup() as tasks:
            for item in monitored:
                tasks.create_task(_consume(settings, codec, item, lag), name=f"projector {item.store.name}")
            tasks.create_task(_until(stop), name="stop")
    except* _Stopped:
        pass


async def _consume(settings: Settings, codec: EventCodec, item: Monitored, lag: ConsumerLag) -> None:
    consumer = consumer_for(
        item.store, settings.kafka, codec, item.dead_letters, batch_size=settings.projections.batch_size
    )
    async with consumer:
        log.info("projector=%s consuming %s", item.store.name, ", ".join(item.store.topics))
        lag.register(consumer)
        try:
            await project(consumer, item.store)
        finally:
            lag.unregister(consumer)


async def _until(stop: asyncio.Event) -> None:
    await stop.wait()
    raise _Stopped


def _checks(pool: AsyncConnectionPool, client: RedisClient, admin: TopicAdmin) -> dict[str, Check]:
    async def postgresql() -> None:
        async with pool.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")

    async def redis() -> None:
        await client.ping()

    async def kafka() -> None:
        await admin.states([spec(topic) for topic in catalog.TOPICS])

    return {"kafka": kafka, "postgresql": postgresql, "redis": redis}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m projections``: settings from ESPORTS_* variables, schema and prefix as options."""
    parser = argparse.ArgumentParser(prog="python -m projections", description=__doc__)
    parser.add_argument("--schema", default="public", help="PostgreSQL schema of the read model (public)")
    parser.add_argument("--redis-prefix", default="", help="prefix of every Redis key written (none)")
    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return run(settings, schema=args.schema, redis_prefix=args.redis_prefix)
