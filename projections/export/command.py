"""`esports export`: chosen topics into a Parquet dataset partitioned by topic and date, exactly once.

    esports export --topics chat.messages,viewers.counts --out s3://analytics/esports   # a service
    esports export --once --topics chat.messages --channel finals --from 2026-11-25T00:00Z --out chat/

The service runs until SIGTERM or Ctrl-C (both commit the open files, exit 0); ``--once`` exports
up to the end offsets found at start and exits (0; 130 if interrupted, after committing; 1 with
``--strict`` if a record was undecodable). 1 for Kafka, PostgreSQL, storage or dataset errors,
2 for usage errors. Errors and progress go to stderr. Layout and resuming:
:mod:`projections.export.layout` and :mod:`projections.export.exporter`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import psycopg
import pyarrow as pa
from psycopg import AsyncCursor
from psycopg.rows import dict_row
from psycopg_pool import PoolTimeout

from events.codec import EventCodec
from events.topics import spec
from infra import logs
from infra.kafka import KafkaError, TopicAdmin, TopicNames
from infra.metrics import service_registry
from infra.postgres import DatabaseError
from infra.postgres import translate as translate_pg
from infra.settings import Settings
from projections.database import checked_schema, make_pool
from projections.export.exporter import Exporter, ExportPlan, ExportReport, recover
from projections.export.files import DatasetWriter, Limits
from projections.export.filters import EventFilter, Scope
from projections.export.layout import schema_dir
from projections.export.ops import ExportMetrics, checks
from projections.export.options import add_arguments, topic_list
from projections.export.store import DatasetStore
from projections.ops import OpsServer
from projections.rebuild.progress import format_duration
from projections.replay.arrow import POSITION_COLUMNS, SchemaConflict, TopicTable, topic_table
from projections.replay.command import UnknownTopic
from projections.replay.decoding import avro_by_type, newest_schema_id
from projections.replay.window import to_millis
from schemas import SCHEMAS_DIR

__all__ = ["DatasetMismatch", "Options", "build_parser", "export_dataset", "main", "options_of", "run"]

log = logging.getLogger(__name__)

HIVE_KEYS = ("topic", "date")  # the folders' keys: no column of a file may be named like them
FILE_COLUMNS = tuple(column for column in POSITION_COLUMNS if column[0] != "topic")
MANIFEST = "_export.json"
CLEAR_LINE = "\r\x1b[K"
CHANNEL = "SELECT channel_id FROM channels WHERE slug = %(c)s OR channel_id = %(c)s"
CHANNEL_STREAMS = "SELECT stream_id FROM streams WHERE channel_id = %s"
MATCH_STREAMS = "SELECT stream_id FROM streams WHERE match_id = %s"


class DatasetMismatch(ValueError):
    """The dataset at ``--out`` was made with other filters or another time window."""


class UsageError(ValueError):
    """Options that do not go together (exit 2)."""


@dataclass(frozen=True, slots=True)
class Options:
    topics: list[str]
    out: str
    once: bool
    from_ms: int | None
    to_ms: int | None
    strict: bool


def options_of(args: argparse.Namespace, settings: Settings) -> Options:
    """The run's options from the arguments and the settings; ``UsageError`` for ones that clash."""
    filtering = args.stream or args.channel or args.match or args.start or args.end
    if (filtering or args.strict) and not args.once:
        raise UsageError("--stream, --channel, --match, --from, --to and --strict need --once")
    from_ms = None if args.start is None else to_millis(args.start)
    to_ms = None if args.end is None else to_millis(args.end)
    if from_ms is not None and to_ms is not None and from_ms >= to_ms:
        raise UsageError("--from must be before --to")
    topics = args.topics or topic_list(settings.export.topics)
    out = args.out or settings.export.root
    if out.startswith("s3://") and not out.removeprefix("s3://").strip("/"):
        raise UsageError(f"{out!r}: name a bucket (s3://bucket/prefix)")
    return Options(topics, out, args.once, from_ms, to_ms, args.strict)


# --- filters ------------------------------------------------------------------------------------


async def _scopes(args: argparse.Namespace, settings: Settings) -> tuple[Scope, ...]:
    scopes = [Scope("stream_id", frozenset(args.stream))] if args.stream else []
    if args.channel or args.match:
        try:
            async with make_pool(settings.postgres, name="export", schema=args.schema, max_size=1) as pool:
                async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                    if args.channel:
                        scopes.append(await _channel_scope(cur, args.channel))
                    if args.match:
                        await cur.execute(MATCH_STREAMS, (args.match,))
                        streams = frozenset(r["stream_id"] for r in await cur.fetchall())
                        scopes.append(Scope("match_id", frozenset({args.match}), streams))
        except (psycopg.Error, PoolTimeout) as e:
            raise translate_pg(e, "reading the catalog read model") from e
    return tuple(scopes)


