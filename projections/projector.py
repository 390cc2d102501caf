"""The exactly-once projector loop, and the PostgreSQL projector every read model table uses.

One batch = one transaction: the projector locks its stored offsets of the batch's partitions,
applies every event it has not applied yet (``apply(cur, event)``, SQL only), moves the offsets past
the batch and commits. Resuming reads the offsets back (``start_positions``), so the log is applied
exactly once whatever crashed where. Row locks on the offsets make a second instance that still
holds a revoked partition (a zombie after a rebalance) skip what the first one already applied.

Batches run SERIALIZABLE. Several projector processes share a projector's partitions, and some
handlers join rows that events of *another* topic write (a poll's question and its tally, a
moderation request and its outcome): under READ COMMITTED two instances committing the two halves
at once would each miss the other's row, and the link would be lost for good. PostgreSQL aborts one
of them instead (``DatabaseConflict``), and the batch is simply applied again.

The consumer group's own offsets are committed after the transaction only so that ops tools
(``kafka-consumer-groups``, lag exporters) show the lag; correctness never depends on them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import psycopg
from psycopg import AsyncCursor, sql
from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.codec import EventCodec
from infra.kafka import ConsumedEvent, DeadLetters, EventConsumer, KafkaError
from infra.postgres import DatabaseConflict, DatabaseError, translate
from infra.redis import CacheError
from infra.settings import KafkaSettings
from projections.database import checked_schema

__all__ = [
    "Apply",
    "ApplyBatch",
    "BatchStore",
    "Cursor",
    "Partition",
    "PostgresProjector",
    "ProjectionFailed",
    "ProjectorStats",
    "Settle",
    "consumer_for",
    "group_id",
    "handles",
    "project",
    "store_with_retries",
]

log = logging.getLogger(__name__)

SERIALIZABLE = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"
READ_COMMITTED = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"
CONFLICT_RETRIES = 20  # a batch that lost a serialization conflict is applied again this many times

Cursor = AsyncCursor[Any]
Apply = Callable[[Cursor, Event], Awaitable[None]]
ApplyBatch = Callable[[Cursor, Sequence[Event]], Awaitable[None]]
Settle = Callable[[Cursor, Sequence[Event]], Awaitable[None]]
Partition = tuple[str, int]  # (catalogue topic, partition)
E = TypeVar("E", bound=Event)

LOCK_OFFSETS = """
INSERT INTO projection_offsets AS o (projector, topic, partition, next_offset)
SELECT %s, t, p, 0 FROM unnest(%s::text[], %s::int[]) AS x(t, p)
ON CONFLICT (projector, topic, partition) DO UPDATE SET next_offset = o.next_offset
RETURNING topic, partition, next_offset
"""
SAVE_OFFSETS = """
UPDATE projection_offsets AS o SET next_offset = x.n
FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS x(t, p, n)
WHERE o.projector = %s AND o.topic = x.t AND o.partition = x.p AND o.next_offset < x.n
"""
OFFSET_READ_ATTEMPTS = 5  # a stored-offsets read cancelled by a serialization conflict is retried
READ_OFFSETS = "SELECT topic, partition, next_offset FROM projection_offsets WHERE projector = %s"


def handles(event_type: type[E], apply: Callable[[Cursor, E], Awaitable[None]]) -> tuple[type[Event], Apply]:
    """A dispatch-table entry: ``dict([handles(StreamCreated, stream_created), ...])`` (typed)."""
    return event_type, cast(Apply, apply)


class ProjectionFailed(Exception):
    """An event could not be applied for a reason retrying will not fix; the projector stopped.

    Stopping (rather than skipping the event) keeps the read model an exact image of the log: after
    the fix is deployed, the projector resumes at this very event.
    """

    retriable = False

    def __init__(self, projector: str, consumed: ConsumedEvent, error: BaseException) -> None:
        super().__init__(
            f"{projector}: cannot apply {consumed.event.event_type()} event_id={consumed.event.event_id} "
            f"at {consumed.position}: {error!r}"
        )
        self.projector = projector
        self.consumed = consumed


@dataclass
class ProjectorStats:
    """What /metrics shows for one projector."""

    applied: int = 0
    duplicates: int = 0  # events at offsets already applied (a batch delivered again)
    batches: int = 0
    next_offsets: dict[Partition, int] = field(default_factory=dict)

    def record(self, applied: int, duplicates: int, next_offsets: Mapping[Partition, int]) -> None:
        self.applied += applied
        self.duplicates += duplicates
        self.batches += 1
        for partition, offset in next_offsets.items():
            self.next_offsets[partition] = max(offset, self.next_offsets.get(partition, 0))


class BatchStore(Protocol):
    """A read model a projector writes: applies a batch atomically with its offsets."""

    name: str
    topics: tuple[str, ...]
    stats: ProjectorStats

    async def start_positions(self, partitions: list[Partition]) -> dict[Partition, int]: ...

    async def store(self, batch: Sequence[ConsumedEvent]) -> None: ...


def group_id(kafka: KafkaSettings, name: str) -> str:
    """``projector.<name>``, behind the deployment's topic prefix (namespaces share a cluster)."""
    return f"{kafka.topic_prefix}projector.{name}"


