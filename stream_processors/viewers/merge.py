"""The merge step of the viewer counts: partial counts per (audience, partition) in, one count out.

The presence workers (:mod:`stream_processors.viewers.presence_worker`) publish each partition's
partial count of a stream (or match) to an internal topic keyed by the stream (or match) id. The
viewer-count and match-audience agents read those, keep one
:class:`~stream_processors.viewers.counts.ViewerPresence` per audience in a Faust table
(co-partitioned with the partials topic), and publish the decided count before storing the state
(the lifecycle agent's order), under a lock shared by batches and a wall-clock tick (a count due
later than its partial, at most once a second, is decided by the tick).

Decoded states are kept beside the table, keyed by the very JSON object stored: a tick over every
owned audience four times a second would otherwise re-decode all of them. A tick that only moves the
clock stores nothing (the next tick moves it again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from events.base import Event
from events.codec import EventCodec
from infra.kafka import partition_of_key
from stream_processors.metrics import ProcessorMetrics
from stream_processors.runtime import DecisionPublisher, Processor, where
from stream_processors.viewers.counts import ViewerPresence, observe_partial
from stream_processors.viewers.presence import PartialReport

__all__ = ["Decide", "MergeProcessor"]

log = logging.getLogger(__name__)

Decide = Callable[[ViewerPresence, int], tuple[ViewerPresence, Event | None]]


class MergeProcessor(Processor):
    """Fold a batch of partial counts into each audience's state, decide with ``decide``, publish, store."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        partitions: int,
        decide: Decide,
    ) -> None:
        super().__init__(codec, publishing, table, metrics)
        self._partitions = partitions
        self._decide = decide
        self._lock = asyncio.Lock()  # a batch and a tick each read, publish, then store states
        self._decoded: dict[bytes, tuple[Any, ViewerPresence]] = {}  # key -> (stored JSON, state)

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        """Process raw partial-count reports (:class:`~stream_processors.viewers.presence.PartialReport`)."""
        async with self._lock:
            states: dict[bytes, ViewerPresence] = {}
            for message in messages:
                try:
                    report = PartialReport.decode(message.value)
                except ValueError as e:
                    log.error("skipped topic=%s partition=%s offset=%s: %s", *where(message), e)
                    continue
                for audience, count in report.counts.items():
                    key = audience.encode()
                    state = states.get(key) or self._state(key)
                    states[key] = observe_partial(state, report.partition, count, report.as_of_ms)
                if report.complete:
                    for key in self._gone(message.partition, report, states):
                        state = states.get(key) or self._state(key)
                        states[key] = observe_partial(state, report.partition, 0, report.as_of_ms)
            for key, state in states.items():
                await self._settle(key, state, 0)

    def _gone(
        self, merge_partition: int, report: PartialReport, states: dict[bytes, ViewerPresence]
    ) -> list[bytes]:
        """The audiences of ``merge_partition`` holding a count of the report's presence partition
        that a complete report leaves out."""
        gone = []
        for key in {*self._table.keys(), *states}:
            if partition_of_key(key, self._partitions) != merge_partition or key.decode() in report.counts:
                continue
            held = (states.get(key) or self._state(key)).parts.get(report.partition)
            if held is not None and held[0] != 0:
                gone.append(key)
        return gone

    async def expire(self, tps: list[Any]) -> None:
        """The agent's tick: decide the counts that were not due yet when their partial arrived."""
        if owned := {tp.partition for tp in tps}:
            await self.tick(owned)

    async def tick(self, owned: set[int]) -> None:
        """Settle every audience of the ``owned`` partitions at the wall clock."""
        async with self._lock:
            now_ms = int(time.time() * 1000)
            for key in list(self._table.keys()):
                if partition_of_key(key, self._partitions) in owned:
                    await self._settle(key, self._state(key), now_ms, tick=True)

    def _state(self, key: bytes) -> ViewerPresence:
        stored = self._table.get(key)
        if stored is None:
            return ViewerPresence(audience_id=key.decode())
        cached = self._decoded.get(key)
        if cached is not None and cached[0] is stored:
            return cached[1]
        state = ViewerPresence.from_json(stored)
        self._decoded[key] = (stored, state)
        return state

    async def _settle(self, key: bytes, state: ViewerPresence, now_ms: int, *, tick: bool = False) -> None:
        settled, decided = self._decide(state, now_ms)
        if tick and decided is None:
            return  # only the clock moved (see the module docstring)
        if decided is not None:
            await self._retrying("publishing a count", lambda: self._publishing.publisher.publish(decided))
            self._metrics.viewer_counts += 1
        before = self._table.get(key)
        stored = settled.to_json()
        if stored != before:
            # Not table[key] = ...: Faust takes the changelog partition from the current event, and
            # the tick has none. The key's own partition is the source's (same key, same hash).
            self._table.data[key] = stored
            self._table.send_changelog(partition_of_key(key, self._partitions), key, stored)
            self._decoded[key] = (stored, settled)
