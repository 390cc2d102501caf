"""The export loop: from where the dataset ends, read the topics' partitions into its files.

Resuming (:func:`recover`): half-written staging files are deleted, the newest file of each
partition is checked whole (a torn one is deleted), and each partition resumes at its newest file's
``last + 1`` (never before the oldest retained offset, nor before ``--from``'s offset). Records of
files that were still open when the exporter died were never committed: they are read again. So a
record is in the dataset once, whatever moment the exporter was killed at.

Reading is in rounds, with the group-less :class:`projections.log_reader.LogReader` (no consumer
group; the dataset's file names are the only stored offsets): a round reads every partition up to
the end offsets found when it began. ``--once`` is one round; the service runs rounds until
stopped, waiting ``poll_interval_s`` when there was nothing new, and commits files by age between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from events.codec import EventCodec
from events.topics import spec
from infra.settings import Settings
from projections.export.files import DatasetWriter
from projections.export.filters import EventFilter
from projections.export.layout import newest_per_partition, overlaps, resume_offsets
from projections.export.store import DatasetStore
from projections.log_reader import LogReader, Record
from projections.replay.decoding import decode_record
from projections.replay.source import LATE_MS, RawRecord
from projections.replay.writers import Exported

__all__ = ["ExportPlan", "ExportReport", "Exporter", "recover"]

log = logging.getLogger(__name__)

MAX_RECORDS = 5000  # records per fetch
PRINTED_SKIPS = 100


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What to export: logical topics with their partition counts, physical names, and the filter."""

    partitions: dict[str, int]
    physical: dict[str, str]
    event_filter: EventFilter = field(default_factory=EventFilter)

    def topic_partitions(self) -> dict[TopicPartition, tuple[str, int]]:
        return {
            TopicPartition(self.physical[topic], p): (topic, p)
            for topic, count in self.partitions.items()
            for p in range(count)
        }


@dataclass(slots=True)
class ExportReport:
    """What an export did: events per topic, records skipped (undecodable) and filtered out."""

    events: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    filtered: int = 0
    resumed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def recover(store: DatasetStore, say: Callable[[str], None]) -> dict[tuple[str, int], int]:
    """Clean what a killed exporter left and return where each partition in the dataset resumes."""
    listing = store.listing()
    for leftover in listing.leftovers:
        store.delete(leftover)
    if listing.leftovers:
        say(f"removed {len(listing.leftovers)} half-written file(s) of an earlier run")
    files = list(listing.files)
    for f in newest_per_partition(files).values():
        if not store.is_whole(f):
            store.delete(f.path)
            files.remove(f)
    for a, b in overlaps(files):
        say(f"warning: {a.path} and {b.path} overlap: was the dataset written by two exporters at once?")
    return resume_offsets(files)


class Exporter:
    """Reads a plan's partitions into a :class:`DatasetWriter` (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        codec: EventCodec,
        writer: DatasetWriter,
        plan: ExportPlan,
        stop: asyncio.Event,
        say: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._writer = writer
        self._plan = plan
        self._stop = stop
        self._say = say
        self._where = plan.topic_partitions()
        self._allowed = {t: {c.event_type() for c in spec(t).event_types} for t in plan.partitions}
        self.report = ExportReport()
        self.log: LogReader | None = None
        self.lag: dict[tuple[str, int], int] = {}  # (topic, partition) -> records not read yet

    async def run(self, resume: dict[tuple[str, int], int], *, once: bool) -> ExportReport:
        """Export until the end offsets found at start (``once``) or until ``stop`` is set."""
        started = time.monotonic()
        what = f"the export of {', '.join(self._plan.partitions)}"
        async with LogReader(self._settings.kafka, "export", what, max_records=MAX_RECORDS) as reader:
            self.log = reader
            try:
                await self._rounds(reader, resume, once=once)
            except BaseException:
                self._writer.abandon_all()
                raise
            self._writer.commit_all()
        self.report.seconds = time.monotonic() - started
        return self.report

    async def _rounds(self, reader: LogReader, resume: dict[tuple[str, int], int], *, once: bool) -> None:
        tps = list(self._where)
        ends = await reader.end_offsets(tps)
        begins = await reader.offsets_at(tps, self._plan.event_filter.from_ms, ends)
        starts = {tp: self._start(tp, resume, begins[tp]) for tp in tps}
        while True:
            reached = await self._round(reader, starts, ends)
            if once or self._stop.is_set():
                return
            starts, ends = reached, await reader.end_offsets(tps)
            self.lag = {self._where[tp]: max(0, ends[tp] - starts[tp]) for tp in tps}
            if all(starts[tp] >= ends[tp] for tp in tps):
                self._writer.roll_due()
                await _wait(self._stop, self._settings.export.poll_interval_s)

    def _start(self, tp: TopicPartition, resume: dict[tuple[str, int], int], begin: int) -> int:
        where = self._where[tp]
        if where not in resume:
            return begin
        self.report.resumed[f"{where[0]}/{where[1]}"] = resume[where]
        if resume[where] < begin and self._plan.event_filter.from_ms is None:
            self._say(
                f"warning: {where[0]} partition {where[1]} resumes at {begin}, not {resume[where]}: "
                "the records in between are past the topic's retention"
            )
        return max(resume[where], begin)

    async def _round(
        self, reader: LogReader, starts: dict[TopicPartition, int], ends: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        reader.assign({tp: (starts[tp], ends[tp]) for tp in starts})
        past_end = self._past_end if self._plan.event_filter.to_ms is not None else None
        while reader.open and not self._stop.is_set():
            for tp, records in (await reader.fetch(stop=past_end)).items():
                self._take(tp, records)
            self._writer.roll_due()
        return {tp: span.reached for tp, span in reader.spans.items()}

    def _past_end(self, record: Record) -> bool:
        return self._plan.event_filter.past_end(record.timestamp, LATE_MS)

    def _take(self, tp: TopicPartition, records: list[Record]) -> None:
        topic, partition = self._where[tp]
        allowed, keep = self._allowed[topic], self._plan.event_filter
        batch: list[Exported] = []
        for record in records:
            raw = RawRecord(record.partition, record.offset, record.timestamp, record.key, record.value)
            decoded = decode_record(self._codec, raw, allowed)
            if not isinstance(decoded, Exported):
                self._skip(topic, raw, decoded[0])
            elif keep.empty or keep.keep(decoded.event, raw.timestamp_ms):
                batch.append(decoded)
            else:
                self.report.filtered += 1
        if batch:
            self._writer.add(topic, partition, batch)
            self.report.events[topic] += len(batch)

    def _skip(self, topic: str, record: RawRecord, reason: str) -> None:
        self.report.skipped += 1
        if self.report.skipped <= PRINTED_SKIPS:
            self._say(
                f"skipped undecodable record topic={topic} partition={record.partition} "
                f"offset={record.offset} reason={reason}"
            )
        elif self.report.skipped == PRINTED_SKIPS + 1:
            self._say("further undecodable records are counted, not printed")


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
