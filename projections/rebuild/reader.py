"""Reading the projectors' topics for a rebuild: once for all of them, decoded once, shared out.

Reads with :class:`projections.log_reader.LogReader` (no consumer group, bounded): each projector
from the positions its shadow read model stored (the beginning, the first time) up to target offsets
(the end offsets captured at start, or the live projector's positions at the swap), so a topic that
keeps receiving events still lets the rebuild finish.

Why one reader for all: projectors share topics (``chat.messages`` feeds ``pg.chat`` and
``redis.chat``, ``streams`` feeds ``pg.catalog`` and ``redis.live``, ``users`` two more), so reading
per projector fetched and decoded most records twice (42,380 decodes for 23,539 events in
``bench/rebuild.py``). Here every partition is read once over the union of the projectors' spans,
each record decoded once, and each projector gets the events inside its own span, in log order per
partition, through a bounded queue: its store writes while the next batches are fetched and decoded,
and a slow store holds back the reader instead of filling memory.

A record that cannot be decoded is logged with its coordinates and skipped: the live consumer has
already copied it to the dead-letter topic, and the live read model skipped it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence

from aiokafka import TopicPartition

from events.codec import DecodeError, EventCodec
from events.topics import spec
from infra.kafka import BrokerUnavailable, ConsumedEvent, TopicAdmin, TopicNames, consumed_event
from infra.settings import KafkaSettings
from projections.log_reader import LogReader, Record
from projections.projector import Partition

__all__ = ["Batches", "FanOutReader", "Spans", "partition_counts", "route", "union"]

log = logging.getLogger(__name__)

Spans = Mapping[Partition, tuple[int, int]]  # partition -> [start, end) of the offsets to read
Batches = asyncio.Queue[list[ConsumedEvent] | None]  # a projector's batches; None after the last


async def partition_counts(settings: KafkaSettings, topics: Iterable[str]) -> dict[str, int]:
    """Partitions per catalogue topic, as the cluster has them now (one admin request for the
    topics of every projector: an admin client per projector cost a rebuild about a second)."""
    wanted = sorted(set(topics))
    async with TopicAdmin(settings) as admin:
        states = await admin.states([spec(topic) for topic in wanted])
    for state in states:
        if not state.exists:
            raise BrokerUnavailable(f"topic {state.name} does not exist (esports topics create)")
    return {topic: state.partitions for topic, state in zip(wanted, states, strict=True)}


def union(spans: Mapping[str, Spans]) -> dict[Partition, tuple[int, int]]:
    """The offsets to read per partition so that every projector's span is covered (pure)."""
    covered: dict[Partition, tuple[int, int]] = {}
    for projector_spans in spans.values():
        for partition, (start, end) in projector_spans.items():
            if start >= end:
                continue
            low, high = covered.get(partition, (start, end))
            covered[partition] = (min(low, start), max(high, end))
    return covered


def route(
    partition: Partition, events: Sequence[ConsumedEvent], spans: Mapping[str, Spans]
) -> dict[str, Sequence[ConsumedEvent]]:
    """Each projector's share of ``events`` (one partition's, in log order): those inside its span
    of that partition (pure)."""
    shares: dict[str, Sequence[ConsumedEvent]] = {}
    if not events:
        return shares
    first, last = events[0].position.offset, events[-1].position.offset
    for name, projector_spans in spans.items():
        span = projector_spans.get(partition)
        if span is None or span[0] >= span[1]:
            continue
        start, end = span
        if start <= first and last < end:
            shares[name] = events  # the common case: the whole fetch is inside the span
        else:
            share = [c for c in events if start <= c.position.offset < end]
            if share:
                shares[name] = share
    return shares


