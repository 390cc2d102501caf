"""The decoding consumer every service shares (:class:`EventConsumer`), and what a reader of whole topics
needs to know it has read them to the end (:class:`CatchUp`) or how far behind it is (:meth:`lags`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from events.avro_mapping import frozen_constructor
from events.base import Event
from events.codec import DecodeError, EventCodec
from infra.kafka.aiokafka_internals import next_offset
from infra.kafka.dead_letters import DeadLetters
from infra.kafka.errors import BrokerUnavailable, translate
from infra.kafka.names import Headers, Position, TopicNames, client_options
from infra.settings import KafkaSettings

__all__ = [
    "CatchUp",
    "ConsumedEvent",
    "EventConsumer",
    "StartPositions",
    "consumed_event",
    "lags_of",
    "positions_of",
]

log = logging.getLogger(__name__)

# (catalogue topic, partition) -> the next offset to read; how a consumer resumes from a position it
# stored itself (e.g. in the same PostgreSQL transaction as a projection's writes).
StartPositions = Callable[[list[tuple[str, int]]], Awaitable[dict[tuple[str, int], int]]]


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    """A decoded event with the log coordinates it was read from."""

    event: Event
    position: Position
    key: bytes | None
    headers: Headers
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class CatchUp:
    """The end offsets of a reader's partitions at one moment: the reader has caught up with that moment
    once it has handed out every record below them (:meth:`EventConsumer.reach` waits for it).

    ``read_at_ms`` is the wall-clock time taken just before the ends were asked for: every record
    acknowledged before it lies below them.
    """

    ends: Mapping[TopicPartition, int]
    read_at_ms: int

    def reached(self, positions: Mapping[TopicPartition, int]) -> bool:
        """Whether ``positions`` (the next offset to hand out, per partition) are at or past the ends."""
        return all(positions.get(tp, 0) >= end for tp, end in self.ends.items())


class EventConsumer:
    """Reads catalogue topics, decodes by schema id, and dead-letters what it cannot decode.

    Offsets are committed only by :meth:`commit`, which callers invoke after they have processed what
    they were given, so a crash re-delivers (at-least-once) instead of losing events. A record that
    cannot be decoded is copied to the dead-letter topic *before* the consumer moves past it.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        codec: EventCodec,
        *,
        topics: Iterable[str],
        group_id: str | None,
        dead_letters: DeadLetters,
        names: TopicNames | None = None,
        from_beginning: bool = False,
        max_records: int = 500,
        start_positions: StartPositions | None = None,
    ) -> None:
        self._codec = codec
        self._names = names or TopicNames(settings.topic_prefix)
        self._dead_letters = dead_letters
        self._max_records = max_records
        self._start_positions = start_positions
        self._group_id = group_id
        self.topics = [self._names.physical(t) for t in topics]
        self._consumer = AIOKafkaConsumer(
            **client_options(settings, group_id or "reader"),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            isolation_level="read_committed",
        )
        self._consumer.subscribe(self.topics, listener=_SeekOnAssignment(self))
        self._taken: dict[TopicPartition, int] = {}  # positions as of the caller's last request for more
        self._progress = asyncio.Event()  # set (and replaced) at each such request
        self._stopped = False

    @property
    def group_id(self) -> str | None:
        """The consumer group (None: a reader of every partition, without a group)."""
        return self._group_id

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except Exception as e:
            await self._consumer.stop()
            raise translate(e, f"starting consumer of {self.topics}") from e

    async def stop(self) -> None:
        self._stopped = True
        self._progress.set()  # a task waiting in reach() sees the consumer stopped
        await self._consumer.stop()

    async def __aenter__(self) -> EventConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def batches(self, timeout_ms: int = 500) -> AsyncIterator[list[ConsumedEvent]]:
        """Yield decoded events a fetch at a time (possibly empty batches, so callers can time out)."""
        while True:
            self._taken_so_far()
            fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self._max_records)
            batch, undecodable = self._decoded(fetched)
            for record, reason, detail in undecodable:  # copied before the consumer moves past them
                await self._dead_letters.send(record, reason, detail)
            yield batch

    async def __aiter__(self) -> AsyncIterator[ConsumedEvent]:
        async for batch in self.batches():
            for consumed in batch:
                yield consumed

    async def commit(self) -> None:
        """Commit the positions of everything handed out so far."""
        try:
            await self._consumer.commit()
        except Exception as e:
            raise translate(e, "committing offsets") from e

    # --- how far it has read ------------------------------------------------------------------------

    def positions(self) -> dict[TopicPartition, int]:
        """The next offset this consumer hands out, per assigned partition whose position is known."""
        return positions_of(self._consumer)

    def lags(self) -> dict[tuple[str, int], int]:
        """Records behind the end, per assigned (physical topic, partition): see :func:`lags_of`."""
        return lags_of(self._consumer)

    async def assignment(self, timeout_s: float = 15.0) -> list[TopicPartition]:
        """Every partition of the topics, once assigned: a consumer without a group is given them from
        the cluster's metadata shortly after it starts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            assigned = list(self._consumer.assignment())
            if {tp.topic for tp in assigned} >= set(self.topics):
                return assigned
            if loop.time() > deadline:
                raise BrokerUnavailable(f"no partitions assigned for {self.topics} (do the topics exist?)")
            await asyncio.sleep(0.05)

    async def catch_up(self, timeout_s: float = 15.0) -> CatchUp:
        """The end offsets of every partition now (see :meth:`assignment` for ``timeout_s``)."""
        read_at_ms = int(time.time() * 1000)
        assigned = await self.assignment(timeout_s)
        try:
            ends: dict[TopicPartition, int] = await self._consumer.end_offsets(assigned)
        except Exception as e:
            raise BrokerUnavailable(f"reading end offsets of {self.topics}: {e!r}") from e
        return CatchUp(ends, read_at_ms)

    async def reach(self, mark: CatchUp) -> None:
        """Return once the caller of :meth:`batches` has taken every record below ``mark`` (it has asked
        for the next batch after them); raises RuntimeError if the consumer stops first."""
        while not mark.reached(self._taken):
            if self._stopped:
                raise RuntimeError(f"the consumer of {self.topics} stopped before catching up")
            await self._progress.wait()

    def _taken_so_far(self) -> None:
        """The caller asks for more: it is done with every record handed out until now."""
        self._taken = self.positions()
        self._progress.set()  # wakes the tasks waiting in reach(); later ones wait for the next
        self._progress = asyncio.Event()

    # --- reading ------------------------------------------------------------------------------------

    async def _seek_to_stored(self, assigned: set[TopicPartition]) -> None:
        if self._start_positions is None or not assigned:
            return
        wanted = [(self._names.logical(tp.topic), tp.partition) for tp in assigned]
        stored = await self._start_positions(wanted)
        for tp in assigned:
            offset = stored.get((self._names.logical(tp.topic), tp.partition))
            if offset is not None:
                self._consumer.seek(tp, offset)
        log.info("resuming %s partitions from stored positions: %s", len(assigned), stored)

    def _decoded(
        self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[list[ConsumedEvent], list[tuple[ConsumerRecord[bytes, bytes], str, str]]]:
        """The fetched records' events, and the records that are none (with the reason and detail their
        dead letter carries). A plain loop without awaits: decoding is every consumer's per-record cost."""
        decode, undecodable = self._codec.decode, []
        batch: list[ConsumedEvent] = []
        append = batch.append
        for tp, records in fetched.items():
            topic = self._names.logical(tp.topic)
            for record in records:
                if record.value is None:
                    undecodable.append((record, "tombstone", "a null value is not an event"))
                    continue
                try:
                    event = decode(record.value)
                except DecodeError as e:
                    undecodable.append((record, e.reason, str(e)))
                    continue
                append(consumed_event(event, topic, record))
        return batch, undecodable


