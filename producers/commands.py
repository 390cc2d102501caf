"""Publishing a command's events: after the broker's ack, answer with the event id and its position.

A command waits at most ``api.publish_timeout_s`` for Kafka (a bounded publish, see
:meth:`infra.kafka.EventPublisher.publish_many`). When that time is up the command fails with
:class:`~infra.kafka.NotPublished` (none of its events is published, now or later: the caller may
undo what it stored and the client may retry) or, rarely, :class:`~infra.kafka.PublishInDoubt` (a
broker that stalled holding them may still append them: keep what was stored).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass

from events.base import Event
from events.topics import topic_for
from infra.kafka import EventPublisher, KafkaError, Position, PublishInDoubt
from producers.metrics import ApiMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof a command was recorded: the first event's id and position, and every event's position."""

    event_id: uuid.UUID
    position: Position
    positions: tuple[Position, ...]


def nothing_recorded(error: KafkaError) -> bool:
    """True when a failed publish certainly left nothing in the log (so stored state may be undone)."""
    return not isinstance(error, PublishInDoubt)


class CommandBus:
    """Stamps events with the API as producer and publishes them, acknowledged, in order, in bounded time."""

    def __init__(
        self, publisher: EventPublisher, metrics: ApiMetrics, *, producer: str, timeout_s: float
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._producer = producer
        self._timeout_s = timeout_s

    async def publish(self, *events: Event) -> Receipt:
        stamped = [dataclasses.replace(e, producer=self._producer) if not e.producer else e for e in events]
        try:
            positions = await self._publisher.publish_many(stamped, timeout_s=self._timeout_s)
        except KafkaError as e:
            outcome = "not_recorded" if nothing_recorded(e) else "in_doubt"
            for event in stamped:
                self._metrics.publish_failures.labels(event.event_type(), outcome).inc()
            log.warning(
                "publishing %s failed (%s): %s",
                ", ".join(f"{event.event_type()} event_id={event.event_id}" for event in stamped),
                outcome,
                e,
            )
            raise
        for event in stamped:
            self._metrics.published.labels(topic_for(event).name, event.event_type()).inc()
            log.info("published %s event_id=%s", event.event_type(), event.event_id)
        return Receipt(stamped[0].event_id, positions[0], tuple(positions))
