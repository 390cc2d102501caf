"""Reading one topic's records in a time window: manual assignment, no consumer group, bounded.

Why no group: an export must not join (and rebalance) a live service's group, nor commit offsets.
Why end offsets captured at start: a topic that keeps receiving events would otherwise never end.

Per partition, reading starts at ``offsets_for_times(from)`` (the earliest offset whose timestamp is
at least ``from``: no earlier record can be in the window) and stops at the end offset captured
when the export started, or at the first record more than ``late_ms`` past ``to``. Records outside
the window are dropped, so the result is exact even when timestamps of one partition are slightly
out of order (producers on several hosts): up to ``late_ms`` of disorder is tolerated.

Order: each partition in log order; partitions interleaved by a k-way merge on
``(timestamp, partition, offset)``, which is a total sort whenever each partition's timestamps are
non-decreasing. Memory stays bounded: a partition is fetched only when its buffer is empty.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.kafka import BrokerUnavailable, KafkaError, translate
from infra.settings import KafkaSettings
from projections.replay_window import TimeWindow

__all__ = ["PartitionMerge", "PartitionSpan", "RangeReader", "RawRecord"]

log = logging.getLogger(__name__)

LATE_MS = 5_000  # how far a partition is read past --to, for producers whose clocks disagree
IDLE_LIMIT_S = 60.0  # no record and no progress for this long while data is due: give up


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read, not yet decoded."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    def sort_key(self) -> tuple[int, int, int]:
        return (self.timestamp_ms, self.partition, self.offset)


@dataclass(slots=True)
class PartitionSpan:
    """The offsets of one partition an export covers: ``[start, end)``; ``reached`` is the next offset."""

    partition: int
    start: int
    end: int
    reached: int
    done: bool = False

    def describe(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end, "reached": self.reached}


class PartitionMerge:
    """Interleaves per-partition runs of records into one stream ordered by ``RawRecord.sort_key``.

    Pure. A record is released only when every partition still open has a buffered head, so a
    partition that is behind cannot be overtaken by a later record of another one.
    """

    def __init__(self, partitions: Iterable[int]) -> None:
        self._buffers: dict[int, deque[RawRecord]] = {p: deque() for p in partitions}
        self._open = set(self._buffers)
        self._heads: list[tuple[tuple[int, int, int], int]] = []

    def add(self, partition: int, records: Iterable[RawRecord]) -> None:
        buffer = self._buffers[partition]
        was_empty = not buffer
        buffer.extend(records)
        if was_empty and buffer:
            heapq.heappush(self._heads, (buffer[0].sort_key(), partition))

    def close(self, partition: int) -> None:
        """No more records will come for ``partition``."""
        self._open.discard(partition)

    def starved(self) -> list[int]:
        """Open partitions with nothing buffered: what must be fetched before anything is released."""
        return sorted(p for p in self._open if not self._buffers[p])

    def release(self) -> list[RawRecord]:
        """Every record that can be emitted in order now."""
        out: list[RawRecord] = []
        if self.starved():
            return out
        while self._heads:
            _, partition = heapq.heappop(self._heads)
            buffer = self._buffers[partition]
            out.append(buffer.popleft())
            if buffer:
                heapq.heappush(self._heads, (buffer[0].sort_key(), partition))
            elif partition in self._open:
                break  # only the partition just drained can have become starved
        return out

    @property
    def finished(self) -> bool:
        return not self._open and not self._heads


class RangeReader:
    """Reads the records of one physical topic whose timestamps fall in a window, in merged order.

    Usage::

        async with RangeReader(settings.kafka, "chat.messages", 6, window) as reader:
            async for records in reader.batches():
                ...
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        partitions: int,
        window: TimeWindow,
        *,
        max_records: int = 5000,
        late_ms: int = LATE_MS,
    ) -> None:
        self.topic = topic
        self._partitions = partitions
        self.window = window
        self.spans: dict[int, PartitionSpan] = {}
        self._max_records = max_records
        self._late_ms = late_ms
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-replay",
            request_timeout_ms=settings.request_timeout_ms,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )

    async def __aenter__(self) -> RangeReader:
        try:
            await self._consumer.start()
            await self._plan()
        except KafkaError:
            await self._consumer.stop()
            raise
        except Exception as e:
            await self._consumer.stop()
            raise translate(e, f"planning the replay of {self.topic}") from e
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def _plan(self) -> None:
        tps = [TopicPartition(self.topic, p) for p in range(self._partitions)]
        ends = await self._consumer.end_offsets(tps)
        starts = await self._start_offsets(tps, ends)
        self.spans = {
            tp.partition: PartitionSpan(tp.partition, starts[tp], ends[tp], starts[tp]) for tp in tps
        }
        self._consumer.assign(tps)
        for tp in tps:
            self._consumer.seek(tp, starts[tp])
        log.debug("replay of %s: %s", self.topic, {p: s.describe() for p, s in self.spans.items()})

    async def _start_offsets(self, tps: list[TopicPartition], ends: dict[Any, int]) -> dict[Any, int]:
        begins: dict[Any, int] = await self._consumer.beginning_offsets(tps)
        if self.window.from_ms is None:
            return begins
        found = await self._consumer.offsets_for_times({tp: self.window.from_ms for tp in tps})
        return {tp: ends[tp] if found[tp] is None else max(found[tp].offset, begins[tp]) for tp in tps}

    @property
    def fraction_done(self) -> float:
        """How much of the offset range has been read (0..1), for progress lines."""
        total = sum(s.end - s.start for s in self.spans.values())
        if total <= 0:
            return 1.0
        read = sum(s.end - s.start if s.done else s.reached - s.start for s in self.spans.values())
        return min(1.0, read / total)

    async def batches(self) -> AsyncIterator[list[RawRecord]]:
        """Yield the window's records in merged order, a fetch at a time, until every partition ends."""
        merge = PartitionMerge(self.spans)
        for span in self.spans.values():
            if span.start >= span.end:
                self._close(span, merge)
        idle_since = time.monotonic()
        while not merge.finished:
            progressed = await self._fetch(merge)
            released = merge.release()
            if released:
                yield released
            if progressed:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_LIMIT_S:
                raise BrokerUnavailable(f"reading {self.topic}: no progress for {IDLE_LIMIT_S:.0f} s")

    async def _fetch(self, merge: PartitionMerge) -> bool:
        wanted = [TopicPartition(self.topic, p) for p in merge.starved()]
        if not wanted:
            return True
        try:
            fetched = await self._consumer.getmany(*wanted, timeout_ms=500, max_records=self._max_records)
            progressed = False
            for tp, records in fetched.items():
                progressed |= bool(records)
                merge.add(tp.partition, self._in_window(self.spans[tp.partition], records, merge))
            for tp in wanted:
                progressed |= await self._check_end(self.spans[tp.partition], tp, merge)
        except KafkaError:
            raise
        except Exception as e:
            raise translate(e, f"reading {self.topic}") from e
        return progressed

    def _in_window(self, span: PartitionSpan, records: list[Any], merge: PartitionMerge) -> list[RawRecord]:
        kept: list[RawRecord] = []
        for record in records:
            if (
                span.done
                or record.offset >= span.end
                or record.timestamp >= self.window.to_ms + self._late_ms
            ):
                self._close(span, merge)
                break
            span.reached = record.offset + 1
            if self.window.holds(record.timestamp):
                kept.append(
                    RawRecord(span.partition, record.offset, record.timestamp, record.key, record.value)
                )
        return kept

    async def _check_end(self, span: PartitionSpan, tp: TopicPartition, merge: PartitionMerge) -> bool:
        """Transaction markers take offsets without yielding records: the position tells the end."""
        if span.done:
            return True
        position = await self._consumer.position(tp)
        moved = position > span.reached
        span.reached = max(span.reached, min(position, span.end))
        if position >= span.end:
            self._close(span, merge)
            return True
        return moved

    def _close(self, span: PartitionSpan, merge: PartitionMerge) -> None:
        if not span.done:
            span.done = True
            merge.close(span.partition)
            self._consumer.pause(TopicPartition(self.topic, span.partition))
