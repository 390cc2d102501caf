"""The match-audience agent: the I/O around :mod:`stream_processors.viewers.match_audience`.

Consumes the internal repartition topic :data:`~stream_processors.topology.MATCH_HEARTBEATS` (the
heartbeats of match streams, forwarded by the viewer-count agent with ``match_id`` as the key), keeps
one presence per match in the ``match_viewers`` table (co-partitioned with that topic) and publishes
:class:`~events.viewers.MatchAudienceChanged` to ``viewers.match_counts``. Like the viewer-count
agent (:class:`~stream_processors.viewers.store.PresenceProcessor`): batches processed, then
acked (:class:`~stream_processors.batching.Batcher`); publish, store, ack; a lock between batches
and the wall-clock tick that expires sessions.

Never double counting: a session is a key of the match's presence, so a heartbeat forwarded twice
(a redelivered batch upstream), or seen on two streams of the match, or redelivered here after a
restart or rebalance, only moves that session's last-seen time.
"""

from __future__ import annotations

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
from stream_processors.topology import MATCH_HEARTBEATS, MATCH_VIEWER_TABLE
from stream_processors.viewers.counts import ViewerPresence
from stream_processors.viewers.match_audience import observe_match, settle_match
from stream_processors.viewers.store import PresenceProcessor

__all__ = ["MatchAudienceProcessor", "register_match_audience"]

log = logging.getLogger(__name__)

TICK_S = 0.25
BATCH_MAX = 2_000
BATCH_WITHIN_S = 0.1


class MatchAudienceProcessor(PresenceProcessor):
    """Decode a batch, fold it into each match's presence, settle, publish, then store."""

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        """Process raw forwarded heartbeats (key: the match id)."""
        async with self._lock:
            by_match: dict[bytes, list[ViewerHeartbeat]] = defaultdict(list)
            for message in messages:
                event = await self._decode(message)
                if isinstance(event, ViewerHeartbeat) and message.key:
                    by_match[bytes(message.key)].append(event)
            for key, beats in by_match.items():
                await self._settle(key, observe_match(self._state(key), beats), 0)

    def _decide(self, state: ViewerPresence, now_ms: int) -> tuple[ViewerPresence, Event | None]:
        return settle_match(state, now_ms)


def register_match_audience(
    app: faust.App,
    names: TopicNames,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
) -> None:
    """Add the ``match_viewers`` table, the match-audience agent and its tick to ``app``."""
    codec, publishing, metrics = processor_args
    source_name = names.physical(MATCH_HEARTBEATS)
    source = app.topic(source_name, partitions=partitions)
    table = app.Table(MATCH_VIEWER_TABLE, key_type=bytes, partitions=partitions)
    processor = MatchAudienceProcessor(codec, publishing, table, metrics, partitions)

    register_batched(
        app,
        source,
        "match_audience",
        processor,
        batch=(BATCH_MAX, BATCH_WITHIN_S),
        tick_s=TICK_S,
        tick=processor.expire,
        tick_topic=source_name,
    )
