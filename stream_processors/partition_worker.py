"""A partition worker: a consumer group of its own beside the Faust app, for the hot paths.

The hottest records (heartbeats, votes) are partitioned by the key that makes them parallel (the
session, the voter), not by stream. A partition worker owns some partitions of such a ``source``
topic, as any member of its consumer group does, keeps a state per owned partition in memory and
reports *partial* results every ``every_s`` to internal topics that a Faust agent merges per stream.
It never shares Faust's fetcher and pays no per-record Faust cost, and several worker processes
share the partitions.

Nothing is stored: a partition's state is a stretch of its own log. A worker given a partition seeks
it to :meth:`PartitionWorker.rebuild_from_ms` (Kafka's offsets for times), reads to the end it had at
assignment, and only then reports it, in full (``complete``: what its previous owner reported and
is gone now is taken back). Reading a record twice must change nothing (subclasses keep the latest
per key), so offsets are committed only to show the group's lag.

A ``legacy`` topic holds the same causes keyed the old way (by stream): its records are re-keyed,
republished onto ``source`` (:meth:`PartitionWorker.rekey`) and then committed, at least once. A
new group starts them at :meth:`PartitionWorker.rebuild_from_ms`, not at the log's start.

A broker outage is retried (the next report of every partition is then complete, since a change
report may have been lost, and the legacy topic resumes from its commit); any other error crashes
the worker, as an agent's would. Every :data:`COMPLETE_EVERY_S` every partition is reported in full
anyway: a change report the merge could not use yet (a vote partition's tally of a poll whose
``PollOpened`` the poll agent has not read yet, behind a rebalance) is then made good within seconds
instead of waiting for the next change, which may never come (found by the chaos suite).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Generic, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.errors import KafkaError as DriverError
from aiokafka.structs import ConsumerRecord
from mode import Service

from events.base import Event
from events.codec import DecodeError, EventCodec
from infra.kafka import KafkaError, TopicNames, client_options, lags_of
from infra.settings import Settings
from stream_processors.metrics import ProcessorMetrics
from stream_processors.runtime import DecisionPublisher

__all__ = ["FETCH_MAX_RECORDS", "PartitionWorker", "Record", "Report"]

log = logging.getLogger(__name__)

COMPLETE_EVERY_S = 5.0  # every partition reported in full this often (see the module docstring)

S = TypeVar("S")
Record: TypeAlias = ConsumerRecord[bytes, bytes]
Report: TypeAlias = tuple[str, int, bytes, bytes | None]  # (physical topic, partition, key, value)

FETCH_MAX_RECORDS = 1_000  # records per fetch


class PartitionWorker(Service, Generic[S]):
    """Owns partitions of ``source``, keeps a state ``S`` per partition, reports partial results.

    Subclasses say how a partition's state starts (:meth:`new_state`), where its rebuild starts
    (:meth:`rebuild_from_ms`), how records fold in (:meth:`absorb`), what a legacy record becomes
    (:meth:`rekey`) and what to report (:meth:`report`).
    """

    role = "partitions"  # names the client and the log lines
    group = ""  # the consumer group, before the deployment prefix
    source = ""  # the catalogue topic whose partitions the worker owns
    legacy: str | None = None  # the catalogue topic of the same causes keyed the old way, if any
    every_s = 1.0  # how often partial results are reported (the changes)

    def __init__(
        self,
        settings: Settings,
        codec: EventCodec,
        publishing: DecisionPublisher,
        metrics: ProcessorMetrics,
        merge_partitions: int,
        **kwargs: Any,
    ) -> None:
        """``merge_partitions``: the partition count of the partials topics (the merge agents')."""
        super().__init__(**kwargs)
        self._kafka = settings.kafka
        self._codec = codec
        self._publishing = publishing
        self._metrics = metrics
        self._merge_partitions = merge_partitions
        self.names = TopicNames(settings.kafka.topic_prefix)
        self._group = self.names.physical(self.group)
        self._source = self.names.physical(self.source)
        self._legacy = None if self.legacy is None else self.names.physical(self.legacy)
        self._session_timeout_s = settings.processors.session_timeout_s  # like the Faust app's
        self._owned: dict[int, S] = {}
        self._rebuilding: dict[int, int] = {}  # partition -> the end offset to read before reporting it
        self._complete_due: set[int] = set()  # partitions whose next report is complete
        self._committed: dict[TopicPartition, int] = {}  # what was last committed
        self._rebalances = 0  # partitions taken or given up so far (a fetch from before is stale)
        self.source_partitions = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._running: asyncio.Future[None] | None = None

    # -- what subclasses provide ------------------------------------------------------------------

    def new_state(self) -> S:
        raise NotImplementedError

    def rebuild_from_ms(self) -> int:
        """Where a taken-over partition (and a new group's legacy topic) starts, epoch ms."""
        raise NotImplementedError

    def state_for(self, partition: int) -> S:
        """The fresh state of a partition just taken (set in the same step as its seek, so no record
        of it is absorbed before): :meth:`new_state` unless a subclass knows more about ``partition``."""
        return self.new_state()

    async def absorb(self, partition: int, state: S, records: Sequence[Record]) -> None:
        """Fold a fetch of one owned partition into its state."""
        raise NotImplementedError

    def rekey(self, events: Sequence[Event]) -> list[Event]:
        """The legacy topic's decoded events as events of ``source`` (keyed the new way)."""
        raise NotImplementedError

    def report(self, now_ms: int, complete: set[int]) -> list[Report]:
        """The partial results due now of the rebuilt owned partitions; ``complete`` ones in full."""
        raise NotImplementedError

    def reported(self, complete: set[int]) -> None:
        """The reports of :meth:`report` were published (``complete``: the partitions reported in full)."""

    # -- the loop ---------------------------------------------------------------------------------

    @property
    def owned(self) -> dict[int, S]:
        """The state of every partition this worker owns (read-only use: tests, metrics)."""
        return self._owned

    @property
    def group_id(self) -> str:
        """The worker group's (physical) name: what the consumer-lag gauge labels it with."""
        return self._group

    def lags(self) -> dict[tuple[str, int], int]:
        """Records behind the end per owned source partition (for ``/metrics``); empty before start."""
        return {} if self._consumer is None else lags_of(self._consumer)

    def ready(self, partition: int) -> bool:
        """Owned and rebuilt: its state is the log's up to where it was read."""
        return partition in self._owned and partition not in self._rebuilding

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_options(self._kafka, self.role),
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="latest",  # every assigned partition is sought explicitly anyway
            max_poll_records=FETCH_MAX_RECORDS,
            session_timeout_ms=int(self._session_timeout_s * 1000),  # like the Faust app's
            heartbeat_interval_ms=int(self._session_timeout_s * 200),
        )
        topics = [self._source] if self._legacy is None else [self._source, self._legacy]
        self._consumer.subscribe(topics, listener=_Takeover(self))
        await self._consumer.start()
        # From the metadata, waited for: a batch is grouped (and a poll's finals counted) by it.
        self.source_partitions = await self._publishing.publisher.partitions(self._source)
        self._running = asyncio.ensure_future(self._run())

    async def on_stop(self) -> None:
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
            self._running = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        next_report = next_complete = time.monotonic()
        while True:
            try:
                fetched = await consumer.getmany(timeout_ms=100)
                await self._absorb(fetched)
                await self._rebuilt(consumer)
                if time.monotonic() >= next_complete:
                    next_complete = time.monotonic() + COMPLETE_EVERY_S
                    self._complete_due.update(p for p in self._owned if p not in self._rebuilding)
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + self.every_s
                    await self._report()
            except asyncio.CancelledError:
                raise
            except (DriverError, KafkaError) as e:
                log.warning("%s: %r; retrying", self.role, e)
                self._complete_due.update(p for p in self._owned if p not in self._rebuilding)
                await self._rewind_legacy(consumer)
                await asyncio.sleep(1.0)
            except Exception as e:
                log.exception("%s worker crashed", self.role)
                await self.crash(e)
                raise

    @property
    def rebalances(self) -> int:
        """How many times partitions were taken or given up: aiokafka runs the rebalance callbacks
        beside the loop, so a fetch being absorbed across an await can outlive its assignment."""
        return self._rebalances

    async def _absorb(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        rekeyed: dict[TopicPartition, int] = {}
        legacy: list[Event] = []
        fetched_in = self._rebalances
        for tp, records in fetched.items():
            if self._rebalances != fetched_in:
                # A rebalance ran during an await of this fetch: every partition kept or taken was
                # sought back (to its rebuild start or commit), so the rest of it comes round again;
                # folding it into the new states now would count it twice.
                break
            if tp.topic == self._legacy:
                legacy.extend(e for e in [await self.decode(r) for r in records] if e is not None)
                rekeyed[tp] = records[-1].offset + 1
                continue
            state = self._owned.get(tp.partition)
            if state is not None:  # else revoked while in flight
                await self.absorb(tp.partition, state, records)
        if legacy and (events := self.rekey(legacy)):
            await self._publishing.publisher.publish_many(events)
        if rekeyed:
            await self._commit(rekeyed)

    async def decode(self, record: Record) -> Event | None:
        """The record's event, or None after dead-lettering it."""
        try:
            if record.value is None:
                raise DecodeError("tombstone", "a null value is not an event")
            return self._codec.decode(record.value)
        except DecodeError as e:
            await self._publishing.dead_letters.send(record, e.reason, str(e))
            self._metrics.dead_letters[e.reason] += 1
            return None

    async def _rebuilt(self, consumer: AIOKafkaConsumer) -> None:
        for partition, end in list(self._rebuilding.items()):
            try:
                position = await consumer.position(TopicPartition(self._source, partition))
            except IllegalStateError:
                continue  # revoked meanwhile
            if position >= end:
                del self._rebuilding[partition]
                self._complete_due.add(partition)
                log.info("%s partition %s rebuilt (to offset %s)", self.role, partition, end)

    async def _report(self) -> None:
        complete = {p for p in self._complete_due if self.ready(p)}
        reports = self.report(int(time.time() * 1000), complete)
        if reports:
            publisher = self._publishing.publisher
            await asyncio.gather(
                *(publisher.publish_raw(t, value, key=key, partition=p) for t, p, key, value in reports)
            )
            self._metrics.partial_reports += len(reports)
        self._complete_due -= complete
        self.reported(complete)
        await self._commit_positions()

    async def _commit_positions(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        positions = {}
        for partition in [p for p in self._owned if self.ready(p)]:
            tp = TopicPartition(self._source, partition)
            try:
                position = await consumer.position(tp)
            except IllegalStateError:
                continue
            if self._committed.get(tp) != position:
                positions[tp] = position
        if positions:
            await self._commit(positions)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit for the lag figures and the re-keying; a rebalance in between only repeats work."""
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError) as e:
            log.debug("%s: commit skipped (%r)", self.role, e)

    async def _rewind_legacy(self, consumer: AIOKafkaConsumer) -> None:
        """Back to the last commit of the legacy topic: a failed republish is done again."""
        for tp in consumer.assignment():
            if tp.topic == self._legacy and (committed := self._committed.get(tp)) is not None:
                consumer.seek(tp, committed)

    async def taken(self, assigned: set[TopicPartition]) -> None:
        """New partitions (all of them: the eager protocol revoked everything first): the source's
        are re-read from :meth:`rebuild_from_ms`, the legacy topic's resume from their commit."""
        consumer = self._consumer
        if consumer is None or not assigned:
            return
        self._rebalances += 1
        starts = await consumer.offsets_for_times(await self.rebuild_starts(consumer, assigned))
        ends = await consumer.end_offsets(list(assigned))
        for tp in assigned:
            start = starts.get(tp)
            offset = start.offset if start is not None else ends[tp]
            if tp.topic == self._legacy:
                committed = await consumer.committed(tp)
                consumer.seek(tp, max(offset, committed or 0))
                if committed is not None:
                    self._committed[tp] = max(offset, committed)
                continue
            consumer.seek(tp, offset)
            self._owned[tp.partition] = self.state_for(tp.partition)
            self._rebuilding[tp.partition] = ends[tp]
        log.info("%s: took %s", self.role, sorted((tp.topic, tp.partition) for tp in assigned))

    async def rebuild_starts(
        self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Where each taken partition is re-read from (epoch ms): :meth:`rebuild_from_ms` for all."""
        since = self.rebuild_from_ms()
        return {tp: since for tp in assigned}

    async def releasing(self, revoked: set[TopicPartition]) -> None:
        """Before ``revoked`` is given up (awaited by the rebalance): a worker whose decisions must all be
        on the log before another owner reads them back waits for its publishing here."""

    def given_up(self, revoked: set[TopicPartition]) -> None:
        self._rebalances += 1
        for tp in revoked:
            self._committed.pop(tp, None)
            if tp.topic == self._source:
                self._owned.pop(tp.partition, None)
                self._rebuilding.pop(tp.partition, None)
                self._complete_due.discard(tp.partition)


class _Takeover(ConsumerRebalanceListener):
    def __init__(self, worker: PartitionWorker[Any]) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.releasing(revoked)
        self._worker.given_up(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._worker.taken(assigned)
