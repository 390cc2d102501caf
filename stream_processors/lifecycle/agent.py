"""The lifecycle agent: the I/O around :func:`stream_processors.lifecycle.decisions.decide`.

Consumes ``streams`` and ``ingest`` (both keyed by ``stream_id``, co-partitioned), keeps one
:class:`~stream_processors.lifecycle.decisions.StreamLifecycle` per stream in the ``lifecycle`` table
and publishes the decisions to ``streams.lifecycle``: publish, then store the state, then ack.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from events.codec import EventCodec
from infra.kafka import TopicNames
from infra.settings import KafkaSettings
from stream_processors.lifecycle.decisions import StreamLifecycle, decide, stream_id_of
from stream_processors.metrics import ProcessorMetrics
from stream_processors.runtime import DecisionPublisher, Processor, read_back, where
from stream_processors.topology import LIFECYCLE_OUTPUT, LIFECYCLE_SOURCES, LIFECYCLE_TABLE

__all__ = ["LifecycleProcessor", "register_lifecycle"]

log = logging.getLogger(__name__)


class LifecycleProcessor(Processor):
    """The I/O around :func:`decide`: decode, read the state, decide, publish, then store the state."""

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
            log.exception("deciding failed topic=%s partition=%s offset=%s", *where(message))
            await self._dead_letter(message, "processing_failed", repr(e))
            return
        if decisions and not await self._decided_before(cause, message, [str(d.event_id) for d in decisions]):
            await self._publish(decisions, message)
        if new_state != state:
            self._table[key] = new_state.to_json()


def register_lifecycle(
    app: faust.App,
    names: TopicNames,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
    kafka: KafkaSettings,
) -> None:
    """Add the ``lifecycle`` table and agent to ``app``."""
    codec, publishing, metrics = processor_args
    sources = app.topic(*(names.physical(name) for name in LIFECYCLE_SOURCES), partitions=partitions)
    # Keys raw (the stream_id's bytes, like the topics' keys), values JSON (StreamLifecycle.to_json).
    table = app.Table(LIFECYCLE_TABLE, key_type=bytes, partitions=partitions)
    published = read_back(app, kafka, codec, "lifecycle", names.physical(LIFECYCLE_OUTPUT))
    processor = LifecycleProcessor(codec, publishing, table, metrics, published)

    @app.agent(sources, name="lifecycle")
    async def lifecycle(stream: Any) -> None:
        """Decide each stream's lifecycle transitions from its requests and ingest reports."""
        manual = stream.noack()  # acked only once published and stored (at-least-once)
        async for event in manual.events():
            await processor.handle(event.message)
            await manual.ack(event)
