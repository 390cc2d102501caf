"""Publishing a command's events: after the broker's ack, answer with the event id and its position."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass

from events.base import Event
from events.topics import topic_for
from infra.kafka import EventPublisher, KafkaError, Position
from producers.metrics import ApiMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof a command was recorded: the first event's id and position, and every event's position."""

    event_id: uuid.UUID
    position: Position
    positions: tuple[Position, ...]


class CommandBus:
    """Stamps events with the API as producer and publishes them, acknowledged, in order."""

    def __init__(self, publisher: EventPublisher, metrics: ApiMetrics, *, producer: str) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._producer = producer

    async def publish(self, *events: Event) -> Receipt:
        stamped = [dataclasses.replace(e, producer=self._producer) if not e.producer else e for e in events]
        try:
            positions = await self._publisher.publish_many(stamped)
        except KafkaError:
            for event in stamped:
                self._metrics.publish_failures.labels(event.event_type()).inc()
            raise
        for event in stamped:
            self._metrics.published.labels(topic_for(event).name, event.event_type()).inc()
            log.info("published %s event_id=%s", event.event_type(), event.event_id)
        return Receipt(stamped[0].event_id, positions[0], tuple(positions))
