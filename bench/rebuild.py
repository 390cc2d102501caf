"""Rebuild throughput: ``esports rebuild`` of every registered read model over N events.

Publishes a scripted session of about N events (catalog stories, a match on three streams with chat
and moderation, viewer counts, a poll, notifications) into a fresh topic namespace, then, per run,
rebuilds every PostgreSQL and Redis read model from scratch (a fresh shadow, swapped into an empty
live schema and prefix) and reports events/s: events applied summed over projectors (an event two
projectors consume counts twice), from the first read to the end of the swaps.

Baselines measured in the same run over the very same topic-partitions, read once per projector
(the baseline of issues 13 and 16; the rebuild itself now reads each partition once for all its
projectors and decodes each record once): raw aiokafka (no decode, nothing stored) and aiokafka + the
Avro decode. Each run also prints the ratio rebuild/decode of that run and the client's CPU time per
event (this process and the rebuild's worker process; the servers' work is not counted there).
Medians of several runs.

    python bench/rebuild.py [--events 20000] [--runs 3] [--processes 1|2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _baselines import read_partitions
from aiokafka import TopicPartition

from events.codec import EventCodec
from events.topics import CATALOGUE
from infra.gc_tuning import THRESHOLDS
from infra.kafka import EventPublisher, TopicAdmin, TopicNames
from infra.redis import make_client
from infra.settings import Settings
from projections.database import drop_schema, make_pool
from projections.rebuild.command import PROCESSES, Options, rebuild
from projections.rebuild.progress import Progress
from projections.service import build_stores
from schemas import SCHEMAS_DIR
from tests.integration.test_rebuild_support import session_events

PUBLISH_BATCH = 2000


async def publish(settings: Settings, codec: EventCodec, events: int) -> int:
    chat = max(10, events // 6)
    session = session_events(catalog=max(100, events // 2), chat_per_stream=chat)
    async with EventPublisher(settings.kafka, codec, producer="bench.rebuild") as publisher:
        for start in range(0, len(session), PUBLISH_BATCH):
            await publisher.publish_many(session[start : start + PUBLISH_BATCH])
    return len(session)


def store_topics(settings: Settings) -> list[tuple[str, ...]]:
    pool = make_pool(settings.postgres, name="bench")  # never opened: names and topics only
    return [
        s.topics
        for s in build_stores(pool, make_client(settings.redis, name="bench"), schema="x", redis_prefix="")
    ]


async def partitions(settings: Settings) -> dict[str, int]:
    """Partitions per catalogue topic, as the cluster has them."""
    async with TopicAdmin(settings.kafka) as admin:
        return {
            spec.name: state.partitions for spec, state in zip(CATALOGUE, await admin.states(), strict=True)
        }


async def raw_consume(settings: Settings, codec: EventCodec | None) -> tuple[int, float]:
    """Records read (and decoded if ``codec``) once per projector's topics, all projectors at
    once like the rebuild, and the seconds it took."""
    counts = await partitions(settings)
    started = time.monotonic()
    read = await asyncio.gather(
        *(_read(settings, topics, counts, codec) for topics in store_topics(settings))
    )
    return sum(read), time.monotonic() - started


async def _read(
    settings: Settings, topics: tuple[str, ...], counts: dict[str, int], codec: EventCodec | None
) -> int:
    names = TopicNames(settings.kafka.topic_prefix)
    tps = [TopicPartition(names.physical(t), p) for t in topics for p in range(counts[t])]
    return await read_partitions(settings, tps, codec)


async def one_rebuild(settings: Settings, processes: int = PROCESSES) -> tuple[int, float, float]:
    """Store-events applied, seconds, and the CPU seconds of a worker process (0 without one)."""
    schema, prefix = f"bench_{uuid.uuid4().hex[:10]}", f"bench-{uuid.uuid4().hex[:8]}:"
    pool = make_pool(settings.postgres, name="bench", schema=schema)
    client = make_client(settings.redis, name="bench")
    try:
        summary = await rebuild(
            settings,
            Options(schema=schema, redis_prefix=prefix, fresh=True, processes=processes),
            Progress(sys.stderr, quiet=True),
        )
        slowest = sorted(summary.per_store.items(), key=lambda item: -item[1][1])[:3]
        print("  slowest: " + ", ".join(f"{n} {e:,} in {t:.1f}s" for n, (e, t) in slowest), file=sys.stderr)
        return summary.events, summary.seconds, summary.worker_cpu_s
    finally:
        async with pool:
            await drop_schema(pool, schema)
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def main(events: int, runs: int, processes: int) -> None:
    base = Settings()
    prefix = f"bench-{uuid.uuid4().hex[:10]}."
    settings = base.model_copy(update={"kafka": base.kafka.model_copy(update={"topic_prefix": prefix})})
    codec = EventCodec.load(SCHEMAS_DIR)
    gc.set_threshold(*THRESHOLDS)  # the baselines under the collector setting the rebuild runs with
    async with TopicAdmin(settings.kafka) as admin:
        await admin.ensure(CATALOGUE)
    try:
        published = await publish(settings, codec, events)
        print(f"published {published:,} events into {prefix}*; {runs} runs each", file=sys.stderr)
        ours, raw, decoded, ratios = [], [], [], []
        cpu: dict[str, list[float]] = {"rebuild": [], "decode": []}  # CPU µs per event, client side
        for run in range(runs):
            started_cpu = time.process_time()
            applied, seconds, worker_cpu = await one_rebuild(settings, processes)
            cpu["rebuild"].append(1e6 * (time.process_time() - started_cpu + worker_cpu) / applied)
            ours.append(applied / seconds)
            read, raw_s = await raw_consume(settings, None)
            raw.append(read / raw_s)
            started_cpu = time.process_time()
            read_decoded, decoded_s = await raw_consume(settings, codec)
            cpu["decode"].append(1e6 * (time.process_time() - started_cpu) / read_decoded)
            decoded.append(read_decoded / decoded_s)
            ratios.append(ours[-1] / decoded[-1])
            print(
                f"run {run + 1}: rebuild {applied:,} store-events in {seconds:.2f}s ({ours[-1]:,.0f}/s,"
                f" {cpu['rebuild'][-1]:.0f} µs CPU each); raw consume {read:,} records {raw[-1]:,.0f}/s;"
                f" consume+decode {decoded[-1]:,.0f}/s ({cpu['decode'][-1]:.0f} µs CPU each);"
                f" rebuild/decode {ratios[-1]:.2f}",
                file=sys.stderr,
            )
        rebuild_rate, decode_rate = statistics.median(ours), statistics.median(decoded)
        print(f"\nrebuild of every read model over {published:,} events ({runs} runs, medians)")
        print("| measure | events/s | ratio to decode | client CPU µs per event |")
        print("|---|---:|---:|---:|")
        stores = len(store_topics(settings))
        label = f"esports rebuild ({stores} projectors, {processes} processes, incl. migrations and swaps)"
        rebuild_cpu, decode_cpu = statistics.median(cpu["rebuild"]), statistics.median(cpu["decode"])
        print(f"| {label} | {rebuild_rate:,.0f} | {rebuild_rate / decode_rate:.2f} | {rebuild_cpu:.0f} |")
        print(f"| raw aiokafka consume, same partitions (baseline) | {statistics.median(raw):,.0f} | | |")
        print(f"| aiokafka + Avro decode (baseline) | {decode_rate:,.0f} | 1.00 | {decode_cpu:.0f} |")
        print(f"median of the per-run ratios rebuild/decode: {statistics.median(ratios):.2f}")
    finally:
        names = TopicNames(prefix)
        async with TopicAdmin(settings.kafka) as admin:
            await admin.delete([names.physical(t.name) for t in CATALOGUE])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events in the session (about)")
    parser.add_argument("--runs", type=int, default=3, help="runs (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="2,000 events, 1 run (a smoke check)")
    parser.add_argument("--processes", type=int, default=PROCESSES, help="the rebuild's --processes")
    args = parser.parse_args()
    asyncio.run(main(2_000 if args.quick else args.events, 1 if args.quick else args.runs, args.processes))
