"""``esports rebuild``: rebuild read models from the topics beside the live ones, then swap them in.

1. The projectors of :func:`projections.service.build_stores` (the one registry: whatever the
   service runs is rebuilt) are built on a *shadow*: PostgreSQL schema ``rebuild_<live schema>``,
   created from the same migrations, and Redis key prefix ``rebuild:<live prefix>``.
2. Each catches up from the shadow's stored positions (the beginning, the first time) to the end
   offsets captured at start, applying batches with the very exactly-once machinery of the live
   service (offsets in the shadow, in the same transaction / MULTI/EXEC as the rows / keys). One
   reader reads each partition once for the projectors that share it (:mod:`~.reader`); on two or
   more cores a forked worker process applies a share of the projectors (:mod:`~.worker`).
   Interrupted (Ctrl-C, ``kill -9``), it continues from those positions when run again.
3. Swap (:mod:`projections.rebuild.swap`): PostgreSQL first (one transaction), then Redis (one
   script per read model). The live projector keeps serving throughout and goes on from the
   swapped-in positions.

PostgreSQL projectors share one schema and are rebuilt and swapped together; Redis projectors
one by one (each read model's keys share a Redis Cluster hash slot, different read models do not).
Each swap is atomic; they are not atomic together.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from events.codec import EventCodec
from infra.gc_tuning import THRESHOLDS
from infra.kafka import KafkaError
from infra.postgres import DatabaseError
from infra.redis import DRIVER_ERRORS, CacheError, RedisClient, make_client
from infra.redis import translate as translate_redis
from infra.settings import Settings
from projections.database import checked_schema, drop_schema, make_pool, migrate
from projections.projector import (
    BatchStore,
    Partition,
    PostgresProjector,
    ProjectionFailed,
)
from projections.rebuild.catch_up import CatchUp, Interrupted, RebuildFailed
from projections.rebuild.progress import Progress
from projections.rebuild.reader import FanOutReader, partition_counts
from projections.rebuild.swap import (
    LiveOffsets,
    PostgresSwap,
    RedisSwap,
    ShadowBehind,
    live_redis_offsets,
    redis_swap,
    schema_swap,
)
from projections.rebuild.worker import Done, Shadow, catch_up_in_worker, split
from projections.redis_keys import checked_prefix
from projections.redis_projector import RedisProjector, glob_escape, owned_key_patterns
from projections.service import build_stores
from schemas import SCHEMAS_DIR

__all__ = [
    "POSTGRES",
    "REDIS",
    "Options",
    "RebuildFailed",
    "SelectionError",
    "Summary",
    "rebuild",
    "run",
    "select",
    "shadow_prefix",
    "shadow_schema",
]

log = logging.getLogger(__name__)

POSTGRES, REDIS = "postgres", "redis"
SWAP_ATTEMPTS = 20  # Redis: catch up with the live projector and try the swap again this often
# Events per batch: the live projector's batches are sized for latency, a rebuild's for throughput
# (fewer transactions and offset writes, longer runs for the multi-row statements; bench/rebuild.py
# ran about 15% faster with 2,000 than with the live 500).
BATCH_SIZE = 2000
# Processes applying the catch-up: a forked worker takes a share of the projectors (worker.py).
PROCESSES = 2 if (os.cpu_count() or 1) > 1 else 1
FATAL = (DatabaseError, CacheError, KafkaError, ProjectionFailed, ShadowBehind)


class SelectionError(ValueError):
    """A projection name that is not registered (a usage error)."""


@dataclass(frozen=True, slots=True)
class Options:
    """What to rebuild and where the live read model is."""

    names: tuple[str, ...] = ()
    schema: str = "public"
    redis_prefix: str = ""
    fresh: bool = False
    batch_size: int = BATCH_SIZE
    processes: int = PROCESSES


@dataclass(slots=True)
class Summary:
    """What a rebuild did."""

    projectors: list[str]
    events: int = 0
    seconds: float = 0.0
    postgres: PostgresSwap | None = None
    redis: RedisSwap | None = None
    undecodable: int = 0
    swaps_refused: int = 0
    per_store: dict[str, tuple[int, float]] = field(default_factory=dict)  # events, seconds
    worker_cpu_s: float = 0.0  # CPU time of the worker process, if one applied a share


def shadow_schema(live: str) -> str:
    """The shadow schema of the live read-model schema ``live``."""
    return checked_schema(f"rebuild_{checked_schema(live)}"[:63])


def shadow_prefix(live: str) -> str:
    """The shadow key prefix of the live Redis prefix ``live``."""
    return f"rebuild:{live}"


def select(stores: Sequence[BatchStore], names: Sequence[str]) -> list[BatchStore]:
    """The stores ``names`` asks for (all if none): ``postgres``, ``redis`` or projector names; a
    PostgreSQL projector's name selects every PostgreSQL projector (they share the schema)."""
    if not names:
        return list(stores)
    postgres = {s.name for s in stores if isinstance(s, PostgresProjector)}
    chosen: set[str] = set()
    for name in names:
        if name == POSTGRES or name in postgres:
            chosen |= postgres
        elif name == REDIS:
            chosen |= {s.name for s in stores if isinstance(s, RedisProjector)}
        elif name in {s.name for s in stores}:
            chosen.add(name)
        else:
            known = ", ".join([POSTGRES, REDIS, *sorted(s.name for s in stores)])
            raise SelectionError(f"unknown projection {name!r}; known: {known}")
    return [s for s in stores if s.name in chosen]


