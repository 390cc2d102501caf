"""`esports replay` against the real broker: exact counts per type in a window, every format.

Records are produced with explicit timestamps (aiokafka's ``timestamp_ms``), so the window's edges
are tested to the millisecond without sleeping: a record at ``--from`` is in, one at ``--to`` is out.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaProducer

from events.avro_mapping import to_avro_converter
from events.base import Event
from events.codec import EventCodec, event_to_json
from events.topics import partition_key
from infra.kafka import TopicNames
from infra.settings import Settings
from projections.replay import command as replay
from projections.replay.window import iso_ms
from tests.unit.event_samples import sample_event

pytestmark = pytest.mark.integration

TOPIC = "tournaments"
MINUTE_MS = 60_000
# Events per type before, inside and after the window (different per type, so a mix-up shows).
INSIDE = {
    "TournamentCreated": 2,
    "MatchScheduled": 3,
    "MatchStarted": 1,
    "MatchScoreUpdated": 4,
    "MatchEnded": 2,
}


@dataclass
class Scenario:
    """What was produced: the window and the events inside it, by event id."""

    settings: Settings
    from_ms: int
    to_ms: int
    inside: dict[str, Event] = field(default_factory=dict)
    produced: int = 0

    def argv(self, fmt: str, out: Path, *extra: str) -> list[str]:
        bounds = ["--from", iso_ms(self.from_ms), "--to", iso_ms(self.to_ms)]
        return ["--topic", TOPIC, *bounds, "--format", fmt, "--out", str(out), *extra]


def make_events(count_by_type: dict[str, int], codec: EventCodec, tag: str) -> list[Event]:
    events = []
    for event_type, count in count_by_type.items():
        cls = codec.event_class(event_type)
        events += [sample_event(cls, tournament_id=f"{tag}-{event_type}-{i}") for i in range(count)]
    return events


async def produce(
    settings: Settings, codec: EventCodec, timed: list[tuple[int, Event | bytes | None]]
) -> None:
    """Send events (or raw values) with the given record timestamps, in that order, acks=all."""
    topic = TopicNames(settings.kafka.topic_prefix).physical(TOPIC)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for timestamp_ms, item in timed:
            value: bytes | None
            if isinstance(item, Event):
                value, key, headers = codec.encode(item), partition_key(item), codec.headers(item)
            else:
                value, key, headers = item, b"bad", []
            await producer.send_and_wait(topic, value, key=key, headers=headers, timestamp_ms=timestamp_ms)
    finally:
        await producer.stop()


@pytest.fixture
async def scenario(namespace: Settings, codec: EventCodec) -> Scenario:
    """Events before, inside and after a one-minute window half an hour ago, and two bad records inside."""
    base = int(datetime.now(UTC).timestamp() * 1000) - 30 * MINUTE_MS
    s = Scenario(namespace, from_ms=base + MINUTE_MS, to_ms=base + 2 * MINUTE_MS)
    before = make_events(dict.fromkeys(INSIDE, 2), codec, "before")
    inside = make_events(INSIDE, codec, "inside")
    after = make_events(dict.fromkeys(INSIDE, 1), codec, "after")
    timed: list[tuple[int, Event | bytes | None]] = [(base + i, e) for i, e in enumerate(before)]
    timed.append((s.from_ms - 1, before[0]))  # one millisecond too early
    timed += [(s.from_ms + 1000 * i, e) for i, e in enumerate(inside)]  # the first exactly at --from
    timed.append((s.to_ms - 1, inside[-1]))  # the last millisecond of the window
    timed += [(s.from_ms + 500, b"\x07not avro"), (s.from_ms + 600, None)]  # undecodable, tombstone
    timed += [(s.to_ms + i, e) for i, e in enumerate(after)]  # the first exactly at --to: out
    await produce(namespace, codec, timed)
    s.inside = {str(e.event_id): e for e in inside}
    s.produced = len(timed)
    return s


def expected_counts(s: Scenario) -> Counter[str]:
    counts = Counter(INSIDE)
    counts[next(reversed(s.inside.values())).event_type()] += 1  # published twice: at start and at to - 1
    return counts


async def run(argv: list[str], settings: Settings) -> int:
    return await asyncio.to_thread(replay.main, argv, settings)


def sidecar(out: Path) -> dict[str, Any]:
    return json.loads(Path(f"{out}.schema.json").read_text(encoding="utf-8"))


def arrow_values(event: Event) -> dict[str, Any]:
    values = to_avro_converter(type(event))(event)
    values["event_id"] = str(event.event_id)
    return values


async def test_parquet_export_has_exact_counts_arrow_types_and_the_published_values(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tournaments.parquet"
    assert await run(scenario.argv("parquet", out), scenario.settings) == 0

    table = pq.read_table(out)
    schema = table.schema
    assert schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("occurred_at").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("scheduled_start").type == pa.timestamp("ms", tz="UTC")
    assert (schema.field("partition").type, schema.field("offset").type) == (pa.int32(), pa.int64())
    assert schema.field("best_of").type == pa.int64() and schema.field("event_id").type == pa.string()
    assert pa.types.is_list(schema.field("teams").type)
    assert pa.types.is_struct(schema.field("scores").type.value_type)

    rows = table.to_pylist()
    assert Counter(r["event_type"] for r in rows) == expected_counts(scenario)
    for row in rows:
        assert scenario.from_ms <= row["timestamp"].timestamp() * 1000 < scenario.to_ms
        assert {k: row[k] for k in arrow_values(scenario.inside[row["event_id"]])} == arrow_values(
            scenario.inside[row["event_id"]]
        )
    keys = [(r["timestamp"], r["partition"], r["offset"]) for r in rows]
    assert keys == sorted(keys)

    meta = sidecar(out)
    assert meta["counts"] == dict(expected_counts(scenario)) and meta["events"] == len(rows)
    assert meta["skipped"]["count"] == 2
    assert meta["range"]["from"] == iso_ms(scenario.from_ms) and meta["range"]["to"] == iso_ms(scenario.to_ms)
    assert set(meta["event_types"]) == set(INSIDE)
    created = meta["event_types"]["MatchScheduled"]
    assert created["subject"] == "io.esports.events.tournaments.MatchScheduled"
    assert created["avro"]["name"] == "MatchScheduled" and isinstance(created["schema_id"], int)
    assert "timestamp: timestamp[ms, tz=UTC] not null" in meta["arrow_schema"]
    positions = meta["positions"]
    assert set(positions) == {"0", "1", "2"}
    assert sum(p["end"] for p in positions.values()) == scenario.produced
    assert "2 skipped" in capsys.readouterr().err


async def test_jsonl_and_csv_exports_hold_the_same_events(scenario: Scenario, tmp_path: Path) -> None:
    jsonl, csv_path = tmp_path / "t.jsonl", tmp_path / "t.csv"
    from_with_offset = datetime.fromtimestamp(scenario.from_ms / 1000, UTC).astimezone().isoformat()
    argv = scenario.argv("jsonl", jsonl)
    argv[argv.index("--from") + 1] = from_with_offset  # the same instant in the local zone
    assert await run(argv, scenario.settings) == 0
    assert await run(scenario.argv("csv", csv_path), scenario.settings) == 0

    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert Counter(line["event_type"] for line in lines) == expected_counts(scenario)
    for line in lines:
        event = scenario.inside[line["event_id"]]
        assert {k: v for k, v in line.items() if k not in ("topic", "partition", "offset", "timestamp")} == (
            event_to_json(event)
        )
        assert line["topic"] == TOPIC
    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert Counter(row["event_type"] for row in rows) == expected_counts(scenario)
    assert [(r["partition"], r["offset"]) for r in rows] == [
        (str(x["partition"]), str(x["offset"])) for x in lines
    ]
    assert json.loads(next(r for r in rows if r["event_type"] == "MatchScoreUpdated")["scores"])[0]["team"]
    assert sidecar(csv_path)["columns"][:5] == ["topic", "partition", "offset", "timestamp", "event_type"]


async def test_undecodable_records_are_reported_counted_and_fail_strict(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "strict.jsonl"
    assert await run(scenario.argv("jsonl", out, "--strict"), scenario.settings) == 1
    err = capsys.readouterr().err
    assert err.count("skipped undecodable record topic=tournaments") == 2
    assert "reason=bad_magic_byte" in err and "reason=tombstone" in err and "--strict: 2 records" in err
    skipped = sidecar(out)["skipped"]["records"]
    assert {r["reason"] for r in skipped} == {"bad_magic_byte", "tombstone"}
    assert all(isinstance(r["offset"], int) and isinstance(r["partition"], int) for r in skipped)
    assert len(out.read_text().splitlines()) == sum(expected_counts(scenario).values())


async def test_without_bounds_everything_up_to_now_is_exported(scenario: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "all.parquet"
    argv = ["--topic", TOPIC, "--format", "parquet", "--out", str(out)]
    assert await run(argv, scenario.settings) == 0
    meta = sidecar(out)
    assert meta["events"] + meta["skipped"]["count"] == scenario.produced
    assert meta["range"]["from"] is None
    assert pq.read_metadata(out).num_rows == meta["events"]


async def test_an_empty_window_writes_an_empty_file_with_its_schema(
    scenario: Scenario, tmp_path: Path
) -> None:
    out = tmp_path / "empty.parquet"
    argv = ["--topic", TOPIC, "--to", "2001-01-01T00:00:00Z", "--format", "parquet", "--out", str(out)]
    assert await run(argv, scenario.settings) == 0
    assert pq.read_table(out).num_rows == 0 and "scores" in pq.read_schema(out).names
    assert sidecar(out)["counts"] == {}


async def test_a_missing_topic_fails_with_exit_1(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": "test-no-such-namespace."})}
    )
    out = tmp_path / "none.csv"
    assert await run(["--topic", TOPIC, "--format", "csv", "--out", str(out)], elsewhere) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists() and not Path(f"{out}.partial").exists()
