"""The Kafka adapter every service shares: the idempotent publisher, the decoding consumer, topic admin.

Why the explicit settings: aiokafka's producer defaults to ``acks=1`` without idempotence, which can
lose or duplicate an acknowledged event on a leader change. Every producer here is built with
``enable_idempotence=True`` and ``acks="all"``, and :meth:`EventPublisher.publish` returns only once the
broker has acknowledged the record, so a caller that answers "accepted" never lies.

Driver exceptions are translated into this module's :class:`KafkaError` family at one choke point;
callers branch on ``.retriable``, not on aiokafka types.

A publish may be bounded (``timeout_s``): it then answers in time and says what became of the records
(:class:`NotPublished`: none of them is ever published; :class:`PublishInDoubt`: a broker may still
append some). aiokafka alone cannot bound one: an idempotent producer never expires a batch (it
retries until the broker acknowledges, also after the caller gave up), and ``stop()`` waits for
every batch. See :meth:`EventPublisher.publish_many`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
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
from aiokafka.client import ConnectionGroup
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from aiokafka.errors import KafkaError as DriverError
from aiokafka.partitioner import murmur2
from aiokafka.protocol.admin import ApiVersionRequest

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
# A partition leader that answered (a probe or an acknowledgement) this recently is not probed again
# before a bounded publish: a busy connection proves itself, an idle one is probed every time.
FRESH_ANSWER_S = 0.02


class KafkaError(Exception):
    """Base of this adapter's errors; ``retriable`` says whether trying again can help."""

    retriable = False


class BrokerUnavailable(KafkaError):
    """The cluster could not be reached or did not answer in time."""

    retriable = True


class NotPublished(BrokerUnavailable):
    """A bounded publish ran out of time before any of its records reached a broker: they were taken
    back from the client (or never handed to it), so none of them is published, now or later."""


