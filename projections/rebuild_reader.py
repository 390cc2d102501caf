"""Reading a projector's topics for a rebuild: manual assignment, no consumer group, bounded.

Why no group: a rebuild must not join (and rebalance) the live projector's group, nor move the
offsets ops tools show for it. Why bounded: each read goes from the positions the shadow read model
stored up to target offsets (the end offsets captured at start, or the live projector's positions at
the swap), so a topic that keeps receiving events still lets the rebuild finish.

A record that cannot be decoded is logged with its coordinates and skipped: the live consumer has
already copied it to the dead-letter topic, and the live read model skipped it too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from events.codec import DecodeError, EventCodec
from events.topics import spec
from infra.kafka import (
    BrokerUnavailable,
    ConsumedEvent,
    KafkaError,
    Position,
    TopicAdmin,
    TopicNames,
    translate,
)
from infra.settings import KafkaSettings
from projections.projector import Partition

__all__ = ["IDLE_LIMIT_S", "TopicReader"]

log = logging.getLogger(__name__)

IDLE_LIMIT_S = 60.0  # no record and no progress for this long while data is due: give up


class TopicReader:
    """Reads catalogue topics between given positions, decoded, a fetch at a time.

    Usage::

        async with TopicReader(settings.kafka, codec, ("streams",)) as reader:
            ends = await reader.end_offsets()
            async for batch in reader.read(starts, ends):
                ...
    """

    def __init__(
        self, settings: KafkaSettings, codec: EventCodec, topics: Iterable[str], *, max_records: int = 500
    ) -> None:
        self._codec = codec
        self._settings = settings
        self._names = TopicNames(settings.topic_prefix)
        self.topics = tuple(topics)
        self._max_records = max_records
        self.undecodable = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-rebuild",
            request_timeout_ms=settings.request_timeout_ms,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )

    async def __aenter__(self) -> TopicReader:
        try:
            await self._consumer.start()
        except Exception as e:
            await self._consumer.stop()
            raise translate(e, f"starting the rebuild reader of {self.topics}") from e
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def partitions(self) -> list[Partition]:
        """Every (topic, partition) of the topics, as the cluster has them now."""
        async with TopicAdmin(self._settings) as admin:
            states = await admin.states([spec(topic) for topic in self.topics])
        found: list[Partition] = []
        for topic, state in zip(self.topics, states, strict=True):
            if not state.exists:
                raise BrokerUnavailable(f"topic {state.name} does not exist (esports topics create)")
            found.extend((topic, p) for p in range(state.partitions))
        return found

    async def end_offsets(self) -> dict[Partition, int]:
        """The next offset to be written, per partition (what "caught up" means right now)."""
        tps = [self._tp(p) for p in await self.partitions()]
        try:
            ends = await self._consumer.end_offsets(tps)
        except Exception as e:
            raise translate(e, f"reading the end offsets of {self.topics}") from e
        return {(self._names.logical(tp.topic), tp.partition): offset for tp, offset in ends.items()}

    async def read(
        self, starts: Mapping[Partition, int], targets: Mapping[Partition, int]
    ) -> AsyncIterator[list[ConsumedEvent]]:
        """Decoded events from ``starts`` (inclusive) up to ``targets`` (exclusive), per partition.

        Ends when every partition's position has reached its target; records at or past a target
        are not yielded. Raises ``BrokerUnavailable`` after :data:`IDLE_LIMIT_S` without progress.
        """
        due = {p: t for p, t in targets.items() if starts.get(p, 0) < t}
        if not due:
            return
        tps = {p: self._tp(p) for p in due}
        self._consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            self._consumer.seek(tp, starts.get(p, 0))
        idle_since = time.monotonic()
        while due:
            batch, progressed = await self._fetch(due, tps)
            if batch:
                yield batch
            if progressed:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_LIMIT_S:
                raise BrokerUnavailable(
                    f"rebuilding from {self.topics}: no progress for {IDLE_LIMIT_S:.0f} s"
                )

    async def _fetch(
        self, due: dict[Partition, int], tps: dict[Partition, TopicPartition]
    ) -> tuple[list[ConsumedEvent], bool]:
        wanted = [tps[p] for p in due]
        try:
            fetched = await self._consumer.getmany(*wanted, timeout_ms=500, max_records=self._max_records)
            batch: list[ConsumedEvent] = []
            for tp, records in fetched.items():
                target = due[(self._names.logical(tp.topic), tp.partition)]
                batch.extend(c for c in (self._decode(r) for r in records if r.offset < target) if c)
            progressed = bool(fetched)
            for p in list(due):
                # Transaction markers and compaction take offsets without records: ask the position.
                if await self._consumer.position(tps[p]) >= due[p]:
                    del due[p]
                    progressed = True
        except KafkaError:
            raise
        except Exception as e:
            raise translate(e, f"reading {self.topics}") from e
        return batch, progressed

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> ConsumedEvent | None:
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