async def rebuild(settings: Settings, options: Options, progress: Progress) -> Summary:
    """Rebuild the selected read models and swap them in (see the module docstring)."""
    codec = EventCodec.load(SCHEMAS_DIR)
    shadow, prefix = shadow_schema(options.schema), shadow_prefix(options.redis_prefix)
    live_pool = make_pool(settings.postgres, name="rebuild", schema=options.schema, max_size=2)
    shadow_pool = make_pool(settings.postgres, name="rebuild.shadow", schema=shadow, max_size=8)
    client = make_client(settings.redis, name="rebuild")
    stores = select(build_stores(shadow_pool, client, schema=shadow, redis_prefix=prefix), options.names)
    summary = Summary(projectors=[s.name for s in stores])
    started = time.monotonic()
    # Ctrl-C and SIGTERM stop the catch-up between two batches (each batch is stored with its offsets,
    # so the next run resumes exactly there) and never start a swap. Not asyncio.run's own SIGINT
    # cancellation: a cancellation landing inside a database call could be taken for a lost
    # connection and retried, and the rebuild then ran to the end.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    collecting = gc.get_threshold()
    # A rebuild allocates a few objects per event, nearly all short-lived: the services' setting (with
    # the default, collecting took about 14% of its CPU). Restored below; a forked worker inherits it.
    gc.set_threshold(*THRESHOLDS)
    try:
        reader = FanOutReader(settings.kafka, codec, batch_size=options.batch_size)
        async with live_pool, shadow_pool, _exclusive(live_pool, options.schema), reader:
            postgres = [s for s in stores if isinstance(s, PostgresProjector)]
            keyed = [s for s in stores if isinstance(s, RedisProjector)]
            for store in postgres:
                store.sole_writer()  # the shadow has no twin and no reader until the swap
            async with asyncio.TaskGroup() as tasks:  # independent: the shadow, and the topics' ends
                tasks.create_task(
                    _prepare_shadow(shadow_pool, shadow, client, postgres, keyed, options.fresh)
                )
                ending = tasks.create_task(_end_offsets(settings, reader, stores))
            ends = {
                s.name: {p: end for p, end in ending.result().items() if p[0] in s.topics} for s in stores
            }
            catch_up = CatchUp(reader, progress, stop)
            work = await catch_up.remaining(stores, ends)
            progress.start(sum(work.values()))
            shares = split(stores, work) if options.processes > 1 else ([s.name for s in stores], [])
            if shares[1]:
                where = Shadow(settings, codec, shadow, prefix, options.batch_size)
                done = await _catch_up_in_two(catch_up, where, stores, shares, ends, progress)
                summary.undecodable, summary.worker_cpu_s = done.undecodable, done.cpu_s
            else:
                await catch_up.run(stores, ends)
            if stop.is_set():
                raise Interrupted("before the swap")
            if postgres:
                progress.phase = "swapping PostgreSQL"
                summary.postgres = await _swap_postgres(live_pool, options.schema, shadow, postgres, catch_up)
            if keyed:
                progress.phase = "swapping Redis"
                summary.redis = await _swap_redis(
                    client, options.redis_prefix, prefix, keyed, catch_up, summary
                )
            summary.undecodable += reader.undecodable
            progress.phase = "done"
        summary.events = catch_up.events
        summary.per_store = {
            name: (count, catch_up.seconds.get(name, 0.0)) for name, count in catch_up.per_store.items()
        }
    except* Interrupted:
        raise Interrupted("stopped between two batches") from None
    except* (*FATAL, RebuildFailed) as group:  # from the catch-up's TaskGroup: report the first
        raise group.exceptions[0] from None
    finally:
        gc.set_threshold(*collecting)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await progress.close()
        await client.aclose()
    summary.seconds = time.monotonic() - started
    return summary


