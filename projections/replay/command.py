"""`esports replay`: a topic's decoded events in a time window, for analytics, with their schema beside.

    esports replay --topic chat.messages --from 2026-11-25T18:00Z --to 2026-11-25T19:00Z \\
        --format parquet --out chat.parquet

writes ``chat.parquet`` and ``chat.parquet.schema.json`` (per event type present its newest Avro
schema with subject and id, the Arrow schema for Parquet, and the export's metadata: topic, range,
counts per event type, skipped records, Kafka positions per partition).

The window is by record timestamp (CreateTime, set by our producers): ``--from`` inclusive (default:
the oldest retained record), ``--to`` exclusive (default: now, when the export starts). End offsets
are captured at start, so exporting a live topic terminates. No consumer group is joined and
nothing is committed. Records that cannot be decoded are skipped, reported on stderr with their
position and counted; ``--strict`` then makes the exit code 1. Data is written to ``PATH.partial``
and renamed when complete, so a failed export never leaves a file that looks whole.

Exit codes: 0 exported, 1 failure (Kafka, files, or skipped records under ``--strict``), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from events.codec import EventCodec
from events.topics import spec
from infra.kafka import KafkaError, TopicAdmin, TopicNames
from infra.settings import Settings
from projections.replay.arrow import SchemaConflict, topic_table

# The decoding is shared with `esports export`; the command (and its tests) keep their names for it.
from projections.replay.decoding import avro_by_type as _avro_by_type
from projections.replay.decoding import decode_record as _decode
from projections.replay.decoding import newest_schema_id as _newest_id
from projections.replay.options import add_arguments
from projections.replay.source import RangeReader, RawRecord
from projections.replay.window import TimeWindow, iso_ms
from projections.replay.writers import Exported, ExportWriter, open_writer
from schemas import SCHEMAS_DIR

__all__ = ["ReplayReport", "add_arguments", "export", "main", "run"]

ORDER = (
    "each partition in log order; partitions interleaved by (timestamp, partition, offset), a total "
    "sort whenever each partition's record timestamps are non-decreasing"
)
PRINTED_SKIPS = 100  # skipped records printed on stderr; the rest are counted (the sidecar lists 1000)
LISTED_SKIPS = 1000
CLEAR_LINE = "\r\x1b[K"  # back to column 0, erase the status line


@dataclass(slots=True)
class ReplayReport:
    """What an export did; also the metadata half of the sidecar schema file."""

    topic: str
    window: TimeWindow
    counts: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    skipped_records: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(self.counts.values())


class Progress:
    """A status line on stderr every ``interval`` seconds, only when stderr is a terminal."""

    def __init__(self, stream: TextIO, interval: float = 0.5) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._interval = interval
        self._started = self._last = time.monotonic()
        self._shown = False

    def tick(self, events: int, fraction: float) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last < self._interval:
            return
        self._last, rate = now, events / max(now - self._started, 1e-9)
        self._stream.write(f"{CLEAR_LINE}replay: {events:,} events  {rate:,.0f}/s  {fraction:6.1%}")
        self._stream.flush()
        self._shown = True

    def say(self, line: str) -> None:
        """A line that must not be overwritten by the status line."""
        self._stream.write(f"{CLEAR_LINE if self._shown else ''}{line}\n")
        self._shown = False


def _skip(report: ReplayReport, record: RawRecord, reason: str, detail: str, progress: Progress) -> None:
    report.skipped += 1
    if report.skipped <= PRINTED_SKIPS:
        progress.say(
            f"replay: skipped undecodable record topic={report.topic} partition={record.partition} "
            f"offset={record.offset} reason={reason}"
        )
    if report.skipped == PRINTED_SKIPS + 1:
        progress.say("replay: further undecodable records are counted, not printed")
    if len(report.skipped_records) < LISTED_SKIPS:
        where = {
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": iso_ms(record.timestamp_ms),
        }
        report.skipped_records.append({**where, "reason": reason, "detail": detail[:300]})


class UnknownTopic(KafkaError):
    """The topic does not exist on the cluster (not created yet, or another namespace's prefix)."""


async def _partitions(settings: Settings, names: TopicNames, topic: str) -> int:
    async with TopicAdmin(settings.kafka, names) as admin:
        (state,) = await admin.states([spec(topic)])
    if not state.exists:
        raise UnknownTopic(f"topic {state.name!r} does not exist on the cluster")
    return state.partitions


async def export(
    settings: Settings,
    codec: EventCodec,
    topic: str,
    window: TimeWindow,
    writer: ExportWriter,
    progress: Progress,
) -> ReplayReport:
    """Read ``topic``'s window, decode, and hand the events to ``writer`` a batch at a time."""
    report = ReplayReport(topic, window)
    allowed = {cls.event_type() for cls in spec(topic).event_types}
    names = TopicNames(settings.kafka.topic_prefix)
    started = time.monotonic()
    partitions = await _partitions(settings, names, topic)
    async with RangeReader(settings.kafka, names.physical(topic), partitions, window) as reader:
        async for records in reader.batches():
            batch: list[Exported] = []
            for record in records:
                decoded = _decode(codec, record, allowed)
                if isinstance(decoded, Exported):
                    batch.append(decoded)
                    report.counts[decoded.event.event_type()] += 1
                else:
                    _skip(report, record, *decoded, progress)
            writer.write(batch)
            progress.tick(report.events, reader.fraction_done)
        report.positions = {str(p): span.describe() for p, span in sorted(reader.spans.items())}
    report.seconds = time.monotonic() - started
    return report


def sidecar(
    report: ReplayReport, codec: EventCodec, fmt: str, out: Path, writer: ExportWriter
) -> dict[str, Any]:
    """The content of ``PATH.schema.json``."""
    types = {}
    for event_type in sorted(report.counts):
        schema_id = _newest_id(codec, event_type)
        subject = codec.subject_for(event_type)
        version = codec.versions(subject)[-1]
        avro = codec.schema_by_id(schema_id)
        types[event_type] = {"subject": subject, "version": version, "schema_id": schema_id, "avro": avro}
    return {
        "format": fmt,
        "data_file": out.name,
        "topic": report.topic,
        "range": report.window.describe(),
        "order": ORDER,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "events": report.events,
        "counts": dict(sorted(report.counts.items())),
        "skipped": {"count": report.skipped, "records": report.skipped_records},
        "positions": report.positions,
        "event_types": types,
        **writer.describe(),
    }


def _summary(report: ReplayReport, out: Path) -> str:
    counts = ", ".join(f"{t}={n}" for t, n in sorted(report.counts.items())) or "none"
    rate = report.events / report.seconds if report.seconds else 0.0
    return (
        f"replay: {report.events:,} events of {report.topic} -> {out} ({counts}); "
        f"{report.skipped} skipped; {report.seconds:.1f} s, {rate:,.0f} events/s; schema in {out}.schema.json"
    )


async def _replay(args: argparse.Namespace, settings: Settings, window: TimeWindow) -> int:
    codec = EventCodec.load(SCHEMAS_DIR)
    table = topic_table(_avro_by_type(codec, args.topic))
    out: Path = args.out
    partial = out.with_name(out.name + ".partial")
    writer = open_writer(args.format, partial, args.topic, table)
    progress = Progress(sys.stderr)
    try:
        report = await export(settings, codec, args.topic, window, writer, progress)
        writer.close()
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    _write_json(Path(f"{out}.schema.json"), sidecar(report, codec, args.format, out, writer))
    progress.say(_summary(report, out))
    if args.strict and report.skipped:
        progress.say(f"replay: --strict: {report.skipped} records could not be decoded")
        return 1
    return 0


def _write_json(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _err(message: str) -> None:
    print(f"esports replay: {message}", file=sys.stderr)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Export ``args.topic``'s events in ``[args.start, args.end)`` to ``args.out`` as ``args.format``."""
    try:
        window = TimeWindow.of(args.start, args.end, datetime.now(UTC))
    except ValueError as e:
        _err(str(e))
        return 2
    try:
        return asyncio.run(_replay(args, settings, window))
    except UnknownTopic as e:
        _err(f"{e} (`esports topics create` creates the catalogue's topics)")
    except KafkaError as e:
        _err(f"{e} (is Kafka running? `esports infra status`)")
    except (OSError, SchemaConflict) as e:
        _err(str(e))
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esports replay",
        description="Export a topic's decoded events in a time range as JSON lines, CSV or Parquet, "
        "with the schema written beside the data (PATH.schema.json).",
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run `esports replay` with ``argv`` (tests pass their own ``settings``)."""
    args = build_parser().parse_args(argv)
    return run(args, settings or Settings())


if __name__ == "__main__":
    sys.exit(main())
