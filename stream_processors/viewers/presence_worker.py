"""The presence worker: counts the sessions of the ``viewers.presence`` partitions it owns.

It runs beside the Faust app (in ``esports processors``) with its own aiokafka consumer group,
:data:`~stream_processors.topology.PRESENCE_GROUP`, so it never shares Faust's fetcher and pays no
per-record Faust cost: it reads ``viewers.presence`` batches (a few hundred heartbeats a record) and
keeps a :class:`~stream_processors.viewers.presence.PartitionPresence` per owned partition. Several
worker processes share the partitions as any consumer group does.

Every :data:`REPORT_EVERY_S` it expires sessions at the wall clock and publishes the partial counts
that changed, one :class:`~stream_processors.viewers.presence.PartialReport` per merge partition, to
the internal partials topics the viewer-count and match-audience agents merge
(:mod:`stream_processors.viewers.counts_agent`).

No state is stored, so there is nothing to lose or to recover: a partition's presence is the last
window of its log. A worker that is given a partition seeks it to ``now - window - slack`` (Kafka's
offsets for times), reads to the end it had at assignment, and only then reports it, in full
(``complete``: counts its previous owner reported and that are gone are zeroed). A heartbeat read
twice changes nothing, so offsets are committed only to show the group's lag.

The single heartbeats of ``viewers.heartbeats`` (keyed by stream, written before edges batched,
or by an older edge during an upgrade) are re-keyed here: grouped by session partition and
republished as batches onto ``viewers.presence``, then committed (at least once: a heartbeat
republished twice is still one session). A new group starts them at the window, not at the log's start.

Each stream's match comes from the whole ``streams`` topic (:class:`MatchDirectory`): a session is
counted once per match on its partition, whichever streams of the match it watches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.errors import KafkaError as DriverError
from aiokafka.structs import ConsumerRecord
from mode import Service

from events.base import Event
from events.codec import DecodeError, EventCodec
from events.viewers import ViewerBeat, ViewerHeartbeat, ViewerPresenceBatch, presence_batches
from infra.kafka import TopicNames, client_options, partition_of_key
from infra.settings import KafkaSettings
from stream_processors.metrics import ProcessorMetrics
from stream_processors.runtime import DecisionPublisher, WholeTopicReader
from stream_processors.topology import (
    LEGACY_HEARTBEATS,
    MATCH_PARTIALS,
    PRESENCE_GROUP,
    PRESENCE_SOURCE,
    VIEWER_PARTIALS,
)
from stream_processors.viewers.counts import WINDOW_MS, epoch_ms, from_epoch_ms
from stream_processors.viewers.presence import MATCH, STREAM, Audience, PartialReport, PartitionPresence

__all__ = ["REPORT_EVERY_S", "MatchDirectory", "PresenceWorker"]

log = logging.getLogger(__name__)

PRODUCER = "stream_processors.presence"
REPORT_EVERY_S = 0.5  # partial counts published this often (on change); counts move within ~1 s
REBUILD_SLACK_MS = 5_000  # a taken-over partition is re-read from this long before the window
FETCH_MAX_RECORDS = 1_000  # records (batches of heartbeats) per fetch


class MatchDirectory(WholeTopicReader):
    """Each stream's match, from the whole ``streams`` topic (a None ``match_id`` changes nothing)."""

    def __init__(self, kafka: KafkaSettings, codec: EventCodec, **kwargs: Any) -> None:
        super().__init__(kafka, codec, ["streams"], "matches", **kwargs)
        self.match_of: dict[str, str] = {}
        self.joined: list[tuple[str, str]] = []  # (stream, match) learnt since the worker last looked

    def apply(self, event: Event) -> None:
        stream_id, match_id = getattr(event, "stream_id", None), getattr(event, "match_id", None)
        if (
            isinstance(stream_id, str)
            and isinstance(match_id, str)
            and self.match_of.get(stream_id) != match_id
        ):
            self.match_of[stream_id] = match_id
            self.joined.append((stream_id, match_id))

    def caught_up(self) -> str:
        return f"{len(self.match_of)} streams in matches"


