"""The Kafka adapter every service shares: the idempotent publisher, the decoding consumer, topic admin.

Why the explicit settings: aiokafka's producer defaults to ``acks=1`` without idempotence, which can
lose or duplicate an acknowledged event on a leader change. Every producer here is built with
``enable_idempotence=True`` and ``acks="all"``, and :meth:`EventPublisher.publish` returns only once the
broker has acknowledged the record, so a caller that answers "accepted" never lies.

Driver exceptions are translated into this module's :class:`KafkaError` family at one choke point;
callers branch on ``.retriable``, not on aiokafka types.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from aiokafka.errors import KafkaError as DriverError
from aiokafka.partitioner import murmur2

from events.base import Event
from events.codec import DecodeError, EventCodec
from events.topics import CATALOGUE, TopicSpec, partition_key, topic_for
from infra.settings import KafkaSettings

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
# (catalogue topic, partition) -> the next offset to read; how a consumer resumes from a position it
# stored itself (e.g. in the same PostgreSQL transaction as a projection's writes).
StartPositions = Callable[[list[tuple[str, int]]], Awaitable[dict[tuple[str, int], int]]]
TOPIC_ALREADY_EXISTS = 36


class KafkaError(Exception):
    """Base of this adapter's errors; ``retriable`` says whether trying again can help."""

    retriable = False


class BrokerUnavailable(KafkaError):
    """The cluster could not be reached or did not answer in time."""

    retriable = True


class PublishFailed(KafkaError):
    """The broker refused the record (too large, unknown topic, not authorised...)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record sits in the log: the event's durable address, returned to callers as proof.

    ``topic`` is the catalogue name (without the deployment's prefix), as clients see it.
    """

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    """A decoded event with the log coordinates it was read from."""

    event: Event
    position: Position
    key: bytes | None
    headers: Headers
    timestamp_ms: int


class TopicNames:
    """Maps catalogue topic names to the cluster's names (the namespace prefix from settings)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def physical(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def logical(self, physical: str) -> str:
        return physical.removeprefix(self.prefix)

    def of(self, event: Event) -> str:
        return self.physical(topic_for(event).name)


def partition_of_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as aiokafka's and the Java client's) gives
    ``key`` among ``partitions``: where a keyed record lands, computed before sending it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def keys_per_partition(prefix: str, partitions: int) -> tuple[str, ...]:
    """One record key per partition (of ``partitions``), ``prefix-N``, each hashing to its own: the keys
    of markers written to every partition of a topic keyed by something else (a voter, a sender)."""
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < partitions:
        key = f"{prefix}-{n}"
        keys.setdefault(partition_of_key(key.encode(), partitions), key)
        n += 1
    return tuple(keys[p] for p in range(partitions))


def translate(error: BaseException, action: str) -> KafkaError:
    """The one place driver errors become ours."""
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError | asyncio.TimeoutError):
        return BrokerUnavailable(f"{action}: Kafka did not answer ({error!r})")
    if isinstance(error, DriverError) and getattr(error, "retriable", False):
        return BrokerUnavailable(f"{action}: {error!r}")
    return PublishFailed(f"{action}: {error!r}")


def client_options(settings: KafkaSettings, role: str) -> dict[str, Any]:
    """What every client of the platform is given: the brokers, a client id naming its role, timeouts."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-{role}",
        "request_timeout_ms": settings.request_timeout_ms,
    }