async def _channel_scope(cur: AsyncCursor[dict[str, Any]], channel: str) -> Scope:
    await cur.execute(CHANNEL, {"c": channel})
    found = await cur.fetchone()
    if found is None:
        raise DatasetMismatch(f"no channel {channel!r} in the catalog read model")
    await cur.execute(CHANNEL_STREAMS, (found["channel_id"],))
    streams = frozenset(r["stream_id"] for r in await cur.fetchall())
    return Scope("channel_id", frozenset({found["channel_id"]}), streams)


def _manifest(args: argparse.Namespace, event_filter: EventFilter) -> dict[str, Any]:
    filters = {"stream": sorted(args.stream or []) or None, "channel": args.channel, "match": args.match}
    return {"filters": filters, "window": event_filter.describe()}


def _check_manifest(store: DatasetStore, manifest: dict[str, Any]) -> None:
    """The dataset's filters and window are fixed when it is created: another run must use the same."""
    found = store.read_json(MANIFEST)
    if found is None:
        store.write_text(MANIFEST, json.dumps(manifest, indent=2) + "\n")
    elif found != manifest:
        raise DatasetMismatch(
            f"the dataset at {store.url} was made with {json.dumps(found)}, not {json.dumps(manifest)}: "
            "export into another --out"
        )


# --- schemas beside the data --------------------------------------------------------------------


def _tables(codec: EventCodec, topics: list[str]) -> dict[str, TopicTable]:
    return {t: topic_table(avro_by_type(codec, t), FILE_COLUMNS, HIVE_KEYS) for t in topics}


def _write_schemas(store: DatasetStore, codec: EventCodec, tables: dict[str, TopicTable]) -> None:
    """Per topic: each event type's newest Avro schema, and how its files' columns are made."""
    for topic, table in tables.items():
        types = {}
        for cls in spec(topic).event_types:
            event_type = cls.event_type()
            schema_id = newest_schema_id(codec, event_type)
            subject = codec.subject_for(event_type)
            avro = codec.schema_by_id(schema_id)
            store.write_text(f"{schema_dir(topic)}/{event_type}.avsc", json.dumps(avro, indent=2) + "\n")
            types[event_type] = {
                "subject": subject,
                "version": codec.versions(subject)[-1],
                "schema_id": schema_id,
            }
        store.write_text(
            f"{schema_dir(topic)}/schema.json", json.dumps(_describe(topic, table, types), indent=2) + "\n"
        )


def _describe(topic: str, table: TopicTable, types: dict[str, Any]) -> dict[str, Any]:
    schema: pa.Schema = table.schema
    return {
        "topic": topic,
        "partitioning": "hive: topic=<topic>/date=<UTC date of the record timestamp>",
        "file_name": "part-<partition>-<first offset>-<last offset>.parquet",
        "event_types": types,
        "arrow_schema": [f"{f.name}: {f.type}{'' if f.nullable else ' not null'}" for f in schema],
        "type_conflicts_as_json_text": table.conflicts,
        "compression": "zstd",
    }


# --- running ------------------------------------------------------------------------------------


async def _partitions(settings: Settings, topics: list[str]) -> ExportPlan:
    names = TopicNames(settings.kafka.topic_prefix)
    async with TopicAdmin(settings.kafka, names) as admin:
        states = await admin.states([spec(t) for t in topics])
    missing = [s.name for s in states if not s.exists]
    if missing:
        raise UnknownTopic(f"topics {missing} do not exist on the cluster")
    return ExportPlan(
        {t: s.partitions for t, s in zip(topics, states, strict=True)}, {t: names.physical(t) for t in topics}
    )


class Progress:
    """A line on stderr: redrawn on a terminal every 0.5 s, plain every 5 s otherwise."""

    def __init__(self, stream: TextIO, exporter: Exporter) -> None:
        self._stream, self._exporter = stream, exporter
        self._tty = stream.isatty()
        self._started = time.monotonic()

    def say(self, line: str) -> None:
        self._stream.write(f"{CLEAR_LINE if self._tty else ''}export: {line}\n")
        self._stream.flush()

    async def show(self) -> None:
        while True:
            await asyncio.sleep(0.5 if self._tty else 5.0)
            if self._exporter.log is not None:
                self._stream.write(
                    f"{CLEAR_LINE if self._tty else ''}{self.line()}{'' if self._tty else chr(10)}"
                )
                self._stream.flush()

    def line(self) -> str:
        spans = self._exporter.log.spans.values() if self._exporter.log else []
        total = sum(max(0, s.end - s.start) for s in spans)
        done = sum(s.end - s.start if s.done else s.reached - s.start for s in spans)
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = format_duration((total - done) / rate) if rate > 0 else "?"
        share = done / total if total else 1.0
        return f"export: {share:4.0%} {done:,}/{total:,} records  {rate:,.0f}/s  ETA {eta}"


