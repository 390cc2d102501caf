"""The stream's moderation agent: the I/O around :func:`stream_processors.moderation.routing.decide_stream`.

Consumes ``chat.submitted`` (chat commands, and messages from older edges), ``chat.moderation``,
``streams`` (channel owner) and ``ingest`` (media clock), all keyed by ``stream_id`` and
co-partitioned, into the ``moderation`` table (one
:class:`~stream_processors.moderation.state.ChatChannel` per stream: its channel, rules, bans and
time-outs, no per-message state), and publishes decisions to ``chat.messages`` and markers to
``chat.sent`` with the idempotent publisher: publish first, then store the state (the lifecycle
agent's order, for the same reason). ``now`` is the cause's ``occurred_at``, so a redelivery decides
exactly as before. Viewers' messages are decided per sender by the chat workers
(:mod:`stream_processors.moderation.chat_worker`), not here.

Roles and follows come from ``users`` (keyed by ``user_id``, not co-partitioned): every worker folds the
whole topic into a :class:`~stream_processors.moderation.roster.ChatRoster` with :class:`RosterReader`,
a consumer without a group, which reads to the end before the agents start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import faust

from events.base import Event
from events.chat import ChatChannelSynced
from events.codec import EventCodec
from events.topics import Topic
from infra.kafka import TopicNames, keys_per_partition
from infra.settings import ChatSettings, KafkaSettings
from stream_processors.metrics import ProcessorMetrics
from stream_processors.moderation.chat_rules import ChatLimits, LinkPolicy, normalised_term
from stream_processors.moderation.decisions import decision_ids, stream_id_of
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.routing import decide_stream
from stream_processors.moderation.state import ChatChannel
from stream_processors.redelivery import PublishedDecisions
from stream_processors.runtime import DecisionPublisher, Processor, WholeTopicReader, read_back, where
from stream_processors.topology import (
    LIFECYCLE_SOURCES,
    MODERATION_OUTPUT,
    MODERATION_SOURCES,
    MODERATION_TABLE,
)

__all__ = ["ModerationProcessor", "RosterReader", "chat_limits", "register_moderation"]

log = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S = 30.0


def chat_limits(chat: ChatSettings) -> ChatLimits:
    """The rule engine's limits from the settings."""
    return ChatLimits(
        max_length=chat.max_message_length,
        rate_messages=chat.rate_limit_messages,
        rate_window_s=chat.rate_limit_window_s,
        duplicate_window_s=chat.duplicate_window_s,
        unique_window_s=chat.unique_chat_window_s,
        max_caps_ratio=chat.max_caps_ratio,
        caps_min_letters=chat.caps_min_letters,
        max_repeated_chars=chat.max_repeated_chars,
        max_repeated_words=chat.max_repeated_words,
        max_marks_per_char=chat.max_marks_per_char,
        hold_threshold=chat.hold_threshold,
        blocked_terms=tuple(normalised_term(t) for t in chat.blocked_terms if t.strip()),
        link_policy=LinkPolicy(chat.link_policy),
        link_allowlist=tuple(d.lower() for d in chat.link_allowlist),
    )


class RosterReader(WholeTopicReader):
    """Keeps a :class:`ChatRoster` of the whole ``users`` topic; started before the app."""

    def __init__(
        self, kafka: KafkaSettings, codec: EventCodec, metrics: ProcessorMetrics, **kwargs: Any
    ) -> None:
        super().__init__(kafka, codec, [Topic.USERS], "roster", **kwargs)
        self.roster = ChatRoster()
        self._metrics = metrics

    def apply(self, event: Event) -> None:
        if self.roster.apply(event):
            self._metrics.roster_events[event.event_type()] += 1

    def summary(self) -> str:
        return f"{len(self.roster.moderators)} moderator sets"


class ModerationProcessor(Processor):
    """Decode, read the stream's chat state, decide, publish, then store the state."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        roster: ChatRoster,
        limits: ChatLimits,
        names: TopicNames,
        published: PublishedDecisions | None = None,
    ) -> None:
        super().__init__(codec, publishing, table, metrics, published)
        self._names = names
        self._roster = roster
        self._limits = limits
        self._keys: tuple[str, ...] = ()

    async def _decode(self, message: Any) -> Event | None:
        """Dead-letters only the chat topics' bad records: the lifecycle agent reads the same
        ``streams`` and ``ingest`` records and dead-letters theirs (once is enough)."""
        if self._names.logical(message.topic) in LIFECYCLE_SOURCES:
            return self._decode_quietly(message)
        return await super()._decode(message)

    async def handle(self, message: Any) -> None:
        """Process one raw record of a moderation source."""
        cause = await self._decode(message)
        stream_id = None if cause is None else stream_id_of(cause)
        if cause is None or stream_id is None:
            return
        self._metrics.chat_events[cause.event_type()] += 1
        key = stream_id.encode()
        stored = self._table.get(key)
        state = ChatChannel(stream_id=stream_id) if stored is None else ChatChannel.from_json(stored)
        keys = await self._sent_keys()
        try:
            new_state, decisions = decide_stream(
                state, cause, cause.occurred_at, roster=self._roster, limits=self._limits, sent_keys=keys
            )
        except Exception as e:  # a bug, not bad luck: retrying the same input cannot help
            log.exception("moderation failed topic=%s partition=%s offset=%s", *where(message))
            await self._dead_letter(message, "processing_failed", repr(e))
            return
        if decisions and not await self._decided_before(cause, message, decision_ids(str(cause.event_id))):
            await self._publish_chat(decisions, message)
        if new_state != state:
            self._table[key] = new_state.to_json()

    async def _sent_keys(self) -> tuple[str, ...]:
        """One record key per partition of ``chat.sent`` (for the markers written to every one)."""
        if not self._keys:
            publisher = self._publishing.publisher
            partitions = await self._retrying(
                "reading chat.sent's partitions", lambda: publisher.partitions_of(ChatChannelSynced)
            )
            self._keys = keys_per_partition("chat-marker", partitions)
        return self._keys

    async def _publish_chat(self, decisions: Sequence[Event], message: Any) -> None:
        await self._retrying(
            "publishing moderation decisions", lambda: self._publishing.publisher.publish_many(decisions)
        )
        for decision in decisions:
            self._metrics.chat_decisions[decision.event_type()] += 1
            log.debug("decided %s event_id=%s", decision.event_type(), decision.event_id)


def register_moderation(
    app: faust.App,
    names: TopicNames,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
    roster: RosterReader,
    limits: ChatLimits,
    kafka: KafkaSettings,
) -> None:
    """Add the moderation table and agent to ``app``."""
    codec, publishing, metrics = processor_args
    sources = app.topic(*(names.physical(n) for n in MODERATION_SOURCES), partitions=partitions)
    table = app.Table(MODERATION_TABLE, key_type=bytes, partitions=partitions)
    # chat.messages is co-partitioned with the sources (topology.prepare_topics checks it): a cause's
    # decisions are on the partition number it was read from.
    published = read_back(app, kafka, codec, "moderation", names.physical(MODERATION_OUTPUT))
    processor = ModerationProcessor(
        codec, publishing, table, metrics, roster.roster, limits, names, published
    )

    @app.agent(sources, name="moderation")
    async def moderation(stream: Any) -> None:
        """Decide every submitted chat message and moderation request of each stream."""
        manual = stream.noack()  # acked only once published and stored (at-least-once)
        async for event in manual.events():
            await processor.handle(event.message)
            await manual.ack(event)
