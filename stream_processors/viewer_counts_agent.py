"""The viewer-count agent: the I/O around :mod:`stream_processors.viewer_counts`.

Consumes ``viewers.heartbeats`` (keyed by ``stream_id``) in batches, keeps one
:class:`~stream_processors.viewer_counts.ViewerPresence` per stream in the ``viewers`` table and
publishes :class:`~events.viewers.ViewerCountChanged` to ``viewers.counts`` with the idempotent
publisher: publish first, then store the state, then ack (the lifecycle agent's order). A batch writes
each stream's state once (a heartbeat-per-write would cost O(sessions) per heartbeat).

A timer (:data:`TICK_S`) settles every stream of the partitions this worker owns on the wall clock, so
counts fall when heartbeats stop arriving altogether. State is stored with the changelog partition of
its key (murmur2, the heartbeats' partition), so the timer, which has no current event, can store too.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from events.codec import EventCodec
from events.viewers import ViewerCountChanged, ViewerHeartbeat
from infra.kafka import TopicNames
from stream_processors.app import DecisionPublisher, LifecycleProcessor
from stream_processors.metrics import ProcessorMetrics
from stream_processors.topology import VIEWER_SOURCE, VIEWER_TABLE
from stream_processors.viewer_counts import ViewerPresence, observe, settle

__all__ = ["BATCH_MAX", "BATCH_WITHIN_S", "TICK_S", "ViewerCountProcessor", "register_viewer_counts"]

log = logging.getLogger(__name__)

TICK_S = 0.25  # settles every owned stream this often: counts fall within window + ~1.3 s
BATCH_MAX = 2_000  # heartbeats folded into one state write per stream
BATCH_WITHIN_S = 0.1  # ... or whatever arrived within this long


def partition_of_key(key: bytes, partitions: int) -> int:
    """The partition aiokafka's default partitioner gives ``key`` (the heartbeats' and the table's)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class ViewerCountProcessor(LifecycleProcessor):
    """Decode a batch, fold it into each stream's presence, settle, publish, then store."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        partitions: int,
    ) -> None:
        super().__init__(codec, publishing, table, metrics)
        self._partitions = partitions

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        """Process raw records of ``viewers.heartbeats``."""
        by_stream: dict[str, list[ViewerHeartbeat]] = defaultdict(list)
        for message in messages:
            event = await self._decode(message)
            if isinstance(event, ViewerHeartbeat):
                by_stream[event.stream_id].append(event)
        self._metrics.heartbeats += sum(len(beats) for beats in by_stream.values())
        for stream_id, beats in by_stream.items():
            state = observe(self._state(stream_id.encode()), beats)
            await self._settle(stream_id.encode(), state, 0)

    async def tick(self, owned: set[int]) -> None:
        """Settle every stream of the ``owned`` partitions at the wall clock."""
        now_ms = int(time.time() * 1000)
        for key in list(self._table.keys()):
            if partition_of_key(key, self._partitions) in owned:
                await self._settle(key, self._state(key), now_ms)

    def _state(self, key: bytes) -> ViewerPresence:
        stored = self._table.get(key)
        return ViewerPresence(stream_id=key.decode()) if stored is None else ViewerPresence.from_json(stored)

    async def _settle(self, key: bytes, state: ViewerPresence, now_ms: int) -> None:
        before = self._table.get(key)
        settled, changed = settle(state, now_ms)
        if changed is not None:
            await self._publish_counts(changed)
        stored = settled.to_json()
        if stored != before:
            # Not table[key] = ...: Faust takes the changelog partition from the current event, and
            # the tick has none. The key's own partition is the heartbeats' (same key, same hash).
            self._table.data[key] = stored
            self._table.send_changelog(partition_of_key(key, self._partitions), key, stored)

    async def _publish_counts(self, changed: ViewerCountChanged) -> None:
        await self._retrying("publishing a viewer count", lambda: self._publishing.publisher.publish(changed))
        self._metrics.viewer_counts += 1
        log.debug("viewers stream=%s count=%s peak=%s", changed.stream_id, changed.count, changed.peak)


def register_viewer_counts(
    app: faust.App,
    names: TopicNames,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
) -> None:
    """Add the ``viewers`` table, the viewer-count agent and its tick to ``app``."""
    codec, publishing, metrics = processor_args
    source_name = names.physical(VIEWER_SOURCE)
    source = app.topic(source_name, partitions=partitions)
    table = app.Table(VIEWER_TABLE, key_type=bytes, partitions=partitions)
    processor = ViewerCountProcessor(codec, publishing, table, metrics, partitions)

    @app.agent(source, name="viewer_counts")
    async def viewer_counts(stream: Any) -> None:
        """Count each stream's concurrent viewers from the edges' heartbeats."""
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            # take_events acks the batch when this iteration ends: after publishing and storing
            await processor.handle_batch([event.message for event in events])

    @app.timer(TICK_S, name="viewer_counts_tick")
    async def viewer_counts_tick() -> None:
        """Expire sessions that stopped sending heartbeats, also when none arrive at all."""
        if app.rebalancing:
            return
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == source_name}
        if owned:
            await processor.tick(owned)