def consumer_for(
    store: BatchStore, kafka: KafkaSettings, codec: EventCodec, dead_letters: DeadLetters, *, batch_size: int
) -> EventConsumer:
    """The consumer feeding ``store``: its own group, resuming from the store's own offsets."""
    return EventConsumer(
        kafka,
        codec,
        topics=store.topics,
        group_id=group_id(kafka, store.name),
        dead_letters=dead_letters,
        from_beginning=True,
        max_records=batch_size,
        start_positions=store.start_positions,
    )


async def project(consumer: EventConsumer, store: BatchStore) -> None:
    """Feed ``store`` batch after batch until cancelled; raises when an event cannot be applied."""
    async for batch in consumer.batches():
        if batch:
            await store_with_retries(store, batch)
            log.debug("projector=%s stored %s events from %s", store.name, len(batch), batch[0].position)
            await _commit_group(consumer, store.name)


async def store_with_retries(
    store: BatchStore, batch: Sequence[ConsumedEvent], *, first_delay_s: float = 0.1, max_delay_s: float = 5.0
) -> None:
    """Store ``batch``, retrying with backoff while the database is unavailable (it blocks only
    this projector); a non-retriable error is logged with the event's coordinates and raised."""
    delay = first_delay_s
    while True:
        try:
            return await store.store(batch)
        except ProjectionFailed as e:
            _log_failure(e)
            raise
        except (DatabaseError, CacheError) as e:
            if not e.retriable:
                log.error("projector=%s stopped on batch from %s: %s", store.name, batch[0].position, e)
                raise
            log.warning(
                "projector=%s retrying batch from %s in %.1fs: %s", store.name, batch[0].position, delay, e
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)


def _log_failure(error: ProjectionFailed) -> None:
    consumed = error.consumed
    log.error(
        "projector=%s stopped: topic=%s partition=%s offset=%s event_id=%s event_type=%s: %s",
        error.projector,
        consumed.position.topic,
        consumed.position.partition,
        consumed.position.offset,
        consumed.event.event_id,
        consumed.event.event_type(),
        error.__cause__,
    )


async def _commit_group(consumer: EventConsumer, name: str) -> None:
    try:
        await consumer.commit()
    except KafkaError as e:  # only lag reporting suffers; the offsets that count are stored
        log.warning("projector=%s could not commit group offsets (lag display only): %s", name, e)