@asynccontextmanager
async def _exclusive(pool: AsyncConnectionPool, schema: str) -> AsyncIterator[None]:
    """One rebuild per live schema at a time (a session advisory lock held throughout)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"esports rebuild {schema}",))
        row = await cur.fetchone()
        await conn.commit()
        if not (row and row[0]):
            raise RebuildFailed(f"another `esports rebuild` is running on schema {schema!r}")
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"esports rebuild {schema}",))
            await conn.commit()


async def _catch_up_in_two(
    catch_up: CatchUp,
    shadow: Shadow,
    stores: Sequence[BatchStore],
    shares: tuple[Sequence[str], Sequence[str]],
    ends: Mapping[str, Mapping[Partition, int]],
    progress: Progress,
) -> Done:
    """Catch up the first share of the projectors in this process and the second in a worker
    process, at once (:mod:`projections.rebuild.worker`); what the worker did."""
    here, there = shares
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(catch_up.run([s for s in stores if s.name in here], ends))
        elsewhere = tasks.create_task(catch_up_in_worker(shadow, there, ends, progress, catch_up.stopping))
    done = elsewhere.result()
    catch_up.add(done.events, done.per_store, done.seconds)
    return done


async def _prepare_shadow(
    pool: AsyncConnectionPool,
    shadow: str,
    client: RedisClient,
    postgres: Sequence[PostgresProjector],
    keyed: Sequence[RedisProjector],
    fresh: bool,
) -> None:
    """Discard the shadow if ``fresh``, then create the PostgreSQL shadow schema or bring it up to
    date (PostgreSQL and Redis at once)."""
    async with asyncio.TaskGroup() as tasks:
        if fresh:
            tasks.create_task(_discard_keys(client, keyed))
        if fresh or postgres:
            tasks.create_task(_prepare_schema(pool, shadow, fresh=fresh, tables=bool(postgres)))


async def _prepare_schema(pool: AsyncConnectionPool, shadow: str, *, fresh: bool, tables: bool) -> None:
    if fresh:
        await drop_schema(pool, shadow)
    if tables:
        await migrate(pool, shadow)


async def _end_offsets(
    settings: Settings, reader: FanOutReader, stores: Sequence[BatchStore]
) -> dict[Partition, int]:
    """The end offsets of every partition of the stores' topics (one metadata and one offsets request)."""
    topics = [t for s in stores for t in s.topics]
    return await reader.end_offsets(topics, await partition_counts(settings.kafka, topics))


async def _discard_keys(client: RedisClient, keyed: Sequence[RedisProjector]) -> None:
    try:
        for store in keyed:
            for pattern in owned_key_patterns(store):
                # a cluster client scans every primary and deletes slot by slot
                keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
                if keys:
                    await client.delete(*keys)
    except DRIVER_ERRORS as e:
        raise translate_redis(e, "discarding the Redis shadow") from e


async def _swap_postgres(
    pool: AsyncConnectionPool, live: str, shadow: str, stores: Sequence[BatchStore], catch_up: CatchUp
) -> PostgresSwap:
    async def to_live_positions(positions: LiveOffsets) -> None:
        await catch_up.run(stores, positions)

    try:
        return await schema_swap(
            pool, live=live, shadow=shadow, projectors=[s.name for s in stores], catch_up=to_live_positions
        )
    except ShadowBehind as e:  # cannot happen while the live offsets are locked; say so if it does
        raise RebuildFailed(
            f"the PostgreSQL shadow is behind the live read model after catching up: {e}"
        ) from e


async def _swap_redis(
    client: RedisClient,
    live: str,
    shadow: str,
    stores: Sequence[RedisProjector],
    catch_up: CatchUp,
    summary: Summary,
) -> RedisSwap:
    """Each read model in its own script: its keys share one hash slot, the read models' do not."""
    deleted = moved = 0
    for store in stores:
        swap = await _swap_read_model(client, live, shadow, store, catch_up, summary)
        deleted, moved = deleted + swap.deleted, moved + swap.moved
    return RedisSwap(deleted=deleted, moved=moved)