class FanOutReader:
    """Reads the partitions of several projectors once, decodes each record once, and puts each
    projector's events on its queue in batches of at most ``batch_size``.

    Usage::

        async with FanOutReader(settings.kafka, codec, batch_size=2000) as reader:
            ends = await reader.end_offsets(topics, await partition_counts(settings.kafka, topics))
            queues = {name: asyncio.Queue(maxsize=2) for name in spans}
            await reader.feed(spans, queues)  # beside the projectors reading their queues
    """

    def __init__(self, settings: KafkaSettings, codec: EventCodec, *, batch_size: int) -> None:
        self._codec = codec
        self._names = TopicNames(settings.topic_prefix)
        self._batch_size = batch_size
        self.undecodable = 0
        self._log = LogReader(settings, "rebuild", "the rebuild", max_records=batch_size)

    async def __aenter__(self) -> FanOutReader:
        await self._log.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._log.__aexit__(*exc)

    async def end_offsets(self, topics: Iterable[str], partitions: Mapping[str, int]) -> dict[Partition, int]:
        """The next offset to be written, per partition of ``topics`` (what "caught up" means right
        now), given each topic's partition count (:func:`partition_counts`); one request."""
        tps = [self._tp((topic, p)) for topic in sorted(set(topics)) for p in range(partitions[topic])]
        # Assigned (as already read to their end) first so that the consumer asks for the metadata
        # of every topic at once: unknown to it, aiokafka learns them one topic per 100 ms retry
        # (1.3 s for the 10 topics of a rebuild). ``feed`` assigns what it reads.
        self._log.assign({tp: (0, 0) for tp in tps})
        ends = await self._log.end_offsets(tps)
        return {(self._names.logical(tp.topic), tp.partition): offset for tp, offset in ends.items()}

    async def feed(self, spans: Mapping[str, Spans], queues: Mapping[str, Batches]) -> None:
        """Read every projector's ``spans`` and put its events on its queue, then ``None``.

        Raises ``BrokerUnavailable`` after :data:`~projections.log_reader.IDLE_LIMIT_S` without
        progress.
        """
        pending: dict[str, list[ConsumedEvent]] = {name: [] for name in spans}
        due = {self._tp(p): span for p, span in union(spans).items()}
        if due:
            self._log.assign(due)
            while self._log.open:
                await self._read_once(spans, pending, queues)
        for name in spans:
            if pending[name]:
                await queues[name].put(pending[name])
            await queues[name].put(None)

    async def _read_once(
        self,
        spans: Mapping[str, Spans],
        pending: dict[str, list[ConsumedEvent]],
        queues: Mapping[str, Batches],
    ) -> None:
        """One fetch: decoded, shared out, and the projectors' full batches queued."""
        for tp, records in (await self._log.fetch()).items():
            topic = self._names.logical(tp.topic)
            decoded = [c for record in records if (c := self._decode(record, topic)) is not None]
            for name, share in route((topic, tp.partition), decoded, spans).items():
                pending[name].extend(share)
        size = self._batch_size
        for name in spans:
            while len(pending[name]) >= size:
                batch, pending[name] = pending[name][:size], pending[name][size:]
                await self._put(name, batch, pending, queues)

    async def _put(
        self,
        name: str,
        batch: list[ConsumedEvent],
        pending: dict[str, list[ConsumedEvent]],
        queues: Mapping[str, Batches],
    ) -> None:
        """Queue ``batch``; before waiting for a full queue, hand the other projectors what they have
        (a partial batch) if their queues have room, so they do not idle behind the slow one."""
        if queues[name].full():
            for other, events in pending.items():
                if events and not queues[other].full():
                    queues[other].put_nowait(events)
                    pending[other] = []
        await queues[name].put(batch)

    def _decode(self, record: Record, topic: str) -> ConsumedEvent | None:
        """``record`` decoded, its position in the catalogue ``topic``; None if undecodable."""
        partition, offset = record.partition, record.offset
        try:
            if record.value is None:
                raise DecodeError("tombstone", "a null value is not an event")
            event = self._codec.decode(record.value)
        except DecodeError as e:
            self.undecodable += 1
            log.warning(
                "rebuild skips an undecodable record topic=%s partition=%s offset=%s: %s",
                record.topic,
                partition,
                offset,
                e,
            )
            return None
        return consumed_event(event, topic, record)

    def _tp(self, partition: Partition) -> TopicPartition:
        return TopicPartition(self._names.physical(partition[0]), partition[1])