class PostgresProjector:
    """Applies events to PostgreSQL tables exactly once, with a dispatch table of ``apply`` functions.

    ``handlers`` maps an event type to ``async apply(cur, event)`` (SQL only, idempotent by key);
    event types without a handler are read past. ``schema`` holds both the tables and
    ``projection_offsets``. ``batch(cur, events)``, if given, applies a whole batch at once (a few
    multi-row statements instead of some per event), with the same result as the handlers applied
    to each event in turn; the handlers then only name the event of a failing batch.
    ``settle(cur, events)``, if given, runs
    after a batch's events in the same transaction: a column derived from many rows (every message
    of a banned user) is then written once per batch rather than once per event (a rebuild's
    batches repeat such events).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        name: str,
        topics: Sequence[str],
        handlers: Mapping[type[Event], Apply],
        batch: ApplyBatch | None = None,
        schema: str = "public",
        settle: Settle | None = None,
    ) -> None:
        self._pool = pool
        self._handlers = handlers
        self._batch = batch
        self._settle = settle
        self._schema = checked_schema(schema)
        self.name = name
        self.topics = tuple(topics)
        self.stats = ProjectorStats()
        self._isolation = SERIALIZABLE  # see the module docstring; :meth:`sole_writer` relaxes it

    def sole_writer(self) -> None:
        """Run the batches READ COMMITTED: only for a schema no other process writes or reads.

        SERIALIZABLE is there for twins (two processes applying the two topics of a join at once);
        ``esports rebuild`` writes its shadow schema alone (one rebuild per schema, one task per
        projector, batches in turn) and nobody reads it before the swap, so nothing can interleave
        with a batch, and the predicate locks and conflict checks are pure cost (about 20% of a
        rebuild). The swap itself takes its own locks (:mod:`projections.rebuild.swap`).
        """
        self._isolation = READ_COMMITTED

    async def start_positions(self, partitions: list[Partition]) -> dict[Partition, int]:
        """Stored next offsets; 0 (the beginning) for partitions never applied, so the group's own
        committed offsets never decide (they may be ahead of a freshly rebuilt schema)."""
        for attempt in range(1, OFFSET_READ_ATTEMPTS + 1):
            try:
                async with self._transaction() as cur:
                    await cur.execute(READ_OFFSETS, (self.name,))
                    stored = {(t, partition): offset for t, partition, offset in await cur.fetchall()}
                return {p: stored.get(p, 0) for p in partitions}
            except DatabaseConflict:
                # Serializable: even this read may be the one cancelled beside a concurrent batch
                # (40001, "conflict out to pivot"); it changes nothing, so it is simply read again.
                if attempt == OFFSET_READ_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    async def store(self, batch: Sequence[ConsumedEvent]) -> None:
        """Apply ``batch`` and move the offsets past it, in one transaction.

        The statements are pipelined (one round trip per batch, not per statement: ~2.5x faster).
        A pipeline reports an SQL error at its next sync, maybe under a later event, so the batch
        is then applied again statement by statement to name the event that fails.
        """
        for attempt in range(CONFLICT_RETRIES):
            try:
                return await self._store_once(batch)
            except DatabaseConflict as e:  # a twin's concurrent batch won (SERIALIZABLE): again
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                log.info("projector=%s batch from %s again: %s", self.name, batch[0].position, e)
                await asyncio.sleep(0.01 * (attempt + 1))

    async def _store_once(self, batch: Sequence[ConsumedEvent]) -> None:
        try:
            await self._store(batch, pipelined=True)
        except _Unattributed as e:
            log.warning(
                "projector=%s: %s; applying the batch again one statement at a time", self.name, e.__cause__
            )
            await self._store(batch, pipelined=False)

    async def _store(self, batch: Sequence[ConsumedEvent], *, pipelined: bool) -> None:
        async with self._transaction() as cur:
            applied_up_to = await self._lock_offsets(cur, batch)
            fresh = [c for c in batch if c.position.offset >= applied_up_to[partition_of(c)]]
            next_offsets = _next_offsets(batch)
            if pipelined:
                await self._apply_pipelined(cur, fresh, next_offsets)
            else:
                for consumed in fresh:
                    await self._apply(cur, consumed)
                await self._finish(cur, fresh, next_offsets)
        self.stats.record(len(fresh), len(batch) - len(fresh), next_offsets)

    async def _finish(
        self, cur: Cursor, fresh: Sequence[ConsumedEvent], next_offsets: Mapping[Partition, int]
    ) -> None:
        """Settle what the batch changed, and move the offsets past it."""
        if self._settle is not None:
            await self._settle(cur, [c.event for c in fresh])
        await _save_offsets(cur, self.name, next_offsets)

    async def _apply_pipelined(
        self, cur: Cursor, batch: Sequence[ConsumedEvent], next_offsets: Mapping[Partition, int]
    ) -> None:
        """The batch, its settling and its offsets in one round trip."""
        try:
            async with cur.connection.pipeline():
                if self._batch is not None:
                    await self._apply_batch(cur, batch)
                else:
                    for consumed in batch:
                        await self._apply(cur, consumed, pipelined=True)
                await self._finish(cur, batch, next_offsets)
        except psycopg.errors.PipelineAborted as e:
            raise _Unattributed from e
        except psycopg.OperationalError:
            raise
        except psycopg.Error as e:
            raise _Unattributed from e

    async def _apply_batch(self, cur: Cursor, batch: Sequence[ConsumedEvent]) -> None:
        """The whole batch at once. An error there cannot be told to an event (the batch is then
        applied again one event at a time)."""
        assert self._batch is not None
        try:
            await self._batch(cur, [c.event for c in batch if type(c.event) in self._handlers])
        except psycopg.OperationalError:
            raise  # the connection, not the events: the whole batch is retried
        except Exception as e:
            raise _Unattributed from e

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Cursor]:
        try:
            async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                # The isolation (see the module docstring and sole_writer), and the search path set
                # per transaction too: correct even on a pool built for another schema. One round
                # trip (no parameters: several statements may go in one query).
                await cur.execute(self._setup)
                yield cur
        except psycopg.Error as e:
            raise translate(e, f"projector {self.name}") from e

    @property
    def _setup(self) -> sql.Composed:
        return sql.SQL("{}; SELECT set_config('search_path', {}, true)").format(
            sql.SQL(self._isolation), sql.Literal(self._schema)
        )

    async def _lock_offsets(self, cur: Cursor, batch: Sequence[ConsumedEvent]) -> dict[Partition, int]:
        partitions = sorted({partition_of(c) for c in batch})  # one lock order: no deadlock between twins
        await cur.execute(LOCK_OFFSETS, (self.name, [t for t, _ in partitions], [p for _, p in partitions]))
        return {(topic, partition): offset for topic, partition, offset in await cur.fetchall()}

    async def _apply(self, cur: Cursor, consumed: ConsumedEvent, *, pipelined: bool = False) -> None:
        handler = self._handlers.get(type(consumed.event))
        if handler is None:
            return
        try:
            await handler(cur, consumed.event)
        except psycopg.errors.PipelineAborted as e:
            raise _Unattributed from e
        except psycopg.OperationalError:
            raise  # the connection, not the event: the whole batch is retried
        except psycopg.Error as e:
            if pipelined:
                raise _Unattributed from e
            raise ProjectionFailed(self.name, consumed, e) from e
        except Exception as e:  # a bug in the handler: raised right here, so it is this event
            raise ProjectionFailed(self.name, consumed, e) from e


class _Unattributed(Exception):
    """An SQL error reported by a pipeline, which cannot say which statement caused it."""


def partition_of(consumed: ConsumedEvent) -> Partition:
    return consumed.position.topic, consumed.position.partition


def _next_offsets(batch: Sequence[ConsumedEvent]) -> dict[Partition, int]:
    next_offsets: dict[Partition, int] = {}
    for consumed in batch:
        key = partition_of(consumed)
        next_offsets[key] = max(next_offsets.get(key, 0), consumed.position.offset + 1)
    return next_offsets


async def _save_offsets(cur: Cursor, projector: str, next_offsets: Mapping[Partition, int]) -> None:
    items = sorted(next_offsets.items())
    await cur.execute(
        SAVE_OFFSETS,
        ([t for (t, _), _ in items], [p for (_, p), _ in items], [n for _, n in items], projector),
    )
