"""What clients write, turned into events on Kafka: chat, moderator actions, votes, heartbeats.

``/poll`` and ``/endpoll`` typed in chat are not chat: they are published as PollOpened / PollClosed
to ``polls`` (this node is that topic's writer) and the poll agent decides whether the sender may; a
malformed one is answered with an ``error`` (code ``bad_command``) and publishes nothing.

Each write returns only after the broker's acknowledgement (the publisher is idempotent, acks=all),
so an ``ack`` to the client is never a promise the log does not keep. Heartbeats are different:
presence is sampled, so the node collects them and every few seconds publishes them to
``viewers.presence`` as ViewerPresenceBatch records, one per partition the sessions hash to.

In the node, every write is bounded (``timeout_s``): one Kafka does not take in time fails (nothing of
it is published later, see :meth:`infra.kafka.EventPublisher.publish_many`) and pauses sending
(:mod:`edge_ws.pause`); while paused, heartbeats are dropped (a sample lost, the count recovers on the
next flush after the pause).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from edge_ws.auth import Identity
from edge_ws.metrics import Metrics
from edge_ws.pause import SendingPause
from edge_ws.protocol import EndPoll, Moderate, OpenPoll, ProtocolError, SendChat, Vote, poll_command
from events import viewers
from events.base import utc_now
from events.chat import (
    ChatMessageSent,
    ChatMessageSubmitted,
    LinkPolicy,
    ModerationAction,
    ModerationActionRequested,
)
from events.polls import PollClosed, PollOpened, PollVoted
from events.viewers import MAX_BEATS, ViewerBeat, ViewerPresenceBatch
from infra.kafka import EventPublisher, KafkaError, NotPublished, Position, partition_of_key

log = logging.getLogger(__name__)
PRODUCER = "edge_ws"
# What a node saw over one interval: (stream, session) -> the signed-in user, or None if anonymous.
Presence = dict[tuple[str, str], tuple[str | None, str | None]]  # (stream, session) -> (user, referrer)


class EdgeWrites:
    """Publishes the events a connection's commands become (within ``timeout_s``, pausing on failure)."""

    def __init__(
        self,
        publisher: EventPublisher,
        edge_id: str,
        metrics: Metrics,
        *,
        timeout_s: float | None = None,
        pause: SendingPause | None = None,
    ) -> None:
        self._publisher = publisher
        self.edge_id = edge_id
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._pause = pause

    async def chat(self, who: Identity, command: SendChat) -> tuple[str, Position]:
        """Publish a submitted message; returns its edge-assigned id and log position.

        A poll command is published to ``polls`` instead; the id returned is then the poll's (``/poll``)
        or the PollClosed's (``/endpoll``), and the position is in ``polls``.
        """
        try:
            poll = poll_command(command.text)
        except ProtocolError as e:
            raise ProtocolError(e.code, e.message, command.nonce) from None
        if poll is not None:
            return await self.poll(who, command.stream, poll)
        message_id = str(uuid.uuid4())
        # Messages go to chat.sent keyed by sender (decided where the sender's messages land); chat
        # commands to chat.submitted keyed by stream, where the stream's moderation decides them.
        kind = ChatMessageSubmitted if command.text.lstrip().startswith("/") else ChatMessageSent
        event = kind(
            producer=PRODUCER,
            message_id=message_id,
            stream_id=command.stream,
            user_id=who.user_id,
            display_name=who.name or who.user_id,
            text=command.text,
            edge_id=self.edge_id,
            nonce=command.nonce,
            badges=_badges(who),
            media_time_ms=command.media_time_ms,
            reply_to_message_id=command.reply_to,
        )
        return message_id, await self._publish(event)

    async def moderate(self, who: Identity, command: Moderate) -> tuple[str, Position]:
        """Ask for a moderator action; the moderation agent checks the actor's rights and decides."""
        event = ModerationActionRequested(
            producer=PRODUCER,
            stream_id=command.stream,
            action=ModerationAction(command.action),
            actor_id=who.user_id,
            target_user_id=command.user,
            target_message_id=command.message_id,
            reason=command.reason,
            duration_s=command.duration_s,
            term=command.term or "",
            link_policy=None if command.link_policy is None else LinkPolicy(command.link_policy),
            link_allowlist=command.link_allowlist,
            enabled=command.enabled,
        )
        return str(event.event_id), await self._publish(event)

    async def vote(self, who: Identity, command: Vote) -> tuple[str, Position]:
        event = PollVoted(
            producer=PRODUCER,
            poll_id=command.poll,
            stream_id=command.stream,
            user_id=who.user_id,
            option=command.option,
        )
        return str(event.event_id), await self._publish(event)

    async def poll(self, who: Identity, stream: str, command: OpenPoll | EndPoll) -> tuple[str, Position]:
        """Open a poll or close the stream's poll(s); the poll agent checks the sender's rights."""
        event: PollOpened | PollClosed
        if isinstance(command, OpenPoll):
            now = utc_now()
            closes = None if command.duration_s is None else now + timedelta(seconds=command.duration_s)
            event = PollOpened(
                producer=PRODUCER,
                occurred_at=now,
                poll_id=str(uuid.uuid4()),
                stream_id=stream,
                question=command.question,
                options=command.options,
                opened_by=who.user_id,
                closes_at=closes,
            )
            return event.poll_id, await self._publish(event)
        event = PollClosed(producer=PRODUCER, poll_id=command.poll, stream_id=stream, closed_by=who.user_id)
        return str(event.event_id), await self._publish(event)

    async def _publish(
        self,
        event: ChatMessageSubmitted | ModerationActionRequested | PollVoted | PollOpened | PollClosed,
    ) -> Position:
        try:
            position = await self._publisher.publish(event, **_bounded(self._timeout_s))
        except KafkaError as e:
            if self._pause is not None:
                self._pause.failed(e)
            raise
        self._metrics.published += 1
        return position


