"""`esports export`'s pure parts: file names, where a partition resumes, rolling, filters, recovery.

The files here are written to a temporary folder (the local store): no service is involved.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.streams import StreamWentLive
from events.tournaments import TournamentCreated
from infra.settings import ExportSettings
from projections.export import command
from projections.export.exporter import recover
from projections.export.files import DatasetWriter, Limits, roll_due
from projections.export.filters import EventFilter, Scope
from projections.export.layout import (
    DataFile,
    date_of,
    is_staging,
    overlaps,
    parse,
    resume_offsets,
    staging_name,
)
from projections.export.options import topic_list
from projections.export.store import DatasetStore
from projections.replay.arrow import SchemaConflict, topic_table
from projections.replay.decoding import avro_by_type
from projections.replay.source import RawRecord
from projections.replay.writers import Exported
from schemas import SCHEMAS_DIR
from tests.unit.event_samples import sample_event

DAY1 = int(datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)
DAY2 = DAY1 + 1000  # 2026-11-26T00:00:00Z


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec.load(SCHEMAS_DIR)


def test_a_file_name_says_topic_date_partition_and_offsets_and_parses_back() -> None:
    f = DataFile("chat.messages", 3, 120, 4711, date(2026, 11, 25))
    assert f.path == "topic=chat.messages/date=2026-11-25/part-3-120-4711.parquet"
    assert parse(f.path) == f
    assert parse(f"s3bucket/prefix/{f.path}") == f
    assert parse("topic=chat.messages/date=2026-11-25/part-3-9-8.parquet") is None  # first > last
    assert parse("topic=chat.messages/_schema/ChatMessageAccepted.avsc") is None
    assert parse("topic=chat.messages/date=2026-11-25/.part-3-120.parquet.tmp") is None


def test_staging_files_are_hidden_and_recognised() -> None:
    name = staging_name(3, 120)
    assert name.startswith(".") and not name.endswith(".parquet")
    assert is_staging(f"topic=x/date=2026-11-25/{name}")
    assert not is_staging("topic=x/date=2026-11-25/part-3-120-130.parquet")


def test_each_partition_resumes_after_its_newest_file() -> None:
    files = [
        DataFile("chat.messages", 0, 0, 99, date(2026, 11, 25)),
        DataFile("chat.messages", 0, 100, 250, date(2026, 11, 26)),  # a new date: a new file
        DataFile("chat.messages", 1, 0, 9, date(2026, 11, 25)),
        DataFile("polls", 0, 7, 7, date(2026, 11, 25)),
    ]
    assert resume_offsets(files) == {("chat.messages", 0): 251, ("chat.messages", 1): 10, ("polls", 0): 8}
    assert resume_offsets([]) == {}
    assert overlaps(files) == []
    clash = DataFile("chat.messages", 0, 250, 300, date(2026, 11, 26))
    assert overlaps([*files, clash]) == [(files[1], clash)]


def test_dates_are_utc_days_of_the_record_timestamp() -> None:
    assert date_of(DAY1) == date(2026, 11, 25) and date_of(DAY2) == date(2026, 11, 26)


@pytest.mark.parametrize(
    ("rows", "size", "age", "due"),
    [(9, 10, 1.0, False), (10, 0, 0.0, True), (1, 100, 0.0, True), (1, 1, 5.0, True), (0, 0, 4.9, False)],
)
def test_a_file_rolls_at_its_records_bytes_or_age_limit(rows: int, size: int, age: float, due: bool) -> None:
    assert roll_due(rows, size, age, Limits(records=10, bytes=100, age_s=5.0, row_group_rows=4)) is due


def test_export_columns_leave_the_topic_to_the_folders_and_reserve_the_hive_keys(codec: EventCodec) -> None:
    table = command._tables(codec, ["chat.messages"])["chat.messages"]
    assert table.schema.names[:4] == ["partition", "offset", "timestamp", "event_type"]
    assert "topic" not in table.schema.names and "date" not in table.schema.names
    schema = {"type": "record", "name": "X", "fields": [{"name": "date", "type": "string"}]}
    with pytest.raises(SchemaConflict):
        topic_table({"X": schema}, command.FILE_COLUMNS, command.HIVE_KEYS)


def _exported(event: ChatMessageAccepted, partition: int, offset: int, timestamp_ms: int) -> Exported:
    return Exported(RawRecord(partition, offset, timestamp_ms, None, b""), event)


def _chat(codec: EventCodec, stream: str = "s1") -> ChatMessageAccepted:
    event = sample_event(ChatMessageAccepted, stream_id=stream)
    assert isinstance(event, ChatMessageAccepted)
    return event


def test_files_roll_by_records_and_by_date_and_never_overlap(codec: EventCodec, tmp_path: Path) -> None:
    store = DatasetStore.open(str(tmp_path), ExportSettings())
    tables = {"chat.messages": topic_table(avro_by_type(codec, "chat.messages"), command.FILE_COLUMNS)}
    writer = DatasetWriter(store, tables, Limits(records=3, bytes=1 << 30, age_s=3600, row_group_rows=2))
    items = [_exported(_chat(codec), 0, offset, DAY1) for offset in range(10, 14)]
    items += [_exported(_chat(codec), 0, offset, DAY2) for offset in range(14, 16)]
    writer.add("chat.messages", 0, items[:5])
    writer.add("chat.messages", 0, items[5:])
    writer.commit_all()
    listing = store.listing()
    assert [f.path for f in listing.files] == [
        "topic=chat.messages/date=2026-11-25/part-0-10-12.parquet",
        "topic=chat.messages/date=2026-11-25/part-0-13-13.parquet",
        "topic=chat.messages/date=2026-11-26/part-0-14-15.parquet",
    ]
    assert listing.leftovers == []
    rows = pq.read_table(tmp_path / listing.files[0].path).to_pylist()
    assert [r["offset"] for r in rows] == [10, 11, 12] and {r["partition"] for r in rows} == {0}
    assert writer.files_committed == 3 and writer.rows_committed == 6


def test_recovery_removes_leftovers_and_torn_files_and_resumes_after_whole_ones(
    codec: EventCodec, tmp_path: Path
) -> None:
    store = DatasetStore.open(str(tmp_path), ExportSettings())
    tables = {"chat.messages": topic_table(avro_by_type(codec, "chat.messages"), command.FILE_COLUMNS)}
    writer = DatasetWriter(store, tables, Limits(records=2, bytes=1 << 30, age_s=3600, row_group_rows=2))
    writer.add("chat.messages", 1, [_exported(_chat(codec), 1, o, DAY1) for o in range(5)])
    # offsets 0-3 are committed (two files); offset 4 sits in an open file when the "kill" comes
    torn = DataFile("chat.messages", 2, 0, 7, date(2026, 11, 25))
    (tmp_path / torn.folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / torn.path).write_bytes(b"PAR1 not a whole file")
    said: list[str] = []
    assert recover(store, said.append) == {("chat.messages", 1): 4}
    assert not (tmp_path / torn.path).exists()
    assert store.listing().leftovers == [] and "half-written" in said[0]


def test_filters_judge_the_fields_an_event_has() -> None:
    in_s1 = sample_event(ChatMessageAccepted, stream_id="s1")
    in_s2 = sample_event(ChatMessageAccepted, stream_id="s2")
    live = sample_event(StreamWentLive, stream_id="s9", channel_id="c1", match_id="m1")
    tournament = sample_event(TournamentCreated)
    streams = EventFilter((Scope("stream_id", frozenset({"s1"})),))
    assert streams.keep(in_s1, 0) and not streams.keep(in_s2, 0) and not streams.keep(tournament, 0)
    channel = EventFilter((Scope("channel_id", frozenset({"c1"}), frozenset({"s2"})),))
    assert channel.keep(live, 0) and channel.keep(in_s2, 0) and not channel.keep(in_s1, 0)
    match = EventFilter((Scope("match_id", frozenset({"m1"}), frozenset({"s1"})),))
    assert match.keep(live, 0) and match.keep(in_s1, 0) and not match.keep(in_s2, 0)
    both = EventFilter(channel.scopes + match.scopes)
    assert both.keep(live, 0) and not both.keep(in_s1, 0) and not both.keep(in_s2, 0)
    window = EventFilter(from_ms=100, to_ms=200)
    assert [window.keep(in_s1, t) for t in (99, 100, 199, 200)] == [False, True, True, False]
    assert window.past_end(5200, 5000) and not window.past_end(5199, 5000)
    assert EventFilter().empty and not window.empty


def _args(*argv: str) -> argparse.Namespace:
    return command.build_parser().parse_args(list(argv))


def test_filters_need_once_and_a_window_must_be_ordered() -> None:
    settings = command.Settings()
    with pytest.raises(command.UsageError):
        command.options_of(_args("--stream", "s1"), settings)
    with pytest.raises(command.UsageError):
        command.options_of(
            _args("--once", "--from", "2026-11-25T10:00Z", "--to", "2026-11-25T10:00Z"), settings
        )
    options = command.options_of(_args("--once", "--from", "2026-11-25T10:00Z", "--out", "x"), settings)
    assert options.from_ms == int(datetime(2026, 11, 25, 10, tzinfo=UTC).timestamp() * 1000)
    assert options.to_ms is None and options.out == "x"
    assert options.topics == topic_list(settings.export.topics)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["--match", "m1"]) == 2
    assert "need --once" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        command.main(["--topics", "chat.messages,nope"])
    assert exited.value.code == 2


def test_a_dataset_keeps_the_filters_it_was_made_with(tmp_path: Path) -> None:
    store = DatasetStore.open(str(tmp_path), ExportSettings())
    made = command._manifest(_args("--once", "--stream", "s1"), EventFilter(from_ms=None))
    command._check_manifest(store, made)
    command._check_manifest(store, made)  # the same again: fine
    other = command._manifest(_args("--once"), EventFilter())
    with pytest.raises(command.DatasetMismatch):
        command._check_manifest(store, other)
