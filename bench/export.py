"""Export throughput: ``esports export --once`` of a chat-like topic into Parquet, beside its baselines.

Publishes N ``ChatMessageAccepted`` events (20 streams, 2,000 users, short texts) to
``chat.messages`` in a fresh topic namespace, then per run:

- the exporter's one-shot mode (in this process, as ``esports export --once`` runs it) into a fresh
  local folder: read, decode, Arrow rows, zstd Parquet files committed with fsync and rename, the
  schema files beside; records/s from its start (codec load included) to its exit;
- baselines over the same topic-partitions in the same run: raw aiokafka (no decode) and aiokafka +
  the Avro decode (the exporter's floor: it cannot read and decode faster than that).

Each run prints the ratio export/decode and the client CPU per record (this process: the
exporter and the baselines run in it one after the other; the broker's work is not counted).
Medians of several runs.

    python bench/export.py [--events 100000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.dataset as pads
from _baselines import read_partitions
from aiokafka import TopicPartition

from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.topics import CATALOGUE, Topic
from infra.gc_tuning import THRESHOLDS
from infra.kafka import EventPublisher, TopicAdmin, TopicNames
from infra.settings import Settings
from projections.export import command
from schemas import SCHEMAS_DIR

PUBLISH_BATCH = 2000
TOPIC = Topic.CHAT_MESSAGES.value
WORDS = ("gg", "wp", "what", "a", "play", "clutch", "no", "way", "lets", "go", "ez", "noooo", "pog")


def chat_events(count: int) -> list[ChatMessageAccepted]:
    rng = random.Random(7)
    return [
        ChatMessageAccepted(
            message_id=f"m{i}",
            stream_id=f"stream-{i % 20}",
            user_id=f"user-{rng.randrange(2000)}",
            display_name=f"Viewer {i % 2000}",
            text=" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))),
            badges=("subscriber",) if i % 7 == 0 else (),
        )
        for i in range(count)
    ]


async def publish(settings: Settings, codec: EventCodec, events: int) -> None:
    batch = chat_events(events)
    async with EventPublisher(settings.kafka, codec, producer="bench.export") as publisher:
        for start in range(0, len(batch), PUBLISH_BATCH):
            await publisher.publish_many(batch[start : start + PUBLISH_BATCH])


async def consume(settings: Settings, partitions: int, codec: EventCodec | None) -> tuple[int, float]:
    """Records read (and decoded if ``codec``) from the topic's partitions, and the seconds it took."""
    physical = TopicNames(settings.kafka.topic_prefix).physical(TOPIC)
    started = time.monotonic()
    total = await read_partitions(
        settings, [TopicPartition(physical, p) for p in range(partitions)], codec, max_records=5000
    )
    return total, time.monotonic() - started


async def one_export(settings: Settings) -> tuple[int, float, int]:
    """Rows in the dataset, seconds, and its data files."""
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        args = command.build_parser().parse_args(["--once", "--topics", TOPIC, "--out", folder])
        started = time.monotonic()
        code = await command.export_dataset(args, command.options_of(args, settings), settings)
        seconds = time.monotonic() - started
        assert code == 0, f"export exited {code}"
        dataset = pads.dataset(Path(folder) / f"topic={TOPIC}", format="parquet")
        return dataset.count_rows(), seconds, len(dataset.files)


async def main(events: int, runs: int) -> None:
    base = Settings()
    prefix = f"bench-{uuid.uuid4().hex[:10]}."
    settings = base.model_copy(update={"kafka": base.kafka.model_copy(update={"topic_prefix": prefix})})
    codec = EventCodec.load(SCHEMAS_DIR)
    gc.set_threshold(*THRESHOLDS)  # the collector setting the services run with
    topic = next(t for t in CATALOGUE if t.name == TOPIC)
    async with TopicAdmin(settings.kafka) as admin:
        await admin.ensure([topic])
        (state,) = await admin.states([topic])
    try:
        await publish(settings, codec, events)
        print(f"published {events:,} chat events into {prefix}{TOPIC}; {runs} runs", file=sys.stderr)
        rates: dict[str, list[float]] = {"export": [], "raw": [], "decode": []}
        cpu: dict[str, list[float]] = {"export": [], "decode": []}
        ratios: list[float] = []
        for run in range(runs):
            started_cpu = time.process_time()
            rows, seconds, files = await one_export(settings)
            assert rows == events, f"the dataset has {rows:,} rows, not {events:,}"
            cpu["export"].append(1e6 * (time.process_time() - started_cpu) / rows)
            rates["export"].append(rows / seconds)
            read, raw_s = await consume(settings, state.partitions, None)
            rates["raw"].append(read / raw_s)
            started_cpu = time.process_time()
            decoded, decode_s = await consume(settings, state.partitions, codec)
            cpu["decode"].append(1e6 * (time.process_time() - started_cpu) / decoded)
            rates["decode"].append(decoded / decode_s)
            ratios.append(rates["export"][-1] / rates["decode"][-1])
            print(
                f"run {run + 1}: export {rows:,} records in {seconds:.2f}s into {files} files "
                f"({rates['export'][-1]:,.0f}/s, {cpu['export'][-1]:.0f} µs CPU each); raw consume "
                f"{rates['raw'][-1]:,.0f}/s; consume+decode {rates['decode'][-1]:,.0f}/s "
                f"({cpu['decode'][-1]:.0f} µs CPU each); export/decode {ratios[-1]:.2f}",
                file=sys.stderr,
            )
        export_rate, decode_rate = statistics.median(rates["export"]), statistics.median(rates["decode"])
        print(f"\nexport of {events:,} chat events into Parquet ({runs} runs, medians)")
        print("| measure | records/s | ratio to decode | client CPU µs per record |")
        print("|---|---:|---:|---:|")
        print(
            f"| `esports export --once` (local folder, zstd Parquet) | {export_rate:,.0f} | "
            f"{export_rate / decode_rate:.2f} | {statistics.median(cpu['export']):.0f} |"
        )
        print(
            f"| aiokafka + Avro decode (baseline) | {decode_rate:,.0f} | 1.00 | "
            f"{statistics.median(cpu['decode']):.0f} |"
        )
        print(f"| raw aiokafka consume (baseline) | {statistics.median(rates['raw']):,.0f} | | |")
        print(f"median of the per-run ratios export/decode: {statistics.median(ratios):.2f}")
    finally:
        async with TopicAdmin(settings.kafka) as admin:
            await admin.delete([TopicNames(prefix).physical(TOPIC)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="chat events published")
    parser.add_argument("--runs", type=int, default=3, help="runs (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="5,000 events, 1 run (a smoke check)")
    args = parser.parse_args()
    asyncio.run(main(5_000 if args.quick else args.events, 1 if args.quick else args.runs))