async def _swap_read_model(
    client: RedisClient, live: str, shadow: str, store: RedisProjector, catch_up: CatchUp, summary: Summary
) -> RedisSwap:
    escaped = glob_escape(shadow)
    patterns = sorted(p.removeprefix(escaped) for p in owned_key_patterns(store))
    offsets = store.offsets_key.removeprefix(shadow)
    for _ in range(SWAP_ATTEMPTS):
        positions = await live_redis_offsets(client, {store.name: live + offsets})
        await catch_up.run([store], positions)
        try:
            return await redis_swap(client, live=live, shadow=shadow, offsets=offsets, patterns=patterns)
        except ShadowBehind as e:
            summary.swaps_refused += 1
            log.info("Redis swap of %s refused, the live projector moved on (%s); catching up", store.name, e)
    raise RebuildFailed(f"the live {store.name} kept moving ahead of the shadow in {SWAP_ATTEMPTS} tries")


# --- command line -------------------------------------------------------------------------------


def _registered(settings: Settings) -> list[BatchStore]:
    """The registry's projectors on pools and clients that are never opened (names and topics)."""
    pool = make_pool(settings.postgres, name="rebuild.list")
    return build_stores(
        pool, make_client(settings.redis, name="rebuild.list"), schema="public", redis_prefix=""
    )


def _list(settings: Settings) -> int:
    for store in _registered(settings):
        kind = POSTGRES if isinstance(store, PostgresProjector) else REDIS
        print(f"{store.name:<20} {kind:<9} {', '.join(store.topics)}")
    return 0


def _err(message: str) -> None:
    print(f"esports rebuild: {message}", file=sys.stderr)


def _report(summary: Summary, options: Options) -> None:
    rate = summary.events / summary.seconds if summary.seconds > 0 else 0.0
    print(
        f"rebuilt {', '.join(summary.projectors)}: {summary.events:,} events applied"
        f" in {summary.seconds:.1f} s ({rate:,.0f} events/s)"
    )
    if summary.postgres:
        print(
            f"PostgreSQL: {summary.postgres.relations} objects swapped into schema {options.schema}"
            f" ({summary.postgres.replaced} replaced)"
        )
    if summary.redis:
        print(
            f"Redis: {summary.redis.moved} keys swapped in under prefix {options.redis_prefix!r},"
            f" {summary.redis.deleted} old keys deleted"
        )
    for name, (events, seconds) in sorted(summary.per_store.items()):
        print(f"  {name:<22} {events:>9,} events in {seconds:6.1f} s")
    if summary.undecodable:
        print(f"skipped {summary.undecodable} undecodable records (they are on the dead-letter topic)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``esports rebuild`` command: 0 done, 1 failed (resumable), 2 usage, 130 interrupted."""
    if args.list:
        return _list(settings)
    try:
        options = Options(
            names=tuple(args.projections),
            schema=checked_schema(args.schema),
            redis_prefix=checked_prefix(args.redis_prefix),
            fresh=args.fresh,
            batch_size=BATCH_SIZE if args.batch_size is None else args.batch_size,
            processes=PROCESSES if args.processes is None else args.processes,
        )
        if options.batch_size < 1:
            raise SelectionError("--batch-size must be at least 1")
        if options.processes not in (1, 2):
            raise SelectionError("--processes must be 1 or 2")
        selected = select(_registered(settings), options.names)
    except (SelectionError, ValueError) as e:
        _err(str(e))
        return 2
    postgres = [s.name for s in selected if isinstance(s, PostgresProjector)]
    named = set(options.names) & set(postgres)
    if named and named != set(postgres):
        _err(f"PostgreSQL projectors share one schema and are rebuilt together: {', '.join(postgres)}")
    try:
        for store in selected:
            if isinstance(store, RedisProjector):
                owned_key_patterns(store)  # a projector whose keys are unknown cannot be swapped
    except ValueError as e:
        _err(f"cannot rebuild: {e}")
        return 1
    progress = Progress(sys.stderr, quiet=args.quiet)
    try:
        summary = asyncio.run(rebuild(settings, options, progress))
    except (KeyboardInterrupt, Interrupted):
        _err("interrupted; run it again to resume from the shadow's stored positions")
        return 130
    except (*FATAL, RebuildFailed) as e:
        _err(f"{e}\nthe shadow is kept: run it again to resume (or --fresh to start over)")
        return 1
    _report(summary, options)
    return 0
