"""The Faust app of the stream processors: built from Settings by :func:`create_app`, never from the
environment (Faust's own settings would otherwise read ``os.environ``).

Agents:

- ``lifecycle``: consumes ``streams`` and ``ingest`` (co-partitioned by stream_id), keeps one
  :class:`~stream_processors.lifecycle.StreamLifecycle` per stream in the ``lifecycle`` table and
  publishes the decisions of :func:`~stream_processors.lifecycle.decide` to ``streams.lifecycle``.
- ``moderation`` (:mod:`stream_processors.moderation_agent`): consumes ``chat.submitted``,
  ``chat.moderation``, ``streams`` and ``ingest``, keeps one chat state per stream in the
  ``moderation`` table and publishes the decisions of :func:`~stream_processors.moderation.decide`
  to ``chat.messages``.
- ``viewer_counts`` (:mod:`stream_processors.viewer_counts_agent`): consumes ``viewers.heartbeats``
  and ``streams``, keeps each stream's sessions (and match) in the ``viewers`` table and publishes
  ``ViewerCountChanged`` to ``viewers.counts`` (at most once a second per stream, on change), with a
  timer expiring sessions; forwards the heartbeats of match streams, keyed by match_id, to the
  internal ``esports-processors-match-heartbeats`` topic.
- ``match_audience`` (:mod:`stream_processors.match_audience_agent`): consumes that topic, keeps each
  match's sessions in the ``match_viewers`` table and publishes ``MatchAudienceChanged`` to
  ``viewers.match_counts`` (a viewer of several streams of a match counted once).
- ``polls`` (:mod:`stream_processors.polls_agent`): consumes ``polls`` (and ``streams`` for each
  stream's owner: with the moderation roster it decides who may open/close polls), keeps each
  stream's polls and votes in the ``polls`` table and publishes ``PollTallyUpdated`` to
  ``polls.tallies`` (at most every 250 ms per poll, on change, and a final tally on close), with a
  timer closing polls at the deadline.
- ``notifications`` (:mod:`stream_processors.notifications_agent`): consumes ``streams``,
  ``streams.lifecycle`` and ``tournaments``, with follows and channel names read whole from ``users``
  and ``channels``, and publishes one ``NotificationIssued`` per follower to ``notifications`` when a
  channel goes live or a tournament's match starts (never twice for one cause).

Records are read raw and decoded with the project's codec; what cannot be decoded goes to the
dead-letter topic. Decisions are published with :class:`infra.kafka.EventPublisher` (idempotent,
``acks=all``), not with Faust's producer, which is idempotent only in its exactly-once mode.
Faust's web server answers ``/health`` and ``/metrics``.
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
from events.topics import spec
from infra.kafka import DeadLetters, EventPublisher, KafkaError, TopicNames
from infra.settings import KafkaSettings, Settings
from stream_processors.consumer import GuardedConsumer, GuardedTransport, SkipReport
from stream_processors.lifecycle import PRODUCER, StreamLifecycle, decide, stream_id_of
from stream_processors.metrics import CONTENT_TYPE, ProcessorMetrics
from stream_processors.redelivery import PublishedDecisions
from stream_processors.topology import LIFECYCLE_OUTPUT, LIFECYCLE_SOURCES, LIFECYCLE_TABLE, app_id

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0


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
        deadletter = TopicNames(self._kafka.topic_prefix).physical(spec("deadletter").name)
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


class LifecycleProcessor:
    """The I/O around :func:`decide`: decode, read the state, decide, publish, then store the state.

    Publishing comes first: a crash between the two re-decides the redelivered cause into the
    identical (same ``event_id``) decision, and a crash after both finds the effect in the state.
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

    async def handle(self, message: Any) -> None:
        """Process one raw record of ``streams`` or ``ingest``."""
        cause = await self._decode(message)
        stream_id = None if cause is None else stream_id_of(cause)
        if cause is None or stream_id is None:
            return
        self._metrics.events[cause.event_type()] += 1
        key = stream_id.encode()
        stored = self._table.get(key)
        state = StreamLifecycle(stream_id=stream_id) if stored is None else StreamLifecycle.from_json(stored)
        try:
            new_state, decisions = decide(state, cause)
        except Exception as e:  # a bug, not bad luck: retrying the same input cannot help
            log.exception("deciding failed topic=%s partition=%s offset=%s", *_where(message))
            await self._dead_letter(message, "processing_failed", repr(e))
            return
        if decisions and not await self._decided_before(cause, message, [str(d.event_id) for d in decisions]):
            await self._publish(decisions, message)
        if new_state != state:
            self._table[key] = new_state.to_json()

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
                *_where(message),
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
            log.debug("skipped topic=%s partition=%s offset=%s: %s", *_where(message), e.reason)
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
                *_where(message),
            )

    async def _dead_letter(self, message: Any, reason: str, detail: str) -> None:
        record = _as_record(message)
        await self._retrying(
            "dead-lettering", lambda: self._publishing.dead_letters.send(record, reason, detail)
        )
        self._metrics.dead_letters[reason] += 1

    async def _retrying(self, action: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Retry with backoff until it succeeds, blocking this partition (never skip a decision)."""
        delay = RETRY_FIRST_S
        while True:
            try:
                result = await attempt()
                self._metrics.publishing_blocked = False
                return result
            except KafkaError as e:
                self._metrics.publish_retries += 1
                self._metrics.publishing_blocked = True
                level = logging.WARNING if e.retriable else logging.ERROR
                log.log(level, "%s failed, retrying in %.1fs: %s", action, delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)


def _where(message: Any) -> tuple[str, int, int]:
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


def faust_options(settings: Settings, partitions: int) -> dict[str, Any]:
    """Every Faust setting the platform sets, from Settings only."""
    kafka = settings.kafka
    return {
        "env": {},  # Faust reads os.environ (BROKER_URL, WEB_PORT, ...) unless told not to
        "broker": [f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        "broker_client_id": f"{kafka.client_id}-processors",
        "autodiscover": False,
        "store": "memory://",  # recovered from the changelog at start; rocksdb is a later option
        "datadir": str(settings.processors.data_dir),
        "topic_allow_declare": False,  # see stream_processors.topology
        "topic_disable_leader": True,  # no __assignor-__leader topic: nothing here needs a leader
        "topic_partitions": partitions,
        "topic_replication_factor": kafka.replication_factor,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",  # a new group must see every cause there is
        "producer_acks": -1,  # the changelog producer: acks=all
        "web_bind": settings.processors.web_host,
        "web_host": settings.processors.web_host,
        "web_port": settings.processors.web_port,
        # Faust's default 60 s session makes a crashed worker's partitions wait a minute for a new
        # owner; the heartbeat must stay well under a third of the session.
        "broker_session_timeout": settings.processors.session_timeout_s,
        "broker_heartbeat_interval": settings.processors.session_timeout_s / 5,
        "web_enabled": True,
        # Every agent acks only after publishing and storing, and every state is replace-by-key, so a
        # record in flight at shutdown or rebalance is simply redelivered. Waiting for it instead hung
        # shutdown for good when several agents share a topic (five read `streams`): a record left in
        # one agent's stream buffer when the fetcher stopped was never acked. The batching agents
        # process what they hold before Faust commits (stream_processors.batching.Batcher).
        "stream_wait_empty": False,
    }


def create_app(
    settings: Settings,
    *,
    partitions: int,
    codec: EventCodec,
    publishing: DecisionPublisher,
    metrics: ProcessorMetrics,
    roster: Any = None,
) -> faust.App:
    """The configured Faust app with its agents, tables and web pages.

    ``roster`` (a started-before-the-app :class:`~stream_processors.moderation_agent.RosterReader`)
    adds the moderation agent; without it the app runs the lifecycle agent only.
    """
    app = ProcessorApp(app_id(settings.kafka), **faust_options(settings, partitions))
    names = TopicNames(settings.kafka.topic_prefix)
    sources = app.topic(*(names.physical(name) for name in LIFECYCLE_SOURCES), partitions=partitions)
    # Keys raw (the stream_id's bytes, like the topics' keys), values JSON (StreamLifecycle.to_json).
    table = app.Table(LIFECYCLE_TABLE, key_type=bytes, partitions=partitions)
    published = read_back(app, settings.kafka, codec, "lifecycle", names.physical(LIFECYCLE_OUTPUT))
    processor = LifecycleProcessor(codec, publishing, table, metrics, published)

    @app.agent(sources, name="lifecycle")
    async def lifecycle(stream: Any) -> None:
        """Decide each stream's lifecycle transitions from its requests and ingest reports."""
        manual = stream.noack()  # acked only once published and stored (at-least-once)
        async for event in manual.events():
            await processor.handle(event.message)
            await manual.ack(event)

    if roster is not None:
        from stream_processors.moderation_agent import chat_limits, register_moderation  # imports this module

        limits = chat_limits(settings.chat)
        register_moderation(
            app, names, partitions, (codec, publishing, metrics), roster, limits, settings.kafka
        )
    from stream_processors.viewer_counts_agent import register_viewer_counts  # imports this module

    register_viewer_counts(app, names, partitions, (codec, publishing, metrics))
    from stream_processors.moderation_roster import ChatRoster
    from stream_processors.polls_agent import register_polls  # imports this module

    # Who may open/close polls: the moderation agent's roster (without one, channel owners only).
    register_polls(
        app, names, partitions, (codec, publishing, metrics), roster.roster if roster else ChatRoster()
    )
    from stream_processors.notifications_agent import register_notifications  # imports this module

    register_notifications(app, names, partitions, (codec, publishing, metrics), settings.kafka)
    _add_pages(app, settings, publishing, metrics)
    report_skips(app, metrics)
    return app


def _add_pages(
    app: faust.App, settings: Settings, publishing: DecisionPublisher, m: ProcessorMetrics
) -> None:
    @app.page("/health")
    async def health(view: Any, request: Any) -> Any:
        """Liveness and readiness, with the Kafka side's state."""
        kafka = {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "publisher": "up" if publishing.up else "down",
            "publishing": "retrying" if m.publishing_blocked else "ok",
            "assigned_partitions": len(app.consumer.assignment()),
            "rebalancing": bool(app.rebalancing),
        }
        ok = publishing.up and not m.publishing_blocked
        return view.json({"status": "ok" if ok else "degraded", "kafka": kafka}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        """Prometheus text exposition of the worker's counters."""
        return view.text(m.render(), content_type=CONTENT_TYPE)
