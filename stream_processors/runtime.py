"""The runtime under every agent: the decision publisher, the processor base, the guarded Faust app,
the read-back of published decisions and the registration of a batched agent with its tick.

Agents import this module; only the composition root (:mod:`stream_processors.app`) imports the agents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import faust
from aiokafka.structs import ConsumerRecord
from mode import Service

from events.base import Event
from events.codec import DecodeError, EventCodec
from events.topics import Topic, spec
from infra.kafka import (
    BrokerUnavailable,
    DeadLetters,
    EventConsumer,
    EventPublisher,
    KafkaError,
    LoggedDeadLetters,
    TopicNames,
)
from infra.settings import KafkaSettings
from stream_processors.batching import Batcher, BatchProcessor
from stream_processors.consumer import GuardedConsumer, GuardedTransport, SkipReport
from stream_processors.lifecycle.decisions import PRODUCER
from stream_processors.metrics import ProcessorMetrics
from stream_processors.redelivery import PublishedDecisions

__all__ = [
    "DecisionPublisher",
    "Processor",
    "ProcessorApp",
    "WholeTopicReader",
    "read_back",
    "register_batched",
    "report_skips",
    "retrying",
    "where",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
CATCH_UP_TIMEOUT_S = 30.0  # a whole-topic reader starts anyway after this long (and says so)
FOLLOW_RETRY_FIRST_S, FOLLOW_RETRY_MAX_S = 0.5, 10.0  # a whole-topic reader's backoff after a failed fetch


class DecisionPublisher(Service):
    """Owns the idempotent, acks=all publisher of decisions and dead letters.

    Given to the Faust worker before the app, so it starts before any agent and stops after them.
    """

    def __init__(self, kafka: KafkaSettings, codec: EventCodec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kafka = kafka
        self._codec = codec
        self._publisher: EventPublisher | None = None
        self._dead_letters: DeadLetters | None = None

    async def on_start(self) -> None:
        publisher = EventPublisher(self._kafka, self._codec, producer=PRODUCER)
        await publisher.start()
        deadletter = TopicNames(self._kafka.topic_prefix).physical(spec(Topic.DEADLETTER).name)
        self._publisher, self._dead_letters = publisher, DeadLetters(publisher, deadletter)

    async def on_stop(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None

    @property
    def up(self) -> bool:
        return self._publisher is not None

    @property
    def publisher(self) -> EventPublisher:
        if self._publisher is None:
            raise RuntimeError("the decision publisher is not started")
        return self._publisher

    @property
    def dead_letters(self) -> DeadLetters:
        if self._dead_letters is None:
            raise RuntimeError("the decision publisher is not started")
        return self._dead_letters


class WholeTopicReader(Service):
    """Reads catalogue ``topics`` whole, without a consumer group, into memory (:meth:`apply`): to
    the end offsets they had at start before the service counts as started (at most
    :data:`CATCH_UP_TIMEOUT_S`), then follows them. What every worker needs entire, whatever partitions
    it owns (rosters, matches)."""

    def __init__(
        self, kafka: KafkaSettings, codec: EventCodec, topics: Sequence[str], what: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._kafka = kafka
        self._codec = codec
        self._topics = list(topics)
        self._what = what
        self._consumer: EventConsumer | None = None
        self._following: asyncio.Future[None] | None = None

    def apply(self, event: Event) -> None:
        raise NotImplementedError

    def summary(self) -> str:
        """What was read, for the log line once the end is reached."""
        return ""

    async def on_start(self) -> None:
        self._consumer = EventConsumer(  # aiokafka wants a running loop: built here, not in __init__
            self._kafka,
            self._codec,
            topics=self._topics,
            group_id=None,
            dead_letters=LoggedDeadLetters(self._what),
            names=TopicNames(self._kafka.topic_prefix),
            from_beginning=True,
        )
        await self._consumer.start()
        self._following = asyncio.ensure_future(self._follow(self._consumer.batches(timeout_ms=200)))
        try:
            await asyncio.wait_for(self._catch_up(self._consumer), CATCH_UP_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "%s: still reading %s after %ss; starting anyway",
                self._what,
                self._topics,
                CATCH_UP_TIMEOUT_S,
            )
        except BrokerUnavailable as e:  # the end offsets unknown: reading goes on, as after a timeout
            log.warning("%s: %s; starting anyway", self._what, e)

    async def on_stop(self) -> None:
        if self._following is not None:  # before the consumer stops under it
            self._following.cancel()
            await asyncio.gather(self._following, return_exceptions=True)
            self._following = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _catch_up(self, consumer: EventConsumer) -> None:
        await consumer.reach(await consumer.catch_up())
        log.info("%s caught up: %s", self._what, self.summary())

    async def _follow(self, batches: Any) -> None:
        """Follow the topics for good: a failed fetch (a broker killed, a leader moving) is retried
        from the consumer's positions, never the end of the reader (everything it feeds would go
        stale without a word: a poll opened later unknown to the vote workers, for one)."""
        delay = FOLLOW_RETRY_FIRST_S
        while True:
            try:
                async for batch in batches:
                    self._apply(batch)
                    delay = FOLLOW_RETRY_FIRST_S
                return
            except Exception as e:  # aiokafka's errors and ours alike; a cancel still stops it
                log.warning("%s reader: %r; reading on in %.1fs", self._what, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, FOLLOW_RETRY_MAX_S)
                assert self._consumer is not None
                batches = self._consumer.batches(timeout_ms=200)

    def _apply(self, batch: Sequence[Any]) -> None:
        for consumed in batch:
            self.apply(consumed.event)


class Processor:
    """The I/O every agent shares around its pure decisions: decode (dead-lettering what cannot be),
    publish with retries that block the partition, and skip a redelivered cause already decided.

    Agents decide, publish, then store their state, then ack: a crash between publishing and storing
    re-decides the redelivered cause into the identical (same ``event_id``) decision, which
    :meth:`_decided_before` finds on the output; a crash after both finds the effect in the state.
    """

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        published: PublishedDecisions | None = None,
    ) -> None:
        """``published`` reads the agent's output back after a rebalance (see ``_decided_before``)."""
        self._codec = codec
        self._publishing = publishing
        self._table = table
        self._metrics = metrics
        self._published = published

    async def _decided_before(self, cause: Event, message: Any, ids: Sequence[str]) -> bool:
        """Whether a decision of this redelivered cause (one of ``ids``) is already on the output: a
        killed worker published it, but its state or offset never got stored."""
        published = self._published
        if published is None or not message.timestamp:
            return False
        since_ms = int(message.timestamp * 1000)
        seen = await self._retrying(
            "reading back decisions", lambda: published.seen(message.partition, since_ms, ids)
        )
        if seen:
            self._metrics.redelivered_decided[published.agent] += 1
            log.info(
                "already decided, not again: %s event_id=%s topic=%s partition=%s offset=%s",
                cause.event_type(),
                cause.event_id,
                *where(message),
            )
        return seen

    async def _decode(self, message: Any) -> Event | None:
        if message.value is None:
            await self._dead_letter(message, "tombstone", "a null value is not an event")
            return None
        try:
            return self._codec.decode(message.value)
        except DecodeError as e:
            await self._dead_letter(message, e.reason, str(e))
            return None

    def _decode_quietly(self, message: Any) -> Event | None:
        """Decode a record of a topic another agent dead-letters (``streams`` and ``ingest`` belong to
        the lifecycle agent): a bad one is skipped with a debug line, never dead-lettered twice."""
        if message.value is None:
            return None
        try:
            return self._codec.decode(message.value)
        except DecodeError as e:
            log.debug("skipped topic=%s partition=%s offset=%s: %s", *where(message), e.reason)
            return None

    async def _publish(self, decisions: Sequence[Event], message: Any) -> None:
        await self._retrying(
            "publishing decisions", lambda: self._publishing.publisher.publish_many(decisions)
        )
        for decision in decisions:
            self._metrics.decisions[decision.event_type()] += 1
            log.info(
                "decided %s event_id=%s cause topic=%s partition=%s offset=%s",
                decision.event_type(),
                decision.event_id,
                *where(message),
            )

    async def _dead_letter(self, message: Any, reason: str, detail: str) -> None:
        record = _as_record(message)
        await self._retrying(
            "dead-lettering", lambda: self._publishing.dead_letters.send(record, reason, detail)
        )
        self._metrics.dead_letters[reason] += 1

    async def _retrying(self, action: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await retrying(action, attempt, self._metrics)


async def retrying(action: str, attempt: Callable[[], Awaitable[T]], metrics: ProcessorMetrics) -> T:
    """Retry with backoff until it succeeds, blocking the caller's partition (never skip a decision)."""
    delay = RETRY_FIRST_S
    while True:
        try:
            result = await attempt()
            metrics.publishing_blocked = False
            return result
        except KafkaError as e:
            metrics.publish_retries += 1
            metrics.publishing_blocked = True
            level = logging.WARNING if e.retriable else logging.ERROR
            log.log(level, "%s failed, retrying in %.1fs: %s", action, delay, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)


def where(message: Any) -> tuple[str, int, int]:
    return message.topic, message.partition, message.offset


def _as_record(message: Any) -> ConsumerRecord[bytes, bytes]:
    """Faust's message as the aiokafka record the shared dead-letter writer takes."""
    return ConsumerRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp=int((message.timestamp or 0) * 1000),
        timestamp_type=message.timestamp_type or 0,
        key=message.key,
        value=message.value,
        checksum=None,
        serialized_key_size=message.serialized_key_size or 0,
        serialized_value_size=message.serialized_value_size or 0,
        headers=list(message.headers or ()),
    )


