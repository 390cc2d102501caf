"""The notifications agent: the I/O around :func:`stream_processors.notifications.notifier.decide`.

Consumes ``streams`` (titles), ``streams.lifecycle`` (StreamWentLive), both keyed by ``stream_id``, and
``tournaments`` (names, matches, MatchStarted), keyed by ``tournament_id``, into the ``notifications``
table (one :class:`~stream_processors.notifications.notifier.Notifier` per stream or tournament; stored with
the partition of the record being processed, which a stream's or tournament's records always share).
Decisions go to ``notifications`` with the idempotent publisher in batches of :data:`PUBLISH_BATCH`:
publish first, then store the notifier, then ack (the lifecycle agent's order). A crash before the
store re-decides the redelivered cause into the same notification ids; a crash after it finds the
cause among the notifier's decided causes and issues nothing.

Follows and channel names come from ``users`` and ``channels`` (keyed by user and channel, so not
co-partitioned): every worker reads both whole with :class:`AudienceReader`, a consumer without a
group. Before deciding a cause, the agent waits until the reader has applied both topics up to the
end offsets they had *at that moment* (:meth:`AudienceService.caught_up`, with the
:class:`~infra.kafka.CatchUp` every whole-topic reader uses): a follow acknowledged before the cause
was read is then always known. (The moderation roster only waits for the end once, at start; a
go-live needs the follows of right now.) End offsets read after the cause was written serve every
cause written before them: asking the broker for each cause cost half a second each (the request
waits behind the reader's long-poll fetch), and a worker catching up on a backlog of causes held up
every agent sharing its topics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import faust
from mode import Service

from events.base import Event, utc_now
from events.codec import EventCodec
from events.notifications import NotificationIssued
from events.streams import StreamWentLive
from events.tournaments import MatchStarted
from infra.kafka import CatchUp, EventConsumer, LoggedDeadLetters, TopicNames
from infra.settings import KafkaSettings
from stream_processors.metrics import ProcessorMetrics
from stream_processors.notifications.notifier import Audience, Notifier, decide, notifier_key
from stream_processors.runtime import DecisionPublisher, Processor, where
from stream_processors.topology import NOTIFICATIONS_SOURCES, NOTIFICATIONS_TABLE, WHOLE_SOURCES

__all__ = [
    "AUDIENCE_TOPICS",
    "PUBLISH_BATCH",
    "AudienceReader",
    "AudienceService",
    "NotificationProcessor",
    "register_notifications",
]

log = logging.getLogger(__name__)

AUDIENCE_TOPICS = WHOLE_SOURCES
PUBLISH_BATCH = 500  # notifications sent before awaiting their acknowledgements
CATCH_UP_WARN_S = 30.0
RETRY_S = 1.0


class AudienceReader(EventConsumer):
    """A group-less reader of ``users`` and ``channels`` from the beginning."""

    def __init__(self, kafka: KafkaSettings, codec: EventCodec) -> None:
        super().__init__(
            kafka,
            codec,
            topics=AUDIENCE_TOPICS,
            group_id=None,
            dead_letters=LoggedDeadLetters("audience"),
            names=TopicNames(kafka.topic_prefix),
            from_beginning=True,
        )


class AudienceService(Service):
    """Keeps an :class:`Audience` of ``users`` and ``channels`` and says when it has caught up."""

    def __init__(self, kafka: KafkaSettings, codec: EventCodec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audience = Audience()
        self._kafka = kafka
        self._codec = codec
        self._reader: AudienceReader | None = None
        self._following: asyncio.Future[None] | None = None
        self._ends: CatchUp | None = None  # the end offsets last read

    async def on_start(self) -> None:
        self._reader = AudienceReader(self._kafka, self._codec)  # aiokafka wants a running loop
        await self._reader.start()
        self._following = asyncio.ensure_future(self._follow(self._reader))

    async def on_stop(self) -> None:
        if self._following is not None:  # before the consumer stops under it
            following, self._following = self._following, None
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
        if self._reader is not None:  # a caught_up() waiting on it raises, the cause stays unacked
            await self._reader.stop()
            self._reader = None

    async def caught_up(self, written_at_ms: int | None = None) -> None:
        """Return once every record of ``users`` and ``channels`` written before the cause is applied.

        ``written_at_ms`` is the cause record's timestamp: end offsets read after it are reused (every
        follow acknowledged before the cause is below them); None reads them afresh.
        """
        reader = self._reader
        if reader is None:
            raise RuntimeError("the audience reader is not started")
        if self._ends is None or written_at_ms is None or written_at_ms >= self._ends.read_at_ms:
            self._ends = await reader.catch_up()
        ends = self._ends
        waited = 0.0
        while True:
            try:
                await asyncio.wait_for(reader.reach(ends), CATCH_UP_WARN_S)
                return
            except TimeoutError:
                waited += CATCH_UP_WARN_S
                log.warning("audience still behind the end of %s after %ss", AUDIENCE_TOPICS, waited)

    async def _follow(self, reader: AudienceReader) -> None:
        while True:
            try:
                async for batch in reader.batches(timeout_ms=200):  # empty batches when idle
                    for consumed in batch:
                        self.audience.apply(consumed.event)
            except Exception:  # aiokafka's own errors come through getmany untranslated; keep reading
                log.exception("audience reader failed, retrying in %ss", RETRY_S)
                await asyncio.sleep(RETRY_S)


class NotificationProcessor(Processor):
    """Decode, wait for the audience when the cause notifies, decide, publish, then store."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        audience: AudienceService,
    ) -> None:
        super().__init__(codec, publishing, table, metrics)
        self._audience = audience

    async def _decode(self, message: Any) -> Event | None:
        """Never dead-letters: the lifecycle agent (``streams``) and the catalogue projector (all
        three topics) already dead-letter those records once."""
        return self._decode_quietly(message)

    async def handle(self, message: Any) -> None:
        """Process one raw record of a notifications source."""
        cause = await self._decode(message)
        key = None if cause is None else notifier_key(cause)
        if cause is None or key is None:
            return
        if isinstance(cause, StreamWentLive | MatchStarted):
            await self._audience.caught_up(_timestamp_ms(message))
        stored = self._table.get(key.encode())
        state = Notifier(key=key) if stored is None else Notifier.from_json(stored)
        try:
            new_state, issued = decide(state, cause, self._audience.audience, now=utc_now())
        except Exception as e:  # a bug, not bad luck: retrying the same input cannot help
            log.exception("notifying failed topic=%s partition=%s offset=%s", *where(message))
            await self._dead_letter(message, "processing_failed", repr(e))
            return
        if issued:
            await self._publish_notifications(issued, message)
        if new_state != state:
            self._table[key.encode()] = new_state.to_json()

    async def _publish_chunk(self, issued: Sequence[NotificationIssued], start: int) -> None:
        await self._publishing.publisher.publish_many(issued[start : start + PUBLISH_BATCH])

    async def _publish_notifications(self, issued: Sequence[NotificationIssued], message: Any) -> None:
        for start in range(0, len(issued), PUBLISH_BATCH):
            await self._retrying("publishing notifications", partial(self._publish_chunk, issued, start))
        self._metrics.decisions[NotificationIssued.event_type()] += len(issued)
        log.info(
            "issued %s %s notifications for cause %s topic=%s partition=%s offset=%s",
            len(issued),
            issued[0].kind,
            issued[0].causation_id,
            *where(message),
        )


def register_notifications(
    app: faust.App,
    names: TopicNames,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
    kafka: KafkaSettings,
) -> AudienceService:
    """Add the notifications table and agent to ``app``; the audience reader starts with the app."""
    codec, publishing, metrics = processor_args
    audience = AudienceService(kafka, codec, loop=app.loop)
    app.add_dependency(audience)
    sources = app.topic(*(names.physical(n) for n in NOTIFICATIONS_SOURCES), partitions=partitions)
    table = app.Table(NOTIFICATIONS_TABLE, key_type=bytes, partitions=partitions)
    processor = NotificationProcessor(codec, publishing, table, metrics, audience)

    @app.agent(sources, name="notifications")
    async def notifications(stream: Any) -> None:
        """Tell a channel's followers it went live and a tournament's followers a match started."""
        manual = stream.noack()  # acked only once published and stored (at-least-once)
        async for event in manual.events():
            await processor.handle(event.message)
            await manual.ack(event)

    return audience


def _timestamp_ms(message: Any) -> int | None:
    """The record's Kafka timestamp in ms (Faust gives seconds), or None when it has none."""
    timestamp = getattr(message, "timestamp", None)
    return None if not timestamp or timestamp < 0 else int(timestamp * 1000)