class PresenceWorker(Service):
    """Owns some partitions of ``viewers.presence``, counts their sessions, reports partial counts."""

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: EventCodec,
        publishing: DecisionPublisher,
        metrics: ProcessorMetrics,
        merge_partitions: int,
        *,
        session_timeout_s: float,
        window_ms: int = WINDOW_MS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._session_timeout_s = session_timeout_s
        self._kafka = kafka
        self._codec = codec
        self._publishing = publishing
        self._metrics = metrics
        self._merge_partitions = merge_partitions
        self._window_ms = window_ms
        names = TopicNames(kafka.topic_prefix)
        self._source = names.physical(PRESENCE_SOURCE)
        self._legacy = names.physical(LEGACY_HEARTBEATS)
        self._group = names.physical(PRESENCE_GROUP)
        self._partials = {STREAM: names.physical(VIEWER_PARTIALS), MATCH: names.physical(MATCH_PARTIALS)}
        self.matches = MatchDirectory(kafka, codec)
        self._owned: dict[int, PartitionPresence] = {}
        self._rebuilding: dict[int, int] = {}  # partition -> the end offset to read before reporting it
        self._complete_due: set[int] = set()  # partitions rebuilt, whose next report is complete
        self._source_partitions = 0
        self._committed: dict[TopicPartition, int] = {}  # what was last committed (lag figures)
        self._consumer: AIOKafkaConsumer | None = None
        self._running: asyncio.Future[None] | None = None

    def on_init_dependencies(self) -> list[Service]:
        return [self.matches]  # started (read to the end of `streams`) before this worker

    @property
    def owned(self) -> dict[int, PartitionPresence]:
        """The presence of every partition this worker owns (read-only use: tests, metrics)."""
        return self._owned

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_options(self._kafka, "presence"),
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="latest",  # every assigned partition is sought explicitly anyway
            max_poll_records=FETCH_MAX_RECORDS,
            session_timeout_ms=int(self._session_timeout_s * 1000),  # like the Faust app's
            heartbeat_interval_ms=int(self._session_timeout_s * 200),
        )
        self._consumer.subscribe([self._source, self._legacy], listener=_Takeover(self))
        await self._consumer.start()
        self._source_partitions = len(self._consumer.partitions_for_topic(self._source) or ()) or 1
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
        next_report = time.monotonic()
        while True:
            try:
                fetched = await consumer.getmany(timeout_ms=100)
                await self._absorb(fetched)
                await self._rebuilt(consumer)
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + REPORT_EVERY_S
                    await self._report()
            except asyncio.CancelledError:
                raise
            except DriverError as e:  # a broker outage: fetching resumes by itself, reporting retries
                log.warning("presence: %r; retrying", e)
                await asyncio.sleep(1.0)

    async def _absorb(self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        rekeyed: dict[TopicPartition, int] = {}
        forwards: list[ViewerHeartbeat] = []
        match_of = self.matches.match_of
        for stream_id, match_id in self._take_joined():
            for owned in self._owned.values():
                owned.attach(stream_id, match_id)
        for tp, records in fetched.items():
            if tp.topic == self._legacy:
                forwards.extend(
                    e for e in [await self._decode(r) for r in records] if isinstance(e, ViewerHeartbeat)
                )
                rekeyed[tp] = records[-1].offset + 1
                continue
            presence = self._owned.get(tp.partition)
            if presence is None:
                continue  # revoked while in flight
            beats = 0
            for record in records:
                event = await self._decode(record)
                if not isinstance(event, ViewerPresenceBatch):
                    continue
                at_ms = epoch_ms(event.occurred_at)
                for beat in event.beats:
                    presence.observe(beat.stream_id, beat.session_id, at_ms, match_of.get(beat.stream_id))
                beats += len(event.beats)
            self._metrics.heartbeats += beats
        if forwards:
            await self._forward(forwards)
        if rekeyed and self._consumer is not None:
            await self._commit({tp: offset for tp, offset in rekeyed.items()})

    def _take_joined(self) -> list[tuple[str, str]]:
        joined, self.matches.joined = self.matches.joined, []
        return joined

    async def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Event | None:
        try:
            if record.value is None:
                raise DecodeError("tombstone", "a null value is not an event")
            return self._codec.decode(record.value)
        except DecodeError as e:
            await self._publishing.dead_letters.send(record, e.reason, str(e))
            self._metrics.dead_letters[e.reason] += 1
            return None

    async def _forward(self, heartbeats: Sequence[ViewerHeartbeat]) -> None:
        """Republish single heartbeats as batches keyed by session (``viewers.presence``)."""
        groups: dict[tuple[int, str], list[ViewerBeat]] = defaultdict(list)
        for h in heartbeats:
            beat = ViewerBeat(stream_id=h.stream_id, session_id=h.session_id, user_id=h.user_id)
            groups[(epoch_ms(h.occurred_at), h.edge_id)].append(beat)
        partitions = self._source_partitions
        batches = [
            batch
            for (at_ms, edge_id), beats in groups.items()
            for batch in presence_batches(
                beats,
                lambda session: partition_of_key(session.encode(), partitions),
                edge_id=edge_id,
                seen_at=from_epoch_ms(at_ms),
                producer=PRODUCER,
            )
        ]
        await self._publishing.publisher.publish_many(batches)

    async def _rebuilt(self, consumer: AIOKafkaConsumer) -> None:
        for partition, end in list(self._rebuilding.items()):
            tp = TopicPartition(self._source, partition)
            try:
                position = await consumer.position(tp)
            except IllegalStateError:
                continue  # revoked meanwhile
            if position >= end:
                del self._rebuilding[partition]
                self._complete_due.add(partition)
                log.info(
                    "presence partition %s rebuilt: %s sessions", partition, self._owned[partition].sessions
                )

    async def _report(self) -> None:
        now_ms = int(time.time() * 1000)
        reports: list[tuple[str, int, PartialReport]] = []
        complete: dict[int, dict[Audience, int]] = {}
        for partition, presence in self._owned.items():
            if partition in self._rebuilding:
                continue
            presence.expire(now_ms)
            if partition in self._complete_due:
                counts = complete[partition] = presence.counts()
            else:
                counts = presence.changes()
            reports.extend(self._reports(partition, presence.clock_ms, counts, partition in complete))
        if reports:
            await self._publish(reports, complete)
        await self._commit_positions()

    async def _publish(
        self, reports: list[tuple[str, int, PartialReport]], complete: dict[int, dict[Audience, int]]
    ) -> None:
        publisher = self._publishing.publisher
        await asyncio.gather(
            *(
                publisher.publish_raw(
                    topic, report.encode(), key=str(report.partition).encode(), partition=merge
                )
                for topic, merge, report in reports
            )
        )
        for partition, counts in complete.items():  # published: what follows are change reports
            if partition in self._complete_due and partition in self._owned:
                self._complete_due.discard(partition)
                self._owned[partition].mark_reported(counts)
        self._metrics.partial_reports += len(reports)

    def _reports(
        self, partition: int, as_of_ms: int, counts: dict[Audience, int], complete: bool
    ) -> list[tuple[str, int, PartialReport]]:
        """``counts`` split by partials topic and merge partition (every merge partition when complete)."""
        grouped: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
        if complete:
            for kind in self._partials:
                for merge in range(self._merge_partitions):
                    grouped[(kind, merge)] = {}
        for (kind, audience), count in counts.items():
            grouped[(kind, partition_of_key(audience.encode(), self._merge_partitions))][audience] = count
        return [
            (self._partials[kind], merge, PartialReport(partition, as_of_ms, audiences, complete))
            for (kind, merge), audiences in grouped.items()
        ]

    async def _commit_positions(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        positions = {}
        for partition in self._owned:
            if partition not in self._rebuilding:
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
            log.debug("presence: commit skipped (%r)", e)

    async def taken(self, assigned: set[TopicPartition]) -> None:
        """New partitions: presence ones are re-read from the window, re-keyed ones resume."""
        consumer = self._consumer
        assert consumer is not None
        since = int(time.time() * 1000) - self._window_ms - REBUILD_SLACK_MS
        fresh = set(assigned)  # everything: the eager protocol revoked all of it first
        if not fresh:
            return
        starts = await consumer.offsets_for_times({tp: since for tp in fresh})
        ends = await consumer.end_offsets(list(fresh))
        for tp in fresh:
            start = starts.get(tp)
            offset = start.offset if start is not None else ends[tp]
            if tp.topic == self._legacy:
                committed = await consumer.committed(tp)
                consumer.seek(tp, max(offset, committed or 0))
                continue
            consumer.seek(tp, offset)
            self._owned[tp.partition] = PartitionPresence(self._window_ms)
            self._rebuilding[tp.partition] = ends[tp]
        log.info("presence: took %s", sorted((tp.topic, tp.partition) for tp in fresh))

    def given_up(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            if tp.topic == self._source:
                self._owned.pop(tp.partition, None)
                self._rebuilding.pop(tp.partition, None)
                self._complete_due.discard(tp.partition)


class _Takeover(ConsumerRebalanceListener):
    def __init__(self, worker: PresenceWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._worker.given_up(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._worker.taken(assigned)
