"""Reading a projector's topics for a rebuild, decoded, between two positions.

Reads with :class:`projections.log_reader.LogReader` (no consumer group, bounded): from the positions
the shadow read model stored up to target offsets (the end offsets captured at start, or the live
projector's positions at the swap), so a topic that keeps receiving events still lets the rebuild
finish.

A record that cannot be decoded is logged with its coordinates and skipped: the live consumer has
already copied it to the dead-letter topic, and the live read model skipped it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import TopicPartition

from events.codec import DecodeError, EventCodec
from events.topics import spec
from infra.kafka import BrokerUnavailable, ConsumedEvent, Position, TopicAdmin, TopicNames
from infra.settings import KafkaSettings
from projections.log_reader import LogReader, Record
from projections.projector import Partition

__all__ = ["TopicReader", "partition_counts", "read_ahead"]

log = logging.getLogger(__name__)

T = TypeVar("T")


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


class TopicReader:
    """Reads catalogue topics between given positions, decoded, a fetch at a time.

    Usage::

        async with TopicReader(settings.kafka, codec, ("streams",)) as reader:
            ends = await reader.end_offsets(await partition_counts(settings.kafka, reader.topics))
            async for batch in reader.read(starts, ends):
                ...
    """

    def __init__(
        self, settings: KafkaSettings, codec: EventCodec, topics: Iterable[str], *, max_records: int = 500
    ) -> None:
        self._codec = codec
        self._names = TopicNames(settings.topic_prefix)
        self.topics = tuple(topics)
        self.undecodable = 0
        self._log = LogReader(settings, "rebuild", f"the rebuild of {self.topics}", max_records=max_records)

    async def __aenter__(self) -> TopicReader:
        await self._log.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._log.__aexit__(*exc)

    async def end_offsets(self, partitions: Mapping[str, int]) -> dict[Partition, int]:
        """The next offset to be written, per partition (what "caught up" means right now), given
        each topic's partition count (:func:`partition_counts`)."""
        tps = [self._tp((topic, p)) for topic in self.topics for p in range(partitions[topic])]
        ends = await self._log.end_offsets(tps)
        return {(self._names.logical(tp.topic), tp.partition): offset for tp, offset in ends.items()}

    async def read(
        self, starts: Mapping[Partition, int], targets: Mapping[Partition, int]
    ) -> AsyncIterator[list[ConsumedEvent]]:
        """Decoded events from ``starts`` (inclusive) up to ``targets`` (exclusive), per partition.

        Ends when every partition's position has reached its target; records at or past a target
        are not yielded. Raises ``BrokerUnavailable`` after
        :data:`~projections.log_reader.IDLE_LIMIT_S` without progress.
        """
        due = {self._tp(p): (starts.get(p, 0), t) for p, t in targets.items() if starts.get(p, 0) < t}
        if not due:
            return
        self._log.assign(due)
        while self._log.open:
            fetched = await self._log.fetch()
            batch = [c for records in fetched.values() for c in map(self._decode, records) if c]
            if batch:
                yield batch

    def _decode(self, record: Record) -> ConsumedEvent | None:
        topic, partition, offset = record.topic, record.partition, record.offset
        try:
            if record.value is None:
                raise DecodeError("tombstone", "a null value is not an event")
            event = self._codec.decode(record.value)
        except DecodeError as e:
            self.undecodable += 1
            log.warning(
                "rebuild skips an undecodable record topic=%s partition=%s offset=%s: %s",
                topic,
                partition,
                offset,
                e,
            )
            return None
        position = Position(self._names.logical(topic), partition, offset)
        return ConsumedEvent(event, position, record.key, list(record.headers or ()), record.timestamp)

    def _tp(self, partition: Partition) -> TopicPartition:
        return TopicPartition(self._names.physical(partition[0]), partition[1])


@dataclass(frozen=True, slots=True)
class _Failed:
    """The reader raised ``error``."""

    error: Exception


class _Done:
    """The reader reached its targets."""


async def read_ahead(batches: AsyncIterator[T], depth: int) -> AsyncGenerator[T, None]:
    """``batches``, fetched and decoded up to ``depth`` batches ahead of the caller.

    Why: a projector's store mostly waits for its database; meanwhile its next batches are fetched
    and decoded rather than afterwards. Bounded, so a slow store holds back its reader instead of
    filling memory. An error of the reader is raised here, after the batches before it; closing
    the generator (``contextlib.aclosing``) stops the reader.
    """
    queue: asyncio.Queue[T | _Failed | _Done] = asyncio.Queue(maxsize=depth)

    async def fill() -> None:
        try:
            async for batch in batches:
                await queue.put(batch)
        except Exception as e:  # handed to the reading side, which raises it there
            await queue.put(_Failed(e))
        else:
            await queue.put(_Done())

    filling = asyncio.create_task(fill())
    try:
        while not isinstance(item := await queue.get(), _Done):
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        filling.cancel()
        await asyncio.gather(filling, return_exceptions=True)