def _summary(report: ExportReport, url: str, files: int) -> str:
    counts = ", ".join(f"{t}={n:,}" for t, n in report.events.items()) or "none"
    total = sum(report.events.values())
    rate = total / report.seconds if report.seconds else 0.0
    return (
        f"{total:,} events -> {url} ({counts}); {files} files; {report.skipped} skipped, "
        f"{report.filtered} filtered out; {report.seconds:.1f} s, {rate:,.0f} events/s"
    )


async def export_dataset(args: argparse.Namespace, options: Options, settings: Settings) -> int:
    """Run one export (or the service) with the parsed ``args``; the exit code (see the module docstring)."""
    codec = EventCodec.load(SCHEMAS_DIR)
    event_filter = EventFilter(await _scopes(args, settings), options.from_ms, options.to_ms)
    plan = await _partitions(settings, options.topics)
    plan = ExportPlan(plan.partitions, plan.physical, event_filter)
    tables = _tables(codec, options.topics)
    store = DatasetStore.open(options.out, settings.export)
    stop, interrupted = asyncio.Event(), list[int]()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _stopper(signum, stop, interrupted))
    try:
        return await _export_into(store, args, options, settings, codec, plan, tables, stop, interrupted)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        store.close()


def _stopper(signum: int, stop: asyncio.Event, interrupted: list[int]) -> Callable[[], None]:
    def handle() -> None:
        interrupted.append(signum)
        stop.set()

    return handle


async def _export_into(
    store: DatasetStore, args: argparse.Namespace, options: Options, settings: Settings, codec: EventCodec,
    plan: ExportPlan, tables: dict[str, TopicTable], stop: asyncio.Event, interrupted: list[int],
) -> int:  # fmt: skip
    _check_manifest(store, _manifest(args, plan.event_filter))
    _write_schemas(store, codec, tables)
    writer = DatasetWriter(store, tables, Limits.of(settings.export))
    exporter = Exporter(settings, codec, writer, plan, stop, say=lambda line: progress.say(line))
    progress = Progress(sys.stderr, exporter)
    resume = recover(store, progress.say)
    shown = asyncio.create_task(progress.show()) if options.once else None
    ops = None
    if not options.once:  # the service: /health and /metrics, like every other service
        web = settings.export
        registry = service_registry(ExportMetrics(exporter, writer))
        ops = OpsServer(checks(store), registry, host=web.web_host, port=web.web_port)
        await ops.start()
    try:
        report = await exporter.run(resume, once=options.once)
    finally:
        if shown is not None:
            shown.cancel()
        if ops is not None:
            await ops.close()
    progress.say(_summary(report, store.url, writer.files_committed))
    if options.strict and report.skipped:
        progress.say(f"--strict: {report.skipped} records could not be decoded")
        return 1
    return 130 if options.once and signal.SIGINT in interrupted else 0


def _err(message: str) -> None:
    print(f"esports export: {message}", file=sys.stderr)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the export service, or one export with ``--once`` (see the module docstring)."""
    try:
        options = options_of(args, settings)
        checked_schema(args.schema)
    except (UsageError, ValueError, argparse.ArgumentTypeError) as e:
        _err(str(e))
        return 2
    if not options.once:
        logs.configure(settings.log_level, settings.log_format)
    try:
        return asyncio.run(export_dataset(args, options, settings))
    except UnknownTopic as e:
        _err(f"{e} (`esports topics create` creates the catalogue's topics)")
    except KafkaError as e:
        _err(f"{e} (is Kafka running? `esports infra status`)")
    except DatabaseError as e:
        _err(f"{e} (--channel and --match read the catalog read model in PostgreSQL)")
    except (OSError, SchemaConflict, DatasetMismatch) as e:
        _err(str(e))
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esports export",
        description="Export topics into a Parquet dataset partitioned by topic and date (Hive-style), "
        "exactly once across restarts, to a folder or S3: a service, or one run with --once.",
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run `esports export` with ``argv`` (tests pass their own ``settings``)."""
    args = build_parser().parse_args(argv)
    return run(args, settings or Settings())


if __name__ == "__main__":
    sys.exit(main())
