"""Decisions already on the log: read back after a (re)assignment, so a redelivered cause is not
decided a second time.

An agent publishes a decision, then stores its state (Faust's changelog, written in the background),
then acks; the offsets are committed every few seconds. A worker killed in between leaves causes
whose decisions are published but whose state or offset is not, and the next owner of the partition
is handed those causes again. Decision ids are deterministic, but without the state the redelivered
cause can even be decided differently (a rate limit that no longer sees the first decision), and
either way ``chat.messages`` would hold two decisions for one message.

:class:`PublishedDecisions` closes that: on the first cause it sees from a partition after each
rebalance, the agent reads the output partition back from that cause's timestamp (minus
:data:`MARGIN_MS` for clock skew between producers) to its end, once, and skips every decision of a
cause that already has one there. Only one worker owns a partition at a time, so the previous
owner's decisions are all on the log by then (acks=all) and no one adds to them meanwhile. The cost
is one read of a few seconds of one partition per partition and rebalance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.codec import DecodeError, EventCodec
from infra.kafka import BrokerUnavailable, client_options
from infra.settings import KafkaSettings

__all__ = ["MARGIN_MS", "PublishedDecisions"]

log = logging.getLogger(__name__)

MARGIN_MS = 10_000  # how far the clock of the decisions' producer may lag the clocks of the causes'


class PublishedDecisions:
    """Event ids on partitions of one output topic since a moment, read once per generation."""

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: EventCodec,
        topic: str,
        generation: Callable[[], int],
        *,
        agent: str,
    ) -> None:
        """``topic`` is the physical name; ``generation`` the consumer group generation now."""
        self.agent = agent
        self._kafka = kafka
        self._codec = codec
        self._topic = topic
        self._generation = generation
        self._ids: dict[int, set[str]] = {}
        self._since: dict[int, tuple[int, int]] = {}  # partition -> (generation, earliest ms read from)
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def seen(self, partition: int, since_ms: int, ids: Iterable[str]) -> bool:
        """Whether any of ``ids`` is on ``partition`` among what was published from ``since_ms`` on."""
        async with self._lock:
            generation = self._generation()
            read = self._since.get(partition)
            if read is None or read[0] != generation or since_ms - MARGIN_MS < read[1]:
                start = since_ms - MARGIN_MS
                self._ids[partition] = await self._read(partition, start)
                self._since[partition] = (generation, start)
        published = self._ids[partition]
        return any(i in published for i in ids)

    async def _read(self, partition: int, start_ms: int) -> set[str]:
        try:
            return await self._read_ids(partition, start_ms)
        except Exception as e:  # aiokafka's errors, untranslated: the caller retries the record
            raise BrokerUnavailable(f"reading back {self._topic}[{partition}]: {e!r}") from e

    async def _read_ids(self, partition: int, start_ms: int) -> set[str]:
        consumer = await self._started()
        tp = TopicPartition(self._topic, partition)
        consumer.assign([tp])
        found = await consumer.offsets_for_times({tp: max(0, start_ms)})
        end = (await consumer.end_offsets([tp]))[tp]
        start = found[tp].offset if found.get(tp) is not None else end
        consumer.seek(tp, start)
        ids: set[str] = set()
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                try:
                    ids.add(str(self._codec.decode(record.value).event_id))
                except DecodeError:
                    continue  # not a decision of ours; the readers of the topic dead-letter it
        log.info(
            "read back %s decisions from %s[%s] offsets %s..%s", len(ids), self._topic, partition, start, end
        )
        return ids

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **client_options(self._kafka, "readback"),
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer
