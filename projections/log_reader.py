"""Reading partitions of the log between two offsets, outside any consumer group.

The one reader under ``esports rebuild`` (:mod:`projections.rebuild.reader`) and ``esports replay``
(:mod:`projections.replay.source`); each adds what it does with the records.

Why no group: a rebuild or an export must not join (and rebalance) a live service's group, nor move
or commit the offsets ops tools show for it. Why bounded: each partition is read from a start offset
up to an end offset fixed beforehand, so a topic that keeps receiving events still lets the read end.
Read committed: records of aborted transactions are never seen. Transaction markers (and compaction)
take offsets without yielding records, so a partition's end is told by the consumer's position, not
by its last record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from infra.kafka import BrokerUnavailable, client_options, translate
from infra.settings import KafkaSettings

__all__ = ["IDLE_LIMIT_S", "LogReader", "PartitionSpan", "Record"]

IDLE_LIMIT_S = 60.0  # no record and no progress for this long while data is due: give up

Record: TypeAlias = ConsumerRecord[bytes, bytes]


@dataclass(slots=True)
class PartitionSpan:
    """The offsets of one partition a read covers: ``[start, end)``; ``reached`` is the next offset."""

    start: int
    end: int
    reached: int
    done: bool = False

    def describe(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end, "reached": self.reached}


class LogReader:
    """Reads assigned partitions from their start offsets up to their end offsets, a fetch at a time.

    Usage::

        async with LogReader(settings.kafka, "rebuild", "the rebuild of streams") as log:
            ends = await log.end_offsets(tps)
            log.assign({tp: (start, ends[tp]) for tp in tps})
            while log.open:
                for tp, records in (await log.fetch()).items():
                    ...

    ``what`` names the reading in error messages (``"the replay of chat.messages"``).
    """

    def __init__(self, settings: KafkaSettings, role: str, what: str, *, max_records: int) -> None:
        self.what = what
        self.spans: dict[TopicPartition, PartitionSpan] = {}
        self._max_records = max_records
        self._idle_since = time.monotonic()
        self._consumer = AIOKafkaConsumer(
            **client_options(settings, role),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )

    async def __aenter__(self) -> LogReader:
        try:
            await self._consumer.start()
        except Exception as e:
            await self._consumer.stop()
            raise translate(e, f"starting {self.what}") from e
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset to be written, per partition (the end of a read that starts now)."""
        try:
            ends: dict[TopicPartition, int] = await self._consumer.end_offsets(tps)
        except Exception as e:
            raise translate(e, f"reading the end offsets for {self.what}") from e
        return ends

    async def offsets_at(
        self, tps: list[TopicPartition], at_ms: int | None, ends: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """Per partition, the earliest offset whose record timestamp is at least ``at_ms`` (no earlier
        record can be that late), its end when there is none; ``at_ms`` None: the oldest retained."""
        try:
            begins: dict[TopicPartition, int] = await self._consumer.beginning_offsets(tps)
            if at_ms is None:
                return begins
            found = await self._consumer.offsets_for_times({tp: at_ms for tp in tps})
        except Exception as e:
            raise translate(e, f"planning {self.what}") from e
        return {tp: ends[tp] if found[tp] is None else max(found[tp].offset, begins[tp]) for tp in tps}

    def assign(self, ranges: Mapping[TopicPartition, tuple[int, int]]) -> None:
        """Read these partitions (only these) from ``start`` (inclusive) to ``end`` (exclusive)."""
        self.spans = {tp: PartitionSpan(start, end, start) for tp, (start, end) in ranges.items()}
        self._consumer.assign(list(ranges))
        for tp, (start, _) in ranges.items():
            self._consumer.seek(tp, start)
        for tp, span in self.spans.items():
            if span.start >= span.end:
                self.close(tp)
        self._idle_since = time.monotonic()

    @property
    def open(self) -> list[TopicPartition]:
        """The partitions not read to their end yet."""
        return [tp for tp, span in self.spans.items() if not span.done]

    def close(self, tp: TopicPartition) -> None:
        """Read no further in ``tp``."""
        span = self.spans[tp]
        if not span.done:
            span.done = True
            self._consumer.pause(tp)

    async def fetch(
        self,
        tps: Iterable[TopicPartition] | None = None,
        *,
        stop: Callable[[Record], bool] | None = None,
    ) -> dict[TopicPartition, list[Record]]:
        """One fetch from ``tps`` (default: every open partition): their records below each end, in
        log order. A partition is closed at its end, or at the first record ``stop`` returns True for
        (that record is not returned). Raises ``BrokerUnavailable`` after :data:`IDLE_LIMIT_S`
        without progress."""
        wanted = self.open if tps is None else list(tps)
        try:
            fetched = await self._consumer.getmany(*wanted, timeout_ms=500, max_records=self._max_records)
            progressed = False
            out: dict[TopicPartition, list[Record]] = {}
            for tp, records in fetched.items():
                progressed |= bool(records)
                out[tp] = self._below_end(tp, records, stop)
            for tp in wanted:
                progressed |= await self._check_end(tp)
        except Exception as e:
            raise translate(e, f"reading the topics of {self.what}") from e
        if progressed:
            self._idle_since = time.monotonic()
        elif time.monotonic() - self._idle_since > IDLE_LIMIT_S:
            raise BrokerUnavailable(f"{self.what}: no progress for {IDLE_LIMIT_S:.0f} s")
        return out

    def _below_end(
        self, tp: TopicPartition, records: list[Record], stop: Callable[[Record], bool] | None
    ) -> list[Record]:
        span = self.spans[tp]
        kept: list[Record] = []
        for record in records:
            if span.done or record.offset >= span.end or (stop is not None and stop(record)):
                self.close(tp)
                break
            span.reached = record.offset + 1
            kept.append(record)
        return kept

    async def _check_end(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` progressed: its position moved, or it is done."""
        span = self.spans[tp]
        if span.done:
            return True
        position = await self._consumer.position(tp)
        moved = position > span.reached
        span.reached = max(span.reached, min(position, span.end))
        if position >= span.end:
            self.close(tp)
            return True
        return moved