class EventPublisher:
    """Encodes events and publishes them with the broker's acknowledgement (idempotent, acks=all).

    Usage::

        async with EventPublisher(settings.kafka, codec, producer="producers.api") as publisher:
            position = await publisher.publish(event)
    """

    def __init__(
        self,
        settings: KafkaSettings,
        codec: EventCodec,
        *,
        producer: str,
        names: TopicNames | None = None,
    ) -> None:
        self._codec = codec
        self._names = names or TopicNames(settings.topic_prefix)
        self.producer_name = producer
        self._producer = AIOKafkaProducer(
            **client_options(settings, producer),
            enable_idempotence=True,
            acks="all",
            compression_type=None if settings.compression == "none" else settings.compression,
            linger_ms=settings.linger_ms,
            max_batch_size=settings.max_batch_size,
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
        except Exception as e:
            await self._producer.stop()
            raise translate(e, "starting producer") from e

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> EventPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def publish(self, event: Event) -> Position:
        """Publish one event to its catalogue topic; returns after the broker's acknowledgement."""
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: Sequence[Event]) -> list[Position]:
        """Send every event first (so they batch), then wait for all acknowledgements, in order."""
        pending = [await self._send(event) for event in events]
        return [await self._acknowledged(future, "publishing") for future in pending]

    async def partitions_of(self, event_type: type[Event]) -> int:
        """How many partitions the catalogue topic of ``event_type`` has (from the cluster's metadata)."""
        return await self.partitions(self._names.physical(topic_for(event_type).name))

    async def partitions(self, topic: str) -> int:
        """How many partitions the physical ``topic`` has (waits for the cluster's metadata)."""
        try:
            return len(await self._producer.partitions_for(topic))
        except Exception as e:
            raise translate(e, f"reading the partitions of {topic}") from e

    async def publish_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Position:
        """Publish already-encoded bytes to a physical topic name (dead letters, internal topics,
        tools, tests); to ``partition`` when given, else where the key hashes."""
        try:
            future = await self._producer.send(
                topic, value, key=key, headers=headers or [], partition=partition
            )
        except Exception as e:
            raise translate(e, f"publishing to {topic}") from e
        return await self._acknowledged(future, f"publishing to {topic}")

    async def _send(self, event: Event) -> asyncio.Future[Any]:
        topic = self._names.of(event)
        try:
            return await self._producer.send(
                topic, self._codec.encode(event), key=partition_key(event), headers=self._codec.headers(event)
            )
        except Exception as e:
            raise translate(e, f"publishing {event.event_type()} to {topic}") from e

    async def _acknowledged(self, future: asyncio.Future[Any], action: str) -> Position:
        try:
            metadata = await future
        except Exception as e:
            raise translate(e, action) from e
        return Position(self._names.logical(metadata.topic), metadata.partition, metadata.offset)


class DeadLetters:
    """Copies records that cannot be decoded to the dead-letter topic, with their headers and the reason."""

    def __init__(self, publisher: EventPublisher, topic: str) -> None:
        self._publisher = publisher
        self.topic = topic
        self.count = 0

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> Position:
        log.warning(
            "undecodable record topic=%s partition=%s offset=%s reason=%s detail=%s -> %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail,
            self.topic,
        )
        headers = [*list(record.headers or ()), *_dead_letter_headers(record, reason, detail)]
        position = await self._publisher.publish_raw(
            self.topic, record.value, key=record.key, headers=headers
        )
        self.count += 1
        return position


