"""The node's one Kafka reader: every decided topic, no consumer group, into the fan-out hub.

Each node reads every partition itself (no group: every node needs every stream a client of it may
watch). It starts a little way back, ``edge.warm_start_records`` per partition, so a node that just
started can already backfill subscribers and resume clients that come from a node that died.
Nothing is committed: the node keeps no state worth resuming, the log is the state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge_ws.fanout import FanoutHub
from edge_ws.messages import (
    CONSUMED_TOPICS,
    Delivery,
    delivery_for,
    moderator_delivery_for,
    result_delivery_for,
)
from edge_ws.metrics import Metrics
from edge_ws.protocol import LogPosition
from events.base import Event
from events.codec import EventCodec
from events.topics import Topic
from infra.kafka import (
    BrokerUnavailable,
    ConsumedEvent,
    EventConsumer,
    LoggedDeadLetters,
    TopicNames,
)
from infra.settings import KafkaSettings

log = logging.getLogger(__name__)
CHAT_TOPIC = Topic.CHAT_MESSAGES


class EdgeReader(EventConsumer):
    """A group-less :class:`EventConsumer` that can start a fixed number of records back."""

    def __init__(self, settings: KafkaSettings, codec: EventCodec) -> None:
        # Every node reads every record, so N nodes would copy one poison record N times: an edge logs
        # and skips it, and the topic's owning group (projectors, agents) dead-letters it once.
        super().__init__(
            settings,
            codec,
            topics=CONSUMED_TOPICS,
            group_id=None,
            dead_letters=LoggedDeadLetters("edge"),
            names=TopicNames(settings.topic_prefix),
        )

    async def warm_start(
        self, records_per_partition: int, timeout_s: float = 15.0
    ) -> dict[tuple[str, int], int]:
        """Seek every partition ``records_per_partition`` back from its end; returns where each starts."""
        ends = (await self.catch_up(timeout_s)).ends
        try:
            begins = await self._consumer.beginning_offsets(list(ends))
        except Exception as e:
            raise BrokerUnavailable(f"reading offsets of {self.topics}: {e!r}") from e
        starts: dict[tuple[str, int], int] = {}
        for tp, end in ends.items():
            start = max(begins[tp], end - records_per_partition)
            self._consumer.seek(tp, start)
            starts[(self._names.logical(tp.topic), tp.partition)] = start
        return starts


def chat_starts(starts: dict[tuple[str, int], int]) -> dict[int, int]:
    """The chat topic's partition starts: where each stream's resumable window begins on this node."""
    return {partition: offset for (topic, partition), offset in starts.items() if topic == CHAT_TOPIC}


async def pump(reader: EdgeReader, hub: FanoutHub, metrics: Metrics) -> None:
    """Forever: read a batch, hand its deliveries to the hub (in ``frames`` mode its writer task
    writes them while this fetches the next). The hub is in memory; nothing to retry."""
    async for batch in reader.batches(timeout_ms=200):
        metrics.consumed += len(batch)
        deliveries, stamps_ms = [], []
        for consumed in batch:
            found = [d for build in BUILDERS if (d := _delivery(consumed, build)) is not None]
            if not found:
                metrics.delivered((consumed.timestamp_ms,))  # nothing to write: done with it
                continue
            deliveries += found
            # one stamp per delivery, the event's on the first only: an event is observed once
            stamps_ms += [consumed.timestamp_ms] + [0] * (len(found) - 1)
        try:
            await hub.deliver(deliveries, stamps_ms)
        except Exception:  # one bad batch must not stop every stream's chat on this node
            first = batch[0].position if batch else None
            log.exception("delivery of a batch of %s failed, first at %s", len(batch), first)


Builder = Callable[[Event, LogPosition], Delivery | None]
# What an event becomes: for the stream's subscribers, for its moderators (the held queue), and for
# the subscribers who see results (a prediction's winner).
BUILDERS: tuple[Builder, ...] = (delivery_for, moderator_delivery_for, result_delivery_for)


def _delivery(consumed: ConsumedEvent, build: Builder) -> Delivery | None:
    try:
        return build(consumed.event, LogPosition(consumed.position.partition, consumed.position.offset))
    except Exception:
        log.exception(
            "cannot deliver topic=%s partition=%s offset=%s event_id=%s",
            consumed.position.topic,
            consumed.position.partition,
            consumed.position.offset,
            consumed.event.event_id,
        )
        return None