class PublishInDoubt(BrokerUnavailable):
    """A bounded publish ran out of time after some of its records were written to a broker's socket
    (or acknowledged): a broker that stalled holding them appends them when it resumes. Kafka offers
    no way to take such bytes back (only transactions hide them from read_committed readers)."""


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
    """The one place driver errors become ours (ours pass through unchanged)."""
    if isinstance(error, KafkaError):
        return error
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
            position = await publisher.publish(event, timeout_s=3.0)  # bounded: see publish_many
    """

    def __init__(
        self,
        settings: KafkaSettings,
        codec: EventCodec,
        *,
        producer: str,
        names: TopicNames | None = None,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._names = names or TopicNames(settings.topic_prefix)
        self.producer_name = producer
        self._producer = self._new_producer()
        self._started = False
        self._starting: asyncio.Task[None] | None = None
        self._probes: dict[tuple[int, int], asyncio.Task[Any]] = {}
        self._answered: dict[tuple[int, int], float] = {}  # (producer, node) -> when it last answered
        self._retiring: set[asyncio.Task[None]] = set()

    def _new_producer(self) -> AIOKafkaProducer:
        settings = self._settings
        return AIOKafkaProducer(
            **client_options(settings, self.producer_name),
            enable_idempotence=True,
            acks="all",
            compression_type=None if settings.compression == "none" else settings.compression,
            linger_ms=settings.linger_ms,
            max_batch_size=settings.max_batch_size,
        )

    async def start(self, *, timeout_s: float | None = None) -> None:
        """Connect and obtain the idempotent producer id. With ``timeout_s``, a cluster that does not
        answer in time raises :class:`BrokerUnavailable`; the attempt goes on in the background and a
        bounded publish waits for it (or makes another)."""
        try:
            await asyncio.wait_for(self._start_attempt(), timeout_s)
        except Exception as e:
            raise translate(e, "starting producer") from e

    def _start_attempt(self) -> asyncio.Future[None]:
        """The start of the current producer, shared by every caller; a new one after a failure."""
        if self._starting is None or (self._starting.done() and not self._started):
            self._starting = asyncio.create_task(self._start_producer(self._producer))
            self._starting.add_done_callback(_retrieved)
        return asyncio.shield(self._starting)

    async def _start_producer(self, producer: AIOKafkaProducer) -> None:
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            if producer is self._producer:  # an aiokafka producer does not start twice
                self._producer = self._new_producer()
            raise
        self._started = producer is self._producer

    async def _started_producer(self) -> AIOKafkaProducer:
        while not self._started:
            await self._start_attempt()
        return self._producer

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        for task in [*self._probes.values(), *self._retiring]:
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self._producer.stop()

    async def __aenter__(self) -> EventPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def publish(self, event: Event, *, timeout_s: float | None = None) -> Position:
        """Publish one event to its catalogue topic; returns after the broker's acknowledgement."""
        return (await self.publish_many([event], timeout_s=timeout_s))[0]

    async def publish_many(
        self, events: Sequence[Event], *, timeout_s: float | None = None
    ) -> list[Position]:
        """Send every event first (so they batch), then wait for all acknowledgements, in order.

        Without ``timeout_s`` this waits as long as it takes. With it, it returns or raises within
        ``timeout_s``: the records are handed to aiokafka only once the leader of each one's partition
        has just answered a request (so nothing is queued for a broker that is down or stalled); at the
        deadline, records aiokafka has not put in a produce request yet are taken back
        (:class:`NotPublished`), and if some are already on the wire the producer is retired (its
        queue dropped, its connections cut, a new producer id next time) and the error is
        :class:`PublishInDoubt`.
        """
        if timeout_s is not None:
            return await self._publish_within(events, timeout_s)
        pending = [await self._send(event) for event in events]
        return [await self._acknowledged(future, "publishing") for future in pending]

    async def check(self, timeout_s: float) -> None:
        """Raise :class:`BrokerUnavailable` unless a bounded publish could go ahead now: the producer is
        started and every broker of the cluster's metadata answers within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                producer = await self._started_producer()
                nodes = {broker.nodeId for broker in producer.client.cluster.brokers()}
                await asyncio.gather(*(self._probe(producer, node) for node in nodes))
        except TimeoutError:
            raise BrokerUnavailable(f"Kafka did not answer within {timeout_s:g}s") from None
        except Exception as e:
            raise translate(e, "checking the brokers") from e

    async def partitions_of(self, event_type: type[Event]) -> int:
        """How many partitions the catalogue topic of ``event_type`` has (from the cluster's metadata)."""
        return await self.partitions(self._names.physical(topic_for(event_type).name))

    async def partitions(self, topic: str) -> int:
        """How many partitions the physical ``topic`` has (waits for the cluster's metadata)."""
        try:
            return len(await (await self._started_producer()).partitions_for(topic))
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
            future = await (await self._started_producer()).send(
                topic, value, key=key, headers=headers or [], partition=partition
            )
        except Exception as e:
            raise translate(e, f"publishing to {topic}") from e
        return await self._acknowledged(future, f"publishing to {topic}")

    async def _send(self, event: Event) -> asyncio.Future[Any]:
        topic = self._names.of(event)
        try:
            return await (await self._started_producer()).send(
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

    # --- bounded publishing ------------------------------------------------------------------------

    async def _publish_within(self, events: Sequence[Event], timeout_s: float) -> list[Position]:
        futures: list[asyncio.Future[Any]]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        producer, futures = self._producer, []
        try:
            async with asyncio.timeout_at(deadline):
                producer = await self._started_producer()
                leaders = await self._hand_over(producer, events, futures)
        except Exception as e:
            if futures:  # a later record could not be handed over: the command goes all or nothing
                raise self._withdraw(producer, futures, timeout_s) from e
            if isinstance(e, TimeoutError):
                raise NotPublished(f"Kafka did not answer within {timeout_s:g}s; nothing was sent") from None
            error = _nothing_sent(e)
            if error is e:
                raise
            raise error from e
        await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
        if not all(future.done() for future in futures):
            raise self._withdraw(producer, futures, timeout_s)
        failed = [future.exception() for future in futures if future.exception() is not None]
        if failed and len(failed) < len(futures):
            raise PublishInDoubt(f"{len(futures) - len(failed)} of {len(futures)} records were published")
        if failed:
            raise translate(failed[0], "publishing")  # type: ignore[arg-type]
        for node in leaders:
            self._answered[(id(producer), node)] = loop.time()
        return [self._position(future.result()) for future in futures]

    async def _hand_over(
        self, producer: AIOKafkaProducer, events: Sequence[Event], futures: list[asyncio.Future[Any]]
    ) -> set[int]:
        """Probe the leaders of the events' partitions, then give the records to aiokafka; returns the
        leaders."""
        records = [
            (self._names.of(e), self._codec.encode(e), partition_key(e), self._codec.headers(e))
            for e in events
        ]
        targets = [await _partition_for(producer, topic, key) for topic, _, key, _ in records]
        leaders = await self._leaders_answer(producer, set(targets))
        for (topic, value, key, headers), target in zip(records, targets, strict=True):
            futures.append(
                await producer.send(topic, value, key=key, headers=headers, partition=target.partition)
            )
        return leaders

    async def _leaders_answer(self, producer: AIOKafkaProducer, targets: set[TopicPartition]) -> set[int]:
        """Return (the leaders) once the leader of every target partition has answered a request just now
        (within :data:`FRESH_ANSWER_S`)."""
        cluster = producer.client.cluster
        leaders = {cluster.leader_for_partition(tp) for tp in targets}
        while None in leaders or -1 in leaders:  # a leader being elected: wait for it (bounded by the caller)
            await producer.client.force_metadata_update()
            await asyncio.sleep(0.05)
            leaders = {cluster.leader_for_partition(tp) for tp in targets}
        now = asyncio.get_running_loop().time()
        stale = [
            node
            for node in leaders
            if now - self._answered.get((id(producer), node), -math.inf) > FRESH_ANSWER_S
            or not _connected(producer, node)  # a broker that died just now: probed, so it fails at once
        ]
        await asyncio.gather(*(self._probe(producer, node) for node in stale))
        return leaders

    async def _probe(self, producer: AIOKafkaProducer, node: int) -> None:
        """An ApiVersions round trip to ``node`` on the producer's connection; callers arriving while one
        is in flight share it (its answer comes after they arrived, which is what they need to know)."""
        key = (id(producer), node)
        probe = self._probes.get(key)
        if probe is None:
            probe = self._probes[key] = asyncio.create_task(producer.client.send(node, ApiVersionRequest()))
            probe.add_done_callback(functools.partial(self._probe_done, key))
        try:
            await asyncio.shield(probe)
        except DriverError as e:
            raise NotPublished(f"broker {node} did not answer ({e!r}); nothing was sent") from e

    def _probe_done(self, key: tuple[int, int], probe: asyncio.Task[Any]) -> None:
        self._probes.pop(key, None)
        _retrieved(probe)
        if not probe.cancelled() and probe.exception() is None:
            self._answered[key] = asyncio.get_running_loop().time()

    def _withdraw(
        self, producer: AIOKafkaProducer, futures: list[asyncio.Future[Any]], timeout_s: float
    ) -> KafkaError:
        """At the deadline: take the command's records back, or retire the producer if some may be out."""
        unacknowledged = [future for future in futures if not future.done()]
        taken_back = _take_back(producer, unacknowledged)
        if not taken_back:
            self._retire(producer)
        if taken_back and not any(_acknowledged(future) for future in futures):
            return NotPublished(
                f"Kafka did not acknowledge within {timeout_s:g}s; the records were taken back before "
                "reaching a broker"
            )
        log.warning("publish in doubt after %gs: %s records may still be appended", timeout_s, len(futures))
        return PublishInDoubt(
            f"Kafka did not acknowledge within {timeout_s:g}s after some records were sent; a broker that "
            "stalled holding them may still append them"
        )

    def _retire(self, producer: AIOKafkaProducer) -> None:
        """Never send anything more through ``producer``; the next publish starts a fresh one (a new
        producer id: the sequence numbers of this one have a gap now)."""
        if producer is not self._producer:
            return  # retired already
        self._producer, self._started, self._starting = self._new_producer(), False, None
        self._answered.clear()
        _fail_queued(producer)
        task = asyncio.create_task(_tear_down(producer, self._settings.request_timeout_ms / 1000))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _position(self, metadata: Any) -> Position:
        return Position(self._names.logical(metadata.topic), metadata.partition, metadata.offset)


async def _partition_for(producer: AIOKafkaProducer, topic: str, key: bytes | None) -> TopicPartition:
    """The partition aiokafka's default partitioner would choose (chosen here so it can be probed first)."""
    partitions = sorted(await producer.partitions_for(topic))
    if key is None:
        return TopicPartition(topic, random.choice(partitions))
    return TopicPartition(topic, partitions[partition_of_key(key, len(partitions))])


def _nothing_sent(error: Exception) -> KafkaError:
    """A failure before any record was handed to aiokafka, as ours (retriable ones: NotPublished)."""
    ours = translate(error, "publishing")
    if ours.retriable and not isinstance(ours, NotPublished):
        return NotPublished(f"{ours}; nothing was sent")
    return ours


def _acknowledged(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A done callback: mark a background failure as seen (its waiters, if any, got their own copy)."""
    if not task.cancelled():
        task.exception()


# --- what bounded publishing relies on in aiokafka 0.14's producer internals (pinned in pyproject;
# tests/unit/test_publish_deadline.py fails if they change). The client keeps its connections in `_conns`
# by (node, group). The accumulator keeps, per partition, a queue
# of batches (`_batches`); the sender drains a batch into a produce request, which gives it its
# idempotent sequence numbers and makes `retry_count` 1 (0 = never drained, never on the wire); drained
# batches in flight sit in `_pending_batches`; each batch holds its records' futures (`_msg_futures`).


def _connected(producer: AIOKafkaProducer, node: int) -> bool:
    """Whether the producer's connection to ``node`` is up (closed as soon as the broker's host resets it)."""
    connection = producer.client._conns.get((node, ConnectionGroup.DEFAULT))
    return connection is not None and connection.connected()


def _take_back(producer: AIOKafkaProducer, futures: Sequence[asyncio.Future[Any]]) -> bool:
    """Remove the batches holding ``futures`` from the accumulator if none was drained yet (and fail them
    as NotPublished: other records in them were never sent either); True if all were removed."""
    accumulator = producer._message_accumulator
    wanted = {id(future) for future in futures}
    holding = [
        (tp, batch)
        for tp, queue in accumulator._batches.items()
        for batch in queue
        if any(id(future) in wanted for future, _ in batch._msg_futures)
    ]
    found = sum(1 for _, batch in holding for future, _ in batch._msg_futures if id(future) in wanted)
    if found < len(wanted) or any(batch.retry_count for _, batch in holding):
        return False
    for tp, batch in holding:
        queue = accumulator._batches[tp]
        queue.remove(batch)
        if not queue:
            del accumulator._batches[tp]
        _fail(batch, NotPublished("taken back at a publish deadline, never sent"))
    return True


def _fail_queued(producer: AIOKafkaProducer) -> None:
    """Empty a retired producer's queue (never-drained batches: NotPublished; re-queued ones: in doubt)
    and refuse new records."""
    accumulator = producer._message_accumulator
    for queue in accumulator._batches.values():
        for batch in queue:
            if batch.retry_count:  # drained once: aiokafka's callback removes it from the in-flight set
                accumulator._pending_batches.add(batch)
            _fail(batch, NotPublished("retired") if batch.retry_count == 0 else PublishInDoubt("retired"))
    accumulator._batches.clear()
    accumulator._exception = NotPublished("this producer was retired after a publish deadline")


def _fail(batch: Any, error: KafkaError) -> None:
    """Fail a batch's records; their waiters (if any are left) get the error, nobody else is warned."""
    batch.failure(error)
    for future in [batch._drain_waiter, *(future for future, _ in batch._msg_futures)]:
        _retrieved(future)


async def _tear_down(producer: AIOKafkaProducer, grace_s: float) -> None:
    """Stop a retired producer's sender, then cut its connections (RST: bytes the broker's host has not
    acknowledged are dropped, not delivered later), let in-flight requests fail, close it."""
    sender = producer._sender.sender_task
    try:
        if sender is not None:
            sender.cancel()
        for connection in list(producer.client._conns.values()):
            writer = connection._writer
            if writer is not None:
                writer.transport.abort()
            connection.close()
        if sender is not None:
            await asyncio.wait([sender], timeout=grace_s)
    finally:
        if sender is not None and not sender.done():
            sender.cancel()
        _fail_queued(producer)
        for batch in list(producer._message_accumulator._pending_batches):
            _fail(batch, PublishInDoubt("retired while in flight"))
        producer._closed = True
        with contextlib.suppress(Exception):
            await producer.client.close()


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