class LoggedDeadLetters(DeadLetters):
    """For a reader that does not own its topics (a whole-topic reader on every worker): it logs an
    undecodable record and skips it, since the topic's own consumer dead-letters it once."""

    def __init__(self, reader: str) -> None:  # no publisher: nothing is copied anywhere
        self._reader = reader
        self.topic = ""
        self.count = 0

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> Position:
        log.warning(
            "%s skips an undecodable record topic=%s partition=%s offset=%s: %s",
            self._reader,
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        self.count += 1
        return Position(record.topic, record.partition, record.offset)


def _dead_letter_headers(record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> Headers:
    return [
        ("dlq.reason", reason.encode()),
        ("dlq.detail", detail[:500].encode()),
        ("dlq.topic", record.topic.encode()),
        ("dlq.partition", str(record.partition).encode()),
        ("dlq.offset", str(record.offset).encode()),
    ]


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
        self.topics = [self._names.physical(t) for t in topics]
        self._consumer = AIOKafkaConsumer(
            **client_options(settings, group_id or "reader"),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            isolation_level="read_committed",
        )
        self._consumer.subscribe(self.topics, listener=_SeekOnAssignment(self))

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except Exception as e:
            await self._consumer.stop()
            raise translate(e, f"starting consumer of {self.topics}") from e

    async def stop(self) -> None:
        await self._consumer.stop()

    async def __aenter__(self) -> EventConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def batches(self, timeout_ms: int = 500) -> AsyncIterator[list[ConsumedEvent]]:
        """Yield decoded events a fetch at a time (possibly empty batches, so callers can time out)."""
        while True:
            fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self._max_records)
            batch: list[ConsumedEvent] = []
            for records in fetched.values():
                for record in records:
                    consumed = await self._decode(record)
                    if consumed is not None:
                        batch.append(consumed)
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

    async def _decode(self, record: ConsumerRecord[bytes, bytes]) -> ConsumedEvent | None:
        if record.value is None:
            await self._dead_letters.send(record, "tombstone", "a null value is not an event")
            return None
        try:
            event = self._codec.decode(record.value)
        except DecodeError as e:
            await self._dead_letters.send(record, e.reason, str(e))
            return None
        position = Position(self._names.logical(record.topic), record.partition, record.offset)
        return ConsumedEvent(event, position, record.key, list(record.headers or ()), record.timestamp)


class _SeekOnAssignment(ConsumerRebalanceListener):
    """Seeks newly assigned partitions to the positions the consumer's owner stored."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._consumer._seek_to_stored(assigned)


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as the cluster has it (for `esports topics list`)."""

    name: str
    partitions: int
    exists: bool


class TopicAdmin:
    """Creates the catalogue's topics idempotently and reports what the cluster has."""

    def __init__(self, settings: KafkaSettings, names: TopicNames | None = None) -> None:
        self._settings = settings
        self._names = names or TopicNames(settings.topic_prefix)
        self._admin = AIOKafkaAdminClient(**client_options(settings, "admin"))

    async def __aenter__(self) -> TopicAdmin:
        try:
            await self._admin.start()
        except Exception as e:
            await self._admin.close()
            raise translate(e, "connecting the admin client") from e
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    def new_topic(self, spec: TopicSpec) -> NewTopic:
        return NewTopic(
            self._names.physical(spec.name),
            spec.partitions or self._settings.default_partitions,
            self._settings.replication,
            topic_configs=topic_configs(spec, self._settings),
        )

    async def ensure(self, specs: Iterable[TopicSpec] = CATALOGUE) -> list[str]:
        """Create the topics that do not exist yet; returns the names created (empty when all existed)."""
        wanted = [self.new_topic(spec) for spec in specs]
        try:
            response = await self._admin.create_topics(wanted)
        except Exception as e:
            raise translate(e, "creating topics") from e
        created = []
        for name, code, message in (error[:3] for error in response.topic_errors):
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:
                raise PublishFailed(f"creating topic {name}: error {code} {message}")
        await self._wait_for_leaders(created)
        return created

    async def _wait_for_leaders(self, names: list[str], timeout_s: float = 15.0) -> None:
        """A new topic takes a moment to elect leaders; producing before that only earns retries."""
        deadline = time.monotonic() + timeout_s
        while names and time.monotonic() < deadline:
            described = await self._admin.describe_topics(names)
            if len(described) == len(names) and all(_has_leaders(topic) for topic in described):
                return
            await asyncio.sleep(0.1)

    async def states(self, specs: Iterable[TopicSpec] = CATALOGUE) -> list[TopicState]:
        names = [self._names.physical(spec.name) for spec in specs]
        try:
            existing = set(await self._admin.list_topics())
            described = await self._admin.describe_topics([n for n in names if n in existing])
        except Exception as e:
            raise translate(e, "describing topics") from e
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        return [TopicState(n, partitions.get(n, 0), n in existing) for n in names]

    async def delete(self, physical_names: Sequence[str]) -> None:
        try:
            await self._admin.delete_topics(list(physical_names))
        except Exception as e:
            raise translate(e, "deleting topics") from e


def _has_leaders(described: dict[str, Any]) -> bool:
    """Metadata can list a new topic before its partitions exist: no partitions is not ready."""
    partitions = described.get("partitions") or []
    return (
        bool(partitions) and described.get("error_code", 0) == 0 and all(p["leader"] >= 0 for p in partitions)
    )


def topic_configs(spec: TopicSpec, settings: KafkaSettings) -> dict[str, str]:
    """The per-topic broker configuration the catalogue and the deployment ask for."""
    configs = {"cleanup.policy": spec.cleanup_policy, "min.insync.replicas": str(settings.min_insync)}
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    return configs


async def wait_for_broker(settings: KafkaSettings, timeout_s: float = 30.0) -> None:
    """Wait until the cluster answers a metadata request (start-up ordering without sleeps)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with TopicAdmin(settings) as admin:
                await admin._admin.list_topics()
                return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
