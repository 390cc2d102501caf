"""The export formats: JSON lines, CSV and Parquet, each written a batch at a time.

Every row starts with the record's position (``topic`` as the catalogue names it, ``partition``,
``offset``, ``timestamp`` of the record) and ``event_type``, then the event's fields.

- jsonl: one object per line; fields as ``event_to_json`` writes them (times ISO-8601 'Z', ids str).
- csv: header = the position columns and the union of the topic's event fields; a field the row's
  event type lacks, or a null, is an empty cell; lists and records are JSON text; booleans
  ``true``/``false``.
- parquet: the Arrow schema of :mod:`projections.replay.arrow`, in row groups of ``row_group_rows``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from events.avro_mapping import to_avro_converter
from events.base import Event
from events.codec import event_to_json
from projections.replay.arrow import TopicTable
from projections.replay.source import RawRecord
from projections.replay.window import iso_ms

__all__ = ["FORMATS", "CsvWriter", "ExportWriter", "Exported", "JsonlWriter", "ParquetWriter", "open_writer"]

from projections.replay.options import FORMATS

ROW_GROUP_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class Exported:
    """A decoded event with the record it came from."""

    record: RawRecord
    event: Event


class ExportWriter(Protocol):
    """Writes batches of exported events to one file."""

    def write(self, batch: list[Exported]) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def _position(topic: str, item: Exported) -> dict[str, Any]:
    record = item.record
    return {"topic": topic, "partition": record.partition, "offset": record.offset}


def json_row(topic: str, item: Exported) -> dict[str, Any]:
    """The JSON object of one exported event (the jsonl line, the csv row before flattening)."""
    row = _position(topic, item)
    row["timestamp"] = iso_ms(item.record.timestamp_ms)
    row.update(event_to_json(item.event))
    return row


class JsonlWriter:
    """One JSON object per line, UTF-8."""

    def __init__(self, path: Path, topic: str) -> None:
        self._topic = topic
        self._file: TextIO = path.open("w", encoding="utf-8")

    def write(self, batch: list[Exported]) -> None:
        lines = (json.dumps(json_row(self._topic, item), ensure_ascii=False) for item in batch)
        self._file.write("".join(f"{line}\n" for line in lines))

    def close(self) -> None:
        self._file.close()

    def describe(self) -> dict[str, Any]:
        return {"order_of_keys": "topic, partition, offset, timestamp, event_type, then the event's fields"}


def csv_cell(value: Any) -> str:
    """One CSV cell: null empty, booleans true/false, lists and records JSON text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class CsvWriter:
    """RFC 4180 CSV (``\\r\\n`` line ends, quoted where needed), UTF-8, with a header row."""

    def __init__(self, path: Path, topic: str, columns: list[str]) -> None:
        self._topic = topic
        self.columns = columns
        self._file: TextIO = path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(columns)

    def write(self, batch: list[Exported]) -> None:
        for item in batch:
            row = json_row(self._topic, item)
            self._csv.writerow([csv_cell(row.get(column)) for column in self.columns])

    def close(self) -> None:
        self._file.close()

    def describe(self) -> dict[str, Any]:
        return {"columns": self.columns, "null": "empty cell", "nested": "JSON text"}


class ParquetWriter:
    """One Parquet file with the topic's Arrow schema, a row group per ``row_group_rows`` events.

    Each batch is turned into Arrow columns as it comes (compact while it waits for its row group);
    ``rows`` and ``buffered_bytes`` let a caller roll files by size (``esports export``).
    """

    def __init__(
        self, path: Path, topic: str, table: TopicTable, row_group_rows: int = ROW_GROUP_ROWS
    ) -> None:
        self._topic = topic
        self._table = table
        self._row_group_rows = row_group_rows
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer = pq.ParquetWriter(str(path), table.schema, compression="zstd")
        self.row_groups = 0
        self.rows = 0

    def write(self, batch: list[Exported]) -> None:
        if not batch:
            return
        self._buffer.append(
            pa.Table.from_pylist([self._row(item) for item in batch], schema=self._table.schema)
        )
        self._buffered += len(batch)
        self.rows += len(batch)
        while self._buffered >= self._row_group_rows:
            pending = pa.concat_tables(self._buffer)
            self._flush(pending.slice(0, self._row_group_rows))
            rest = pending.slice(self._row_group_rows)
            self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows

    @property
    def buffered_bytes(self) -> int:
        """Arrow bytes waiting for their row group (uncompressed: more than they will take on disk)."""
        return sum(t.nbytes for t in self._buffer)

    def _row(self, item: Exported) -> dict[str, Any]:
        event = item.event
        row = _position(self._topic, item)
        row["timestamp"] = item.record.timestamp_ms
        row["event_type"] = event.event_type()
        row.update(to_avro_converter(type(event))(event))
        for name, convert in self._table.converters[event.event_type()]:
            row[name] = convert(row[name])
        return row

    def _flush(self, rows: pa.Table) -> None:
        if rows.num_rows:
            self._writer.write_table(rows, row_group_size=rows.num_rows)
            self.row_groups += 1

    def close(self) -> None:
        if self._buffer:
            self._flush(pa.concat_tables(self._buffer))
        self._buffer, self._buffered = [], 0
        self._writer.close()

    def describe(self) -> dict[str, Any]:
        return {
            "arrow_schema": [
                f"{f.name}: {f.type}{'' if f.nullable else ' not null'}" for f in self._table.schema
            ],
            "type_conflicts_as_json_text": self._table.conflicts,
            "row_groups": self.row_groups,
            "compression": "zstd",
        }


def open_writer(fmt: str, path: Path, topic: str, table: TopicTable) -> ExportWriter:
    """The writer of ``fmt`` on ``path``; csv and parquet columns come from the topic's table."""
    if fmt == "jsonl":
        return JsonlWriter(path, topic)
    if fmt == "csv":
        return CsvWriter(path, topic, [f.name for f in table.schema])
    if fmt == "parquet":
        return ParquetWriter(path, topic, table)
    raise ValueError(f"unknown format {fmt!r}; have {FORMATS}")
