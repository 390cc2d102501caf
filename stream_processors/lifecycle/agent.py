"""The lifecycle agent: the I/O around :func:`stream_processors.lifecycle.decisions.decide`.

Consumes ``streams`` and ``ingest`` (both keyed by ``stream_id``, co-partitioned), keeps one
:class:`~stream_processors.lifecycle.decisions.StreamLifecycle` per stream in the ``lifecycle`` table
and publishes the decisions to ``streams.lifecycle``: publish, then store the state, then ack.

A timer (:data:`~stream_processors.lifecycle.silence.SWEEP_S`) ends the live streams whose ingest
went silent (:func:`~stream_processors.lifecycle.decisions.expire`) at each owned partition's clock
(:mod:`stream_processors.lifecycle.silence`). A lock keeps a record and a sweep from interleaving
(both read a state, publish, then store it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import faust

from events.codec import EventCodec
from infra.kafka import TopicNames, partition_of_key
from infra.settings import KafkaSettings
from stream_processors.lifecycle.decisions import (
    Decision,
    StreamLifecycle,
    StreamState,
    decide,
    expire,
    stream_id_of,
)
from stream_processors.lifecycle.silence import SWEEP_S, ReadPositions, partition_clocks
from stream_processors.metrics import ProcessorMetrics
from stream_processors.redelivery import PublishedDecisions
from stream_processors.runtime import DecisionPublisher, Processor, read_back, where
from stream_processors.topology import LIFECYCLE_OUTPUT, LIFECYCLE_SOURCES, LIFECYCLE_TABLE

__all__ = ["LifecycleProcessor", "register_lifecycle"]

log = logging.getLogger(__name__)


class LifecycleProcessor(Processor):
    """The I/O around :func:`decide`: decode, read the state, decide, publish, then store the state."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        published: PublishedDecisions | None = None,
        *,
        silence: timedelta | None = None,
        partitions: int = 1,
    ) -> None:
        """``silence``: the silence rule's limit (None: off); ``partitions``: of the sources."""
        super().__init__(codec, publishing, table, metrics, published)
        self._silence = silence
        self._partitions = partitions
        self._lock = asyncio.Lock()
        self.positions = ReadPositions()

    async def handle(self, message: Any) -> None:
        """Process one raw record of ``streams`` or ``ingest``."""
        async with self._lock:
            await self._handle(message)
        self.positions.handled(message)

    async def _handle(self, message: Any) -> None:
        cause = await self._decode(message)
        stream_id = None if cause is None else stream_id_of(cause)
        if cause is None or stream_id is None:
            return
        self._metrics.events[cause.event_type()] += 1
        key = stream_id.encode()
        state = self._state(key, stream_id)
        try:
            new_state, decisions = decide(state, cause, self._silence)
        except Exception as e:  # a bug, not bad luck: retrying the same input cannot help
            log.exception("deciding failed topic=%s partition=%s offset=%s", *where(message))
            await self._dead_letter(message, "processing_failed", repr(e))
            return
        if decisions and not await self._decided_before(cause, message, [str(d.event_id) for d in decisions]):
            await self._publish(decisions, message)
        if new_state != state:
            self._table[key] = new_state.to_json()

    async def sweep(self, clocks: Mapping[int, datetime]) -> None:
        """End the live streams of the partitions in ``clocks`` that are silent at their partition's
        clock; the states of other partitions (standby replicas, not caught up) are left alone."""
        if self._silence is None or not clocks:
            return
        async with self._lock:
            for key in list(self._table.keys()):
                now = clocks.get(partition_of_key(key, self._partitions))
                stored = self._table.get(key)
                if now is None or stored is None or stored.get("state") != StreamState.LIVE.value:
                    continue
                state = StreamLifecycle.from_json(stored)
                ended, decisions = expire(state, now, self._silence)
                if decisions:
                    await self._publish_silenced(state, decisions)
                    self._store_outside_an_event(key, ended)

    def _state(self, key: bytes, stream_id: str) -> StreamLifecycle:
        stored = self._table.get(key)
        return StreamLifecycle(stream_id=stream_id) if stored is None else StreamLifecycle.from_json(stored)

    async def _publish_silenced(self, state: StreamLifecycle, decisions: list[Decision]) -> None:
        await self._retrying(
            "publishing decisions", lambda: self._publishing.publisher.publish_many(decisions)
        )
        for decision in decisions:
            self._metrics.decisions[decision.event_type()] += 1
            log.info(
                "decided %s event_id=%s stream=%s: ingest session %s on node %s silent since %s",
                decision.event_type(),
                decision.event_id,
                state.stream_id,
                state.session_id,
                state.node or "?",
                state.heard.occurred_at.isoformat() if state.heard else "?",
            )

    def _store_outside_an_event(self, key: bytes, state: StreamLifecycle) -> None:
        """Not ``table[key] = ...``: a sweep has no current event to take the changelog partition from;
        the key's is the source partition (same murmur2 hash), as for a record's own store."""
        stored = state.to_json()
        self._table.data[key] = stored
        self._table.send_changelog(partition_of_key(key, self._partitions), key, stored)


def register_lifecycle(
    app: faust.App,
    names: TopicNames,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
    kafka: KafkaSettings,
    silence_end_s: float | None = None,
) -> None:
    """Add the ``lifecycle`` table and agent to ``app``, and with ``silence_end_s`` (the ingest
    settings' ``silence_end_s``) the timer that ends streams whose ingest went silent."""
    codec, publishing, metrics = processor_args
    topics = [names.physical(name) for name in LIFECYCLE_SOURCES]
    sources = app.topic(*topics, partitions=partitions)
    # Keys raw (the stream_id's bytes, like the topics' keys), values JSON (StreamLifecycle.to_json).
    table = app.Table(LIFECYCLE_TABLE, key_type=bytes, partitions=partitions)
    published = read_back(app, kafka, codec, "lifecycle", names.physical(LIFECYCLE_OUTPUT))
    silence = None if silence_end_s is None else timedelta(seconds=silence_end_s)
    processor = LifecycleProcessor(
        codec, publishing, table, metrics, published, silence=silence, partitions=partitions
    )

    @app.agent(sources, name="lifecycle")
    async def lifecycle(stream: Any) -> None:
        """Decide each stream's lifecycle transitions from its requests and ingest reports."""
        manual = stream.noack()  # acked only once published and stored (at-least-once)
        async for event in manual.events():
            await processor.handle(event.message)
            await manual.ack(event)

    if silence is not None:
        _register_sweep(app, topics, processor)


def _register_sweep(app: faust.App, topics: list[str], processor: LifecycleProcessor) -> None:
    """The timer of the silence rule, on the partitions of ``topics`` this worker owns."""
    generation = [-1]

    @app.timer(SWEEP_S, name="lifecycle_silence")
    async def lifecycle_silence() -> None:
        """End the live streams whose ingest went silent: no event comes to decide it on."""
        if app.rebalancing or app.in_recovery:
            return
        if generation[0] != app.consumer_generation_id:
            generation[0] = int(app.consumer_generation_id)
            processor.positions.forget()
        try:
            await processor.sweep(partition_clocks(app, topics, processor.positions))
        except Exception:  # a bug: the next sweep tries again, the agent goes on meanwhile
            log.exception("silence sweep failed")
