"""The viewer-count agent: the I/O around :mod:`stream_processors.viewers.counts`.

Consumes ``viewers.heartbeats`` and ``streams`` (both keyed by ``stream_id``, co-partitioned) in
batches (:class:`~stream_processors.batching.Batcher`: processed, then acked), keeps one
:class:`~stream_processors.viewers.counts.ViewerPresence` per stream in the ``viewers`` table and
publishes :class:`~events.viewers.ViewerCountChanged` to ``viewers.counts`` with the idempotent
publisher. A batch writes each stream's state once (a heartbeat-per-write would cost O(sessions)
per heartbeat).

``streams`` tells each stream's match (StreamCreated/Updated/Scheduled/WentLive ``match_id``). The
heartbeats of a stream that belongs to a match are forwarded, unchanged and re-keyed by ``match_id``,
to the internal repartition topic :data:`~stream_processors.topology.MATCH_HEARTBEATS`, where the
match-audience agent counts each match's sessions once across all its streams. ``streams`` and the
heartbeats are two topics, read in no fixed order: when a stream joins a match, the sessions it
already has are forwarded too (as heartbeats at their last-seen times, from :data:`JOIN_EDGE`), so
the match audience does not depend on which topic was read first. Order per batch:
forward, publish the counts, store the states, ack. A crash anywhere redelivers the batch: forwarded
again (a session seen twice is still one session) and re-decided into the same events.

A timer (:data:`TICK_S`) settles every stream of the partitions this worker owns on the wall clock, so
counts fall when heartbeats stop arriving altogether. State is stored with the changelog partition of
its key (murmur2, the heartbeats' partition), so the timer, which has no current event, can store too.
A lock keeps a batch and a tick from interleaving (both read a state, publish, then store it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import faust

from events.base import Event
from events.codec import EventCodec
from events.viewers import ViewerHeartbeat
from infra.kafka import TopicNames
from stream_processors.metrics import ProcessorMetrics
from stream_processors.runtime import DecisionPublisher, register_batched
from stream_processors.topology import MATCH_HEARTBEATS, VIEWER_SOURCE, VIEWER_SOURCES, VIEWER_TABLE
from stream_processors.viewers.counts import (
    PRODUCER,
    ViewerPresence,
    attach,
    from_epoch_ms,
    observe,
    settle,
)
from stream_processors.viewers.store import PresenceProcessor

__all__ = [
    "BATCH_MAX",
    "BATCH_WITHIN_S",
    "JOIN_EDGE",
    "TICK_S",
    "ViewerCountProcessor",
    "register_viewer_counts",
]

log = logging.getLogger(__name__)

TICK_S = 0.25  # settles every owned stream this often: counts fall within window + ~1.3 s
BATCH_MAX = 2_000  # heartbeats folded into one state write per stream
BATCH_WITHIN_S = 0.1  # ... or whatever arrived within this long

JOIN_EDGE = "viewer_counts.join"  # edge_id of the heartbeats forwarded when a stream joins a match

Forward = tuple[bytes, bytes, list[tuple[str, bytes]]]  # (match_id key, record value, headers)


class ViewerCountProcessor(PresenceProcessor):
    """Decode a batch, fold it into each stream's presence, forward match heartbeats, settle,
    publish, then store."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        partitions: int,
        forward_topic: str,
        source: str,
    ) -> None:
        super().__init__(codec, publishing, table, metrics, partitions)
        self._forward_topic = forward_topic
        self._source = source  # the heartbeats' physical topic name

    def _decide(self, state: ViewerPresence, now_ms: int) -> tuple[ViewerPresence, Event | None]:
        return settle(state, now_ms)

    async def _decode(self, message: Any) -> Event | None:
        """Dead-letters only the heartbeats' bad records: the lifecycle agent reads the same
        ``streams`` records and dead-letters theirs (once is enough)."""
        if message.topic != self._source:
            return self._decode_quietly(message)
        return await super()._decode(message)

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        """Process raw records of ``viewers.heartbeats`` and ``streams``."""
        async with self._lock:
            await self._handle_batch(messages)

    async def _handle_batch(self, messages: Sequence[Any]) -> None:
        beats: dict[str, list[tuple[ViewerHeartbeat, Any]]] = defaultdict(list)
        matches: dict[str, list[str | None]] = defaultdict(list)
        for message in messages:
            event = await self._decode(message)
            if isinstance(event, ViewerHeartbeat):
                beats[event.stream_id].append((event, message))
            elif isinstance(stream_id := getattr(event, "stream_id", None), str):  # `streams`
                matches[stream_id].append(getattr(event, "match_id", None))
        self._metrics.heartbeats += sum(len(b) for b in beats.values())
        states: dict[str, ViewerPresence] = {}
        forwards: list[Forward] = []
        for stream_id in sorted(set(beats) | set(matches)):  # a stream's match first, then its viewers
            state = before = self._state(stream_id.encode())
            for match_id in matches.get(stream_id, ()):
                state = attach(state, match_id)
            state = observe(state, (beat for beat, _ in beats.get(stream_id, ())))
            if state.match_id is not None and state.match_id != before.match_id:
                forwards.extend(self._present(state, state.match_id.encode()))
            elif state.match_id is not None:
                key = state.match_id.encode()
                forwards.extend(
                    (key, message.value, list(message.headers or ()))
                    for _, message in beats.get(stream_id, ())
                )
            if state != before or stream_id in beats:  # a stream event that changes nothing stores nothing
                states[stream_id] = state
        if forwards:
            await self._retrying("forwarding match heartbeats", lambda: self._forward(forwards))
        for stream_id, state in states.items():
            await self._settle(stream_id.encode(), state, 0)

    def _present(self, state: ViewerPresence, key: bytes) -> list[Forward]:
        """The stream's sessions as heartbeats at their last-seen times (it just joined a match)."""
        present = [
            ViewerHeartbeat(
                stream_id=state.audience_id,
                session_id=session_id,
                edge_id=JOIN_EDGE,
                occurred_at=from_epoch_ms(seen),
                producer=PRODUCER,
            )
            for session_id, seen in sorted(state.sessions.items())
        ]
        return [(key, self._codec.encode(beat), self._codec.headers(beat)) for beat in present]

    async def _forward(self, forwards: list[Forward]) -> None:
        publisher = self._publishing.publisher
        await asyncio.gather(
            *(
                publisher.publish_raw(self._forward_topic, value, key=key, headers=headers)
                for key, value, headers in forwards
            )
        )


def register_viewer_counts(
    app: faust.App,
    names: TopicNames,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
) -> None:
    """Add the ``viewers`` table and the viewer-count agent with its tick to ``app``."""
    codec, publishing, metrics = processor_args
    source_name = names.physical(VIEWER_SOURCE)
    sources = app.topic(*(names.physical(name) for name in VIEWER_SOURCES), partitions=partitions)
    table = app.Table(VIEWER_TABLE, key_type=bytes, partitions=partitions)
    forward_topic = names.physical(MATCH_HEARTBEATS)
    processor = ViewerCountProcessor(
        codec, publishing, table, metrics, partitions, forward_topic, source_name
    )

    register_batched(
        app,
        sources,
        "viewer_counts",
        processor,
        batch=(BATCH_MAX, BATCH_WITHIN_S),
        tick_s=TICK_S,
        tick=processor.expire,
        tick_topic=source_name,
    )
