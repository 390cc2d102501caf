"""Reading one topic's records in a time window, merged across partitions in timestamp order.

Reads with :class:`projections.log_reader.LogReader` (no consumer group, nothing committed, bounded
by the end offsets captured at start: a topic that keeps receiving events would otherwise never end).

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
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from aiokafka import TopicPartition

from infra.settings import KafkaSettings
from projections.log_reader import LogReader, PartitionSpan, Record
from projections.replay.window import TimeWindow

__all__ = ["PartitionMerge", "RangeReader", "RawRecord"]

log = logging.getLogger(__name__)

LATE_MS = 5_000  # how far a partition is read past --to, for producers whose clocks disagree


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
        self._late_ms = late_ms
        self._log = LogReader(settings, "replay", f"the replay of {topic}", max_records=max_records)

    async def __aenter__(self) -> RangeReader:
        await self._log.__aenter__()
        try:
            await self._plan()
        except BaseException:
            await self._log.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._log.__aexit__(*exc)

    async def _plan(self) -> None:
        tps = [TopicPartition(self.topic, p) for p in range(self._partitions)]
        ends = await self._log.end_offsets(tps)
        starts = await self._log.offsets_at(tps, self.window.from_ms, ends)
        self._log.assign({tp: (starts[tp], ends[tp]) for tp in tps})
        log.debug("replay of %s: %s", self.topic, {p: s.describe() for p, s in self.spans.items()})

    @property
    def spans(self) -> dict[int, PartitionSpan]:
        """Each partition's offsets: where the export starts, ends, and how far it has read."""
        return {tp.partition: span for tp, span in self._log.spans.items()}

    @property
    def fraction_done(self) -> float:
        """How much of the offset range has been read (0..1), for progress lines."""
        spans = self._log.spans.values()
        total = sum(s.end - s.start for s in spans)
        if total <= 0:
            return 1.0
        read = sum(s.end - s.start if s.done else s.reached - s.start for s in spans)
        return min(1.0, read / total)

    async def batches(self) -> AsyncIterator[list[RawRecord]]:
        """Yield the window's records in merged order, a fetch at a time, until every partition ends."""
        merge = PartitionMerge(self.spans)
        self._close_ended(merge)
        while not merge.finished:
            starved = [TopicPartition(self.topic, p) for p in merge.starved()]
            if starved:
                fetched = await self._log.fetch(starved, stop=self._past_window)
                for tp, records in fetched.items():
                    merge.add(tp.partition, [self._raw(r) for r in records if self.window.holds(r.timestamp)])
                self._close_ended(merge)
            released = merge.release()
            if released:
                yield released

    def _past_window(self, record: Record) -> bool:
        """The partition can end here: later records are past ``to`` by more than clocks disagree."""
        return record.timestamp >= self.window.to_ms + self._late_ms

    def _close_ended(self, merge: PartitionMerge) -> None:
        for tp, span in self._log.spans.items():
            if span.done:
                merge.close(tp.partition)

    @staticmethod
    def _raw(record: Record) -> RawRecord:
        return RawRecord(record.partition, record.offset, record.timestamp, record.key, record.value)
