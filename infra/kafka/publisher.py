"""The idempotent publisher every service shares: :class:`EventPublisher`.

Why the explicit settings: aiokafka's producer defaults to ``acks=1`` without idempotence, which can
lose or duplicate an acknowledged event on a leader change. Every producer here is built with
``enable_idempotence=True`` and ``acks="all"``, and :meth:`EventPublisher.publish` returns only once the
broker has acknowledged the record, so a caller that answers "accepted" never lies.

A publish may be bounded (``timeout_s``): it then answers in time and says what became of the records
(:class:`~infra.kafka.errors.NotPublished`: none of them is ever published;
:class:`~infra.kafka.errors.PublishInDoubt`: a broker may still append some). aiokafka alone cannot
bound one: an idempotent producer never expires a batch (it retries until the broker acknowledges, also
after the caller gave up), and ``stop()`` waits for every batch. See :meth:`EventPublisher.publish_many`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError as DriverError
from aiokafka.protocol.admin import ApiVersionRequest

from events.base import Event
from events.codec import EventCodec
from events.topics import partition_key, topic_for
from infra.kafka.aiokafka_internals import connected, fail_queued, retrieved, take_back, tear_down
from infra.kafka.errors import BrokerUnavailable, KafkaError, NotPublished, PublishInDoubt, translate
from infra.kafka.names import Headers, Position, TopicNames, client_options, partition_of_key
from infra.settings import KafkaSettings

__all__ = ["FRESH_ANSWER_S", "EventPublisher"]

log = logging.getLogger(__name__)

# A publish_many of this many events or more builds its own record batches (see _send_batched); fewer
# go a record at a time, so aiokafka's linger can group them with other callers' records.
OWN_BATCHES_FROM = 8

# A partition leader that answered (a probe or an acknowledgement) this recently is not probed again
# before a bounded publish: a busy connection proves itself, an idle one is probed every time.
FRESH_ANSWER_S = 0.02


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
            self._starting.add_done_callback(retrieved)
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
        return await self._acknowledged_all(await self._send_all(events))

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

    async def _send_all(self, events: Sequence[Event]) -> list[_Sent]:
        """Hand every event to aiokafka: a call of :data:`OWN_BATCHES_FROM` events or more in batches
        built here, a smaller one a record at a time (aiokafka's linger then groups it with others)."""
        producer = self._producer if self._started else await self._started_producer()
        try:
            if len(events) >= OWN_BATCHES_FROM:
                return await self._send_batched(producer, events)
            return [_Sent(await self._send_one(producer, event), None) for event in events]
        except KafkaError:
            raise
        except Exception as e:
            raise translate(e, f"publishing {len(events)} events") from e

    async def _send_one(self, producer: AIOKafkaProducer, event: Event) -> asyncio.Future[Any]:
        topic, key = self._names.of(event), partition_key(event)
        value, headers = self._codec.encode(event), self._codec.headers(event)
        partition = _known_partition(producer, topic, key)
        return await producer.send(topic, value, key=key, headers=headers, partition=partition)

    async def _send_batched(self, producer: AIOKafkaProducer, events: Sequence[Event]) -> list[_Sent]:
        """Encode the events into record batches of their partitions (aiokafka's builder, compressed and
        given the idempotent sequence when drained), then queue each batch: one future per batch, not
        per record, and no per-record await. A partition's records keep their order; an event's offset
        is its batch's base offset plus its place in it."""
        encode, headers_of, names = self._codec.encode, self._codec.headers, self._names
        by_partition: dict[tuple[str, int], list[_Record]] = {}
        for index, event in enumerate(events):
            topic, key = names.of(event), partition_key(event)
            partition = _known_partition(producer, topic, key)
            if partition is None:  # unkeyed, or the topic's metadata not known yet
                partition = await _any_partition(producer, topic, key)
            by_partition.setdefault((topic, partition), []).append(
                (index, key, encode(event), headers_of(event))
            )
        sent: list[_Sent | None] = [None] * len(events)
        for (topic, partition), records in by_partition.items():
            for index, handed in await _queue_batches(producer, topic, partition, records):
                sent[index] = handed
        return [s for s in sent if s is not None]

    async def _acknowledged_all(self, pending: list[_Sent]) -> list[Position]:
        """The positions, in order, once every record is acknowledged (most are by the time the last is)."""
        positions = []
        for future, place in pending:
            try:
                metadata = await future
            except Exception as e:
                raise translate(e, "publishing") from e
            offset = metadata.offset if place is None else metadata.offset + place
            positions.append(Position(self._names.logical(metadata.topic), metadata.partition, offset))
        return positions

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
            or not connected(producer, node)  # a broker that died just now: probed, so it fails at once
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
        retrieved(probe)
        if not probe.cancelled() and probe.exception() is None:
            self._answered[key] = asyncio.get_running_loop().time()

    def _withdraw(
        self, producer: AIOKafkaProducer, futures: list[asyncio.Future[Any]], timeout_s: float
    ) -> KafkaError:
        """At the deadline: take the command's records back, or retire the producer if some may be out."""
        unacknowledged = [future for future in futures if not future.done()]
        taken_back = take_back(producer, unacknowledged)
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
        fail_queued(producer)
        task = asyncio.create_task(tear_down(producer, self._settings.request_timeout_ms / 1000))
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


_Record = tuple[int, bytes | None, bytes, Headers]  # (index in the call, key, value, headers)


async def _queue_batches(
    producer: AIOKafkaProducer, topic: str, partition: int, records: list[_Record]
) -> list[tuple[int, _Sent]]:
    """Fill batches of one partition with ``records`` in order and queue each once full (or at the end)."""
    handed: list[tuple[int, _Sent]] = []
    batch, waiting = producer.create_batch(), list[int]()

    async def queue() -> None:
        future = await producer.send_batch(batch, topic, partition=partition)
        handed.extend((index, _Sent(future, place)) for place, index in enumerate(waiting))

    for index, key, value, headers in records:
        if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
            if waiting:  # full: queue it, start the next
                await queue()
                batch, waiting = producer.create_batch(), []
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                # larger than a whole batch: aiokafka's send sizes a batch for it (queued after the last)
                future = await producer.send(topic, value, key=key, headers=headers, partition=partition)
                handed.append((index, _Sent(future, None)))
                continue
        waiting.append(index)
    if waiting:
        await queue()
    return handed


class _Sent(NamedTuple):
    """A record handed to aiokafka: the future of its batch and its place in it (None: its own future)."""

    future: asyncio.Future[Any]
    place: int | None


async def _any_partition(producer: AIOKafkaProducer, topic: str, key: bytes | None) -> int:
    """The partition of a record :func:`_known_partition` could not place (waits for the metadata)."""
    return (await _partition_for(producer, topic, key)).partition


def _known_partition(producer: AIOKafkaProducer, topic: str, key: bytes | None) -> int | None:
    """Where aiokafka's default partitioner would put a keyed record, from the cached hash of its key
    (:func:`partition_of_key`); None (aiokafka chooses) for an unkeyed record or before the topic's
    metadata is known."""
    partitions = producer.client.cluster.partitions_for_topic(topic) if key is not None else None
    return partition_of_key(key, len(partitions)) if key is not None and partitions else None


def _nothing_sent(error: Exception) -> KafkaError:
    """A failure before any record was handed to aiokafka, as ours (retriable ones: NotPublished)."""
    ours = translate(error, "publishing")
    if ours.retriable and not isinstance(ours, NotPublished):
        return NotPublished(f"{ours}; nothing was sent")
    return ours


def _acknowledged(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