class ProcessorApp(faust.App):
    """Faust's app on :class:`~stream_processors.consumer.GuardedTransport` (the seek race closed)."""

    on_skipped: SkipReport | None = None  # told of records a commit moved past unacknowledged

    def _new_transport(self) -> Any:
        return GuardedTransport(self.conf.broker_consumer, self)

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        if isinstance(consumer, GuardedConsumer):
            consumer.on_skipped = self.on_skipped
        return consumer


def report_skips(app: ProcessorApp, metrics: ProcessorMetrics) -> None:
    """Count records a commit moved past unacknowledged, for every agent reading their topic."""

    def skipped(tp: Any, start: int, end: int, count: int) -> None:
        for name, agent in app.agents.items():
            if tp.topic in getattr(agent.channel, "topics", ()):
                metrics.skipped[name.rsplit(".", 1)[-1]] += count

    app.on_skipped = skipped


def read_back(
    app: faust.App, kafka: KafkaSettings, codec: EventCodec, agent: str, topic: str
) -> PublishedDecisions:
    """The read-back of ``agent``'s output ``topic`` (co-partitioned with its sources), closed at stop."""
    published = PublishedDecisions(kafka, codec, topic, lambda: int(app.consumer_generation_id), agent=agent)

    async def close(sender: Any, **kwargs: Any) -> None:
        await published.stop()

    shutdown: Any = app.on_before_shutdown  # sent once the consumer has stopped (mode's typing is narrower)
    shutdown.connect(close)
    return published


def register_batched(
    app: faust.App,
    source: Any,
    name: str,
    processor: BatchProcessor,
    *,
    batch: tuple[int, float],
    tick_s: float,
    tick: Callable[[list[Any]], Awaitable[None]],
    tick_topic: str,
) -> None:
    """Add agent ``name`` reading ``source`` in ack-after-store batches (``batch``: at most so many
    records, or what arrived within so many seconds; see :class:`~stream_processors.batching.Batcher`),
    and its timer, which hands ``tick`` the owned partitions of ``tick_topic`` every ``tick_s``
    (not while rebalancing): counts expire and polls close also when no record arrives."""
    max_records, within_s = batch
    batcher = Batcher(processor, max_records=max_records, within_s=within_s, app=app)

    async def agent(stream: Any) -> None:
        manual = stream.noack()  # acked by the batcher, only once a batch is published and stored
        async for event in manual.events():
            await batcher.add(manual, event)

    async def timer() -> None:
        if not app.rebalancing:
            await tick([tp for tp in app.consumer.assignment() if tp.topic == tick_topic])

    app.agent(source, name=name)(agent)
    app.timer(tick_s, name=f"{name}_tick")(timer)
