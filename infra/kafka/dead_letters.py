"""What a consumer does with a record it cannot decode: copy it to the dead-letter topic (the topic's
owner), or log and skip it (a reader of topics it does not own)."""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord

from infra.kafka.names import Headers, Position
from infra.kafka.publisher import EventPublisher

__all__ = ["DeadLetters", "LoggedDeadLetters"]

log = logging.getLogger(__name__)


class DeadLetters:
    """Copies records that cannot be decoded to the dead-letter topic, with their headers and the reason."""

    def __init__(self, publisher: EventPublisher, topic: str) -> None:
        self._publisher = publisher
        self.topic = topic
        self.count = 0

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> Position:
        log.warning(
            "undecodable record topic=%s partition=%s offset=%s reason=%s detail=%s -> %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail,
            self.topic,
        )
        headers = [*list(record.headers or ()), *_dead_letter_headers(record, reason, detail)]
        position = await self._publisher.publish_raw(
            self.topic, record.value, key=record.key, headers=headers
        )
        self.count += 1
        return position


class LoggedDeadLetters(DeadLetters):
    """For a reader that does not own its topics (a whole-topic reader on every worker, every edge
    node): it logs an undecodable record and skips it, since the topic's own consumer dead-letters it
    once."""

    def __init__(self, reader: str) -> None:  # no publisher: nothing is copied anywhere
        self._reader = reader
        self.topic = ""
        self.count = 0

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> Position:
        log.warning(
            "%s skips an undecodable record topic=%s partition=%s offset=%s: %s",
            self._reader,
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        self.count += 1
        return Position(record.topic, record.partition, record.offset)


def _dead_letter_headers(record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> Headers:
    return [
        ("dlq.reason", reason.encode()),
        ("dlq.detail", detail[:500].encode()),
        ("dlq.topic", record.topic.encode()),
        ("dlq.partition", str(record.partition).encode()),
        ("dlq.offset", str(record.offset).encode()),
    ]
