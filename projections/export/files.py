"""The open files of an export: one per (topic, partition), rolled by records, bytes, age and date.

A partition's records go to its one open file, in log order, until the file is due (records, bytes
or age limit: :func:`roll_due`) or a record of another date comes (each file holds one date); then
the file is committed (:meth:`DatasetStore.commit`) and the next one opened. So a partition's files
are committed in offset order and never overlap, which is what resuming relies on
(:func:`projections.export.layout.resume_offsets`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from infra.settings import ExportSettings
from projections.export.layout import DataFile, date_of
from projections.export.store import DatasetStore
from projections.replay.arrow import TopicTable
from projections.replay.writers import Exported, ParquetWriter

__all__ = ["DatasetWriter", "Limits", "OpenFile", "roll_due"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """When a file is closed: at ``records`` rows, about ``bytes`` bytes, or ``age_s`` after it opened."""

    records: int
    bytes: int
    age_s: float
    row_group_rows: int

    @classmethod
    def of(cls, settings: ExportSettings) -> Limits:
        return cls(settings.roll_records, settings.roll_bytes, settings.roll_age_s, settings.row_group_rows)


def roll_due(rows: int, size: int, age_s: float, limits: Limits) -> bool:
    """Whether a file of ``rows`` rows and about ``size`` bytes, open for ``age_s``, is to be committed."""
    return rows >= limits.records or size >= limits.bytes or age_s >= limits.age_s


class OpenFile:
    """A data file being written: staged locally under a hidden name until :meth:`commit`."""

    def __init__(
        self, store: DatasetStore, topic: str, partition: int, day: date, first: int, table: TopicTable,
        limits: Limits, opened_at: float,
    ) -> None:  # fmt: skip
        self.topic, self.partition, self.day, self.first, self.last = topic, partition, day, first, first
        self.opened_at = opened_at
        self._store = store
        self.staged: Path = store.staging_path(
            DataFile(topic, partition, first, first, day).folder, partition, first
        )
        self._writer = ParquetWriter(self.staged, topic, table, limits.row_group_rows)

    @property
    def rows(self) -> int:
        return self._writer.rows

    @property
    def size(self) -> int:
        """Bytes on disk so far plus the Arrow bytes waiting for their row group (an overestimate)."""
        return self.staged.stat().st_size + self._writer.buffered_bytes

    def write(self, batch: list[Exported]) -> None:
        self._writer.write(batch)
        self.last = batch[-1].record.offset

    def commit(self) -> DataFile:
        self._writer.close()
        final = DataFile(self.topic, self.partition, self.first, self.last, self.day)
        self._store.commit(self.staged, final)
        return final

    def abandon(self) -> None:
        """Drop the file (an error on the way: its records will be read again)."""
        self._writer.close()
        self.staged.unlink(missing_ok=True)


class DatasetWriter:
    """Routes a partition's exported events to its open file, and commits files as they fall due."""

    def __init__(
        self,
        store: DatasetStore,
        tables: dict[str, TopicTable],
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._tables = tables
        self._limits = limits
        self._clock = clock
        self._open: dict[tuple[str, int], OpenFile] = {}
        self.files_committed = 0
        self.rows_committed = 0

    def add(self, topic: str, partition: int, items: list[Exported]) -> None:
        """Append a partition's events (in log order) to its files."""
        for day, group in itertools.groupby(items, key=lambda item: date_of(item.record.timestamp_ms)):
            pending = list(group)
            while pending:
                current = self._file_for(topic, partition, day, pending[0].record.offset)
                room = self._limits.records - current.rows
                current.write(pending[:room])
                pending = pending[room:]
                if current.rows >= self._limits.records:
                    self._commit((topic, partition))

    def _file_for(self, topic: str, partition: int, day: date, first: int) -> OpenFile:
        key = (topic, partition)
        current = self._open.get(key)
        if current is not None and current.day != day:
            self._commit(key)
            current = None
        if current is None:
            current = OpenFile(
                self._store, topic, partition, day, first, self._tables[topic], self._limits, self._clock()
            )
            self._open[key] = current
        return current

    def roll_due(self) -> None:
        """Commit every open file past its size or age limit."""
        now = self._clock()
        for key, current in list(self._open.items()):
            if roll_due(current.rows, current.size, now - current.opened_at, self._limits):
                self._commit(key)

    def commit_all(self) -> None:
        for key in list(self._open):
            self._commit(key)

    def abandon_all(self) -> None:
        for current in self._open.values():
            current.abandon()
        self._open.clear()

    def _commit(self, key: tuple[str, int]) -> None:
        current = self._open.pop(key)
        final = current.commit()
        log.info("export: committed %s (%d rows)", final.path, current.rows)
        self.files_committed += 1
        self.rows_committed += current.rows

    @property
    def open_rows(self) -> int:
        return sum(f.rows for f in self._open.values())