# Made once per consumed record: the direct constructors skip the dataclasses' per-field setattr.
_consumed = frozen_constructor(ConsumedEvent)
_position = frozen_constructor(Position)


def consumed_event(event: Event, topic: str, record: ConsumerRecord[bytes, bytes]) -> ConsumedEvent:
    """``event``, decoded from ``record`` of the catalogue ``topic``, with the record's coordinates."""
    return _consumed(
        event,
        _position(topic, record.partition, record.offset),
        record.key,
        record.headers or [],  # aiokafka makes a list per record
        record.timestamp,
    )


class _SeekOnAssignment(ConsumerRebalanceListener):
    """Seeks newly assigned partitions to the positions the consumer's owner stored."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._consumer._seek_to_stored(assigned)


def positions_of(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """The next offset ``consumer`` hands out, per assigned partition whose position is known."""
    known = {tp: next_offset(consumer, tp) for tp in consumer.assignment()}
    return {tp: offset for tp, offset in known.items() if offset is not None}


def lags_of(consumer: AIOKafkaConsumer) -> dict[tuple[str, int], int]:
    """Records behind the end, per assigned (physical topic, partition) of any aiokafka consumer: the
    highwater of its last fetch minus the next offset it hands out. Partitions not fetched from yet are
    left out. Synchronous, for a metrics scrape."""
    lags: dict[tuple[str, int], int] = {}
    for tp, position in positions_of(consumer).items():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            lags[(tp.topic, tp.partition)] = highwater - position
    return lags
