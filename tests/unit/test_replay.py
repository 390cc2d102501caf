"""`esports replay` without Kafka: time windows, the partition merge, the Arrow schema, the writers."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.avro_mapping import to_avro_converter
from events.base import Event
from events.codec import EventCodec, event_to_json
from events.topics import CATALOGUE, spec
from projections.replay import command as replay
from projections.replay.arrow import SchemaConflict, arrow_type, topic_table
from projections.replay.source import PartitionMerge, RawRecord
from projections.replay.window import TimeWindow, iso_ms, parse_time, to_millis
from projections.replay.writers import Exported, ParquetWriter, csv_cell, open_writer
from schemas import SCHEMAS_DIR
from tests.unit.event_samples import sample_event

TOPICS = [t.name for t in CATALOGUE if t.event_types]
POSITION = ("topic", "partition", "offset", "timestamp")
T0 = 1_764_093_600_000  # 2025-11-25T18:00:00Z


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec.load(SCHEMAS_DIR)


def record(partition: int, offset: int, timestamp_ms: int) -> RawRecord:
    return RawRecord(partition, offset, timestamp_ms, None, b"")


# --- time window ------------------------------------------------------------------------------


def test_times_parse_with_z_offsets_and_naive_as_utc() -> None:
    expected = datetime(2025, 11, 25, 18, 0, tzinfo=UTC)
    assert parse_time("2025-11-25T18:00:00Z") == expected
    assert parse_time("2025-11-25T20:00:00+02:00") == expected
    assert parse_time("2025-11-25T18:00:00") == expected
    assert parse_time("2025-11-25") == expected - timedelta(hours=18)
    assert parse_time("2025-11-25T20:00:00+02:00").tzinfo is UTC


def test_a_bad_time_is_a_usage_error() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="ISO-8601"):
        parse_time("yesterday")


def test_sub_millisecond_bounds_round_up_so_the_window_stays_exact() -> None:
    moment = datetime(2025, 11, 25, 18, 0, 0, 500, tzinfo=UTC)
    assert to_millis(moment) == T0 + 1
    assert to_millis(moment.replace(microsecond=0)) == T0
    assert to_millis(datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)) == 0


def test_the_window_is_from_inclusive_to_exclusive() -> None:
    start = datetime(2025, 11, 25, 18, 0, tzinfo=UTC)
    window = TimeWindow.of(start, start + timedelta(seconds=1), now=start + timedelta(hours=1))
    assert (window.holds(T0 - 1), window.holds(T0), window.holds(T0 + 999), window.holds(T0 + 1000)) == (
        False,
        True,
        True,
        False,
    )
    assert window.describe()["from"] == "2025-11-25T18:00:00.000Z"


def test_the_window_defaults_to_the_beginning_and_now() -> None:
    now = datetime(2025, 11, 25, 18, 0, tzinfo=UTC)
    window = TimeWindow.of(None, None, now=now)
    assert window == TimeWindow(None, T0)
    assert window.holds(0) and not window.holds(T0)


def test_an_empty_or_inverted_window_is_refused() -> None:
    start = datetime(2025, 11, 25, 18, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="before --to"):
        TimeWindow.of(start, start, now=start)


def test_iso_ms_matches_event_to_json_times() -> None:
    assert iso_ms(T0 + 7) == "2025-11-25T18:00:00.007Z"


# --- partition merge --------------------------------------------------------------------------


def test_the_merge_interleaves_partitions_by_timestamp_then_partition_then_offset() -> None:
    merge = PartitionMerge([0, 1, 2])
    merge.add(0, [record(0, 10, 100), record(0, 11, 300)])
    merge.add(1, [record(1, 5, 100), record(1, 6, 200)])
    assert merge.release() == []  # partition 2 could still hold something older
    assert merge.starved() == [2]
    merge.close(2)
    released = merge.release()
    assert [(r.partition, r.offset) for r in released] == [(0, 10), (1, 5), (1, 6)]
    assert merge.starved() == [1]  # partition 0's next record (300) waits for partition 1
    merge.close(1)
    assert [(r.partition, r.offset) for r in merge.release()] == [(0, 11)]
    assert not merge.finished
    merge.close(0)
    assert merge.finished


def test_the_merge_keeps_log_order_within_a_partition_even_if_timestamps_go_back() -> None:
    merge = PartitionMerge([0])
    merge.add(0, [record(0, 1, 500), record(0, 2, 400)])
    merge.close(0)
    assert [r.offset for r in merge.release()] == [1, 2]


# --- Arrow schema -----------------------------------------------------------------------------


def test_avro_types_map_to_arrow_types() -> None:
    named: dict[str, Any] = {}
    assert arrow_type("int", named) == (pa.int32(), False)
    assert arrow_type("float", named) == (pa.float32(), False)
    assert arrow_type(["null", "long"], named) == (pa.int64(), True)
    assert arrow_type({"type": "map", "values": "double"}, named)[0] == pa.map_(pa.string(), pa.float64())
    enum = {"type": "enum", "name": "Role", "namespace": "x.y", "symbols": ["a", "b"]}
    assert arrow_type(enum, named)[0] == pa.string()
    assert arrow_type("Role", named, "x.y")[0] == pa.string()  # a reference to a named type
    assert arrow_type(["null", "string", "long"], named) == (pa.string(), True)  # JSON text


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_has_an_arrow_schema(codec: EventCodec, topic: str) -> None:
    table = topic_table(replay._avro_by_type(codec, topic))
    schema = table.schema
    assert schema.names[:5] == ["topic", "partition", "offset", "timestamp", "event_type"]
    assert schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("occurred_at").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("event_id").type == pa.string()
    assert not schema.field("event_id").nullable
    assert table.conflicts == []


def test_fields_missing_from_some_types_are_nullable(codec: EventCodec) -> None:
    schema = topic_table(replay._avro_by_type(codec, "tournaments")).schema
    assert not schema.field("tournament_id").nullable  # in every type, never null
    assert schema.field("winner").nullable and schema.field("best_of").nullable
    assert schema.field("best_of").type == pa.int64()
    assert schema.field("teams").type == pa.list_(pa.field("item", pa.string(), nullable=False))
    scores = schema.field("scores").type
    assert pa.types.is_list(scores) and pa.types.is_struct(scores.value_type)
    assert scores.value_type.field("score").type == pa.int64()


def test_a_field_typed_differently_by_two_types_becomes_json_text() -> None:
    head = [{"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}}]
    table = topic_table(
        {
            "A": {"type": "record", "name": "A", "fields": [*head, {"name": "x", "type": "long"}]},
            "B": {"type": "record", "name": "B", "fields": [*head, {"name": "x", "type": "string"}]},
        }
    )
    assert table.conflicts == ["x"]
    assert table.schema.field("x").type == pa.string() and table.schema.field("x").nullable


def test_a_field_named_like_a_position_column_is_refused() -> None:
    with pytest.raises(SchemaConflict, match="offset"):
        topic_table({"A": {"type": "record", "name": "A", "fields": [{"name": "offset", "type": "long"}]}})


# --- writers ----------------------------------------------------------------------------------


def samples(topic: str) -> list[Exported]:
    events: list[Event] = []
    for cls in spec(topic).event_types:
        events += [sample_event(cls), sample_event(cls, fill_optional=False)]
    return [Exported(record(i % 3, i, T0 + i), event) for i, event in enumerate(events)]


def write(codec: EventCodec, fmt: str, topic: str, path: Path, items: list[Exported]) -> dict[str, Any]:
    writer = open_writer(fmt, path, topic, topic_table(replay._avro_by_type(codec, topic)))
    writer.write(items[:3])
    writer.write(items[3:])
    writer.close()
    return writer.describe()


def arrow_values(event: Event) -> dict[str, Any]:
    values = to_avro_converter(type(event))(event)
    values["event_id"] = str(event.event_id)
    return values


@pytest.mark.parametrize("topic", TOPICS)
def test_parquet_reads_back_the_events_of_every_topic(codec: EventCodec, topic: str, tmp_path: Path) -> None:
    items = samples(topic)
    described = write(codec, "parquet", topic, tmp_path / "out.parquet", items)
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert len(rows) == len(items)
    for row, item in zip(rows, items, strict=True):
        assert row["event_type"] == item.event.event_type()
        assert (row["partition"], row["offset"]) == (item.record.partition, item.record.offset)
        assert row["timestamp"] == datetime.fromtimestamp(item.record.timestamp_ms / 1000, UTC)
        for name, value in arrow_values(item.event).items():
            assert row[name] == value, (topic, name)
    assert described["arrow_schema"][3] == "timestamp: timestamp[ms, tz=UTC] not null"


def test_parquet_is_written_in_row_groups(codec: EventCodec, tmp_path: Path) -> None:
    table = topic_table(replay._avro_by_type(codec, "polls"))
    writer = ParquetWriter(tmp_path / "p.parquet", "polls", table, row_group_rows=4)
    items = samples("polls")
    writer.write(items[:3])  # buffered: less than a row group
    writer.write(items[3:])  # 6 events in all: one full row group, the rest at close
    assert writer.row_groups == 1
    writer.close()
    assert pq.ParquetFile(tmp_path / "p.parquet").num_row_groups == 2 == writer.row_groups


@pytest.mark.parametrize("topic", ["tournaments", "ingest", "chat.messages"])
def test_jsonl_lines_are_position_plus_event_to_json(codec: EventCodec, topic: str, tmp_path: Path) -> None:
    items = samples(topic)
    write(codec, "jsonl", topic, tmp_path / "out.jsonl", items)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    for line, item in zip(lines, items, strict=True):
        assert line == {
            "topic": topic,
            "partition": item.record.partition,
            "offset": item.record.offset,
            "timestamp": iso_ms(item.record.timestamp_ms),
            **event_to_json(item.event),
        }


@pytest.mark.parametrize("topic", ["tournaments", "ingest", "streams"])
def test_csv_has_the_union_of_columns_and_json_for_nested_values(
    codec: EventCodec, topic: str, tmp_path: Path
) -> None:
    items = samples(topic)
    described = write(codec, "csv", topic, tmp_path / "out.csv", items)
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == described["columns"]
    for row, item in zip(rows, items, strict=True):
        expected = event_to_json(item.event)
        assert {k: v for k, v in row.items() if k in expected} == {
            k: csv_cell(v) for k, v in expected.items()
        }
        assert [row["topic"], row["offset"], row["timestamp"]] == [
            topic,
            str(item.record.offset),
            iso_ms(item.record.timestamp_ms),
        ]
        assert all(v == "" for k, v in row.items() if k not in expected and k not in POSITION)


def test_csv_cells() -> None:
    assert [csv_cell(None), csv_cell(True), csv_cell(3), csv_cell([{"a": 1}])] == [
        "",
        "true",
        "3",
        '[{"a": 1}]',
    ]


# --- command line -----------------------------------------------------------------------------


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = str(tmp_path / "x.jsonl")
    with pytest.raises(SystemExit) as exited:
        replay.main(["--topic", "polls", "--format", "xml", "--out", out])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        replay.main(["--topic", "polls", "--format", "csv", "--out", out, "--from", "soon"])
    assert exited.value.code == 2
    assert "ISO-8601" in capsys.readouterr().err
    bounds = ["--from", "2025-11-25T19:00:00+01:00", "--to", "2025-11-25T18:00:00Z"]
    assert replay.main(["--topic", "polls", "--format", "csv", "--out", out, *bounds]) == 2
    assert "must be before --to" in capsys.readouterr().err


def test_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        replay.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert all(option in text for option in ("--topic", "--from", "--to", "--format", "--out", "--strict"))


def test_the_offset_timezone_example_is_the_same_instant() -> None:
    assert parse_time("2025-11-25T19:00:00+01:00") == datetime(2025, 11, 25, 18, tzinfo=timezone.utc)  # noqa: UP017


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_lines_only_on_a_terminal_while_said_lines_always_show(tty: bool) -> None:
    stream = Terminal(tty)
    progress = replay.Progress(stream, interval=0.0)
    progress.tick(1500, 0.25)
    progress.say("replay: done")
    text = stream.getvalue()
    assert ("1,500 events" in text and "/s" in text and "25.0%" in text) is tty
    assert text.endswith("replay: done\n")