def _badges(who: Identity) -> tuple[str, ...]:
    return (who.role,) if who.role in ("admin", "streamer") else ()


class HeartbeatBatch:
    """Collects (stream, session) presence and publishes it every interval as ViewerPresenceBatch
    records: the sessions grouped by their partition of ``viewers.presence``, at most
    :data:`MAX_BEATS` beats a record, all of them sent before any acknowledgement is awaited."""

    def __init__(
        self,
        publisher: EventPublisher,
        edge_id: str,
        metrics: Metrics,
        interval_s: float,
        *,
        timeout_s: float | None = None,
        pause: SendingPause | None = None,
    ) -> None:
        self._publisher = publisher
        self._edge_id = edge_id
        self._metrics = metrics
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._pause = pause
        self._seen: Presence = {}

    def record(self, stream: str, session_id: str, user_id: str | None, referrer: str | None = None) -> None:
        self._seen[(stream, session_id)] = (user_id, referrer)

    async def flush(self) -> int:
        """Publish what was seen since the last flush; returns the number of heartbeats (beats)."""
        seen, self._seen = self._seen, {}
        if not seen:
            return 0
        try:
            async with asyncio.timeout(self._timeout_s):
                partitions = await self._publisher.partitions_of(ViewerPresenceBatch)
        except TimeoutError:
            raise NotPublished(f"no partitions of viewers.presence within {self._timeout_s:g}s") from None
        batches = presence_batches(seen, partitions, edge_id=self._edge_id, seen_at=utc_now())
        await self._publisher.publish_many(batches, **_bounded(self._timeout_s))
        self._metrics.published += len(seen)
        return len(seen)

    async def run(self) -> None:
        """Flush every interval until cancelled; a broker outage loses a sample, never the node."""
        while True:
            await asyncio.sleep(self._interval_s)
            if self._pause is not None and self._pause.paused:
                self._seen = {}  # nothing queues up for Kafka while it is away
                continue
            try:
                await self.flush()
            except KafkaError as e:
                log.warning("heartbeat batch not published (retriable=%s): %s", e.retriable, e)
                if self._pause is not None:
                    self._pause.failed(e)


def _bounded(timeout_s: float | None) -> dict[str, Any]:
    """``timeout_s`` as the publisher's keyword when the node gives one (tests' stand-ins take none)."""
    return {} if timeout_s is None else {"timeout_s": timeout_s}


def presence_batches(
    seen: Presence, partitions: int, *, edge_id: str, seen_at: datetime, max_beats: int = MAX_BEATS
) -> list[ViewerPresenceBatch]:
    """What a node saw as records of ``viewers.presence`` (of ``partitions``): see
    :func:`events.viewers.presence_batches`."""
    beats = (
        ViewerBeat(stream_id=stream, session_id=session, user_id=user, referrer=referrer)
        for (stream, session), (user, referrer) in seen.items()
    )
    return viewers.presence_batches(
        beats,
        lambda session: partition_of_key(session.encode(), partitions),
        edge_id=edge_id,
        seen_at=seen_at,
        producer=PRODUCER,
        max_beats=max_beats,
    )
