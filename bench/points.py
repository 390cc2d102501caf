"""Channel points: how fast the ledger worker decides, and how fast a takeover reads a ledger back.

Each run uses fresh topics (3 partitions) and a fresh processors subprocess (``--only polls``, started
like the integration tests do) and measures:

- decided/s: a burst of requests (grants to ``users`` viewers, then stakes on a few predictions,
  one in ten refused) published as fast as the producer can once the worker is ready, timed from the
  first publish until the ledger's end offsets hold one entry per request;
- baseline/s, in the same run: a bare aiokafka consumer reading the same requests and decoding them
  (no deciding, no publishing);
- read back/s: a takeover's read of every ledger partition into balances (the ledger worker's own
  read-back, in this process), beside a bare aiokafka consume + decode of the same ledger.

Medians over the runs; ``--quick`` is one small run (a smoke test of the bench).

    python bench/points.py [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _baselines import read_partitions
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.base import Event
from events.codec import EventCodec
from events.points import PointsEarned, PredictionOpened, StakeRequested
from events.topics import CATALOGUE, Topic
from infra.gc_tuning import tune_for_throughput
from infra.kafka import EventPublisher, TopicAdmin, TopicNames
from infra.settings import Settings
from schemas import SCHEMAS_DIR
from stream_processors.metrics import ProcessorMetrics
from stream_processors.points.ledger import PartitionLedger
from stream_processors.points.ledger_worker import LedgerWorker
from tests.integration.test_lifecycle import WorkerProcess
from tests.integration.test_points import points_ready

PARTITIONS = 3


@dataclass(frozen=True)
class Sizes:
    users: int
    stakes: int


def _requests(sizes: Sizes, predictions: list[str], locks_at: datetime) -> list[Event]:
    rng = random.Random(7)
    users = [f"u{i}-{uuid.uuid4().hex[:6]}" for i in range(sizes.users)]
    grants: list[Event] = [
        PointsEarned(user_id=u, amount=1_000, reason="watch", grant_id=f"bench:{u}") for u in users
    ]
    stakes: list[Event] = [
        StakeRequested(
            user_id=rng.choice(users),
            prediction_id=(p := rng.choice(predictions)),
            stream_id=f"s-{p}",
            outcome=0,
            amount=rng.choice([10] * 9 + [5_000]),  # one in ten more than anyone has
            locks_at=locks_at,
        )
        for _ in range(sizes.stakes)
    ]
    return grants + stakes


async def _ledger_size(scoped: Settings) -> int:
    physical = TopicNames(scoped.kafka.topic_prefix).physical(Topic.POINTS_LEDGER)
    consumer = AIOKafkaConsumer(bootstrap_servers=scoped.kafka.bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(physical, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def _consume_and_decode(scoped: Settings, topic: str, records: int, codec: EventCodec) -> float:
    """Baseline: records/s of a bare aiokafka consumer reading and decoding ``topic`` (``records`` of it)."""
    physical = TopicNames(scoped.kafka.topic_prefix).physical(topic)
    started = time.monotonic()
    tps = [TopicPartition(physical, p) for p in range(PARTITIONS)]
    read = await read_partitions(scoped, tps, codec, max_records=5000)  # as the read-back fetches
    assert read == records, (read, records)
    return read / (time.monotonic() - started)


async def _read_back(scoped: Settings, codec: EventCodec) -> tuple[float, int]:
    """The ledger worker's takeover read of every partition: entries/s and the entries read."""
    worker = LedgerWorker(scoped, codec, None, ProcessorMetrics(), PARTITIONS)  # type: ignore[arg-type]
    states = {p: PartitionLedger() for p in range(PARTITIONS)}
    started = time.monotonic()
    await worker._read_back(states)  # the measured path itself
    entries = sum(s.entries for s in states.values())
    return entries / (time.monotonic() - started), entries


async def one_run(settings: Settings, sizes: Sizes) -> dict[str, float]:
    prefix = f"bench-{uuid.uuid4().hex[:10]}."
    scoped = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"topic_prefix": prefix, "default_partitions": PARTITIONS}
            )
        }
    )
    codec = EventCodec.load(SCHEMAS_DIR)
    async with TopicAdmin(scoped.kafka) as admin:
        await admin.ensure(CATALOGUE)
    data = Path(tempfile.mkdtemp(prefix="bench-points-"))
    worker = WorkerProcess(scoped, data / "faust", data / "worker.log", args=["--only", "polls"])
    locks_at = datetime.now(UTC) + timedelta(hours=1)
    predictions = [f"p{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    requests = _requests(sizes, predictions, locks_at)
    figures: dict[str, float] = {}
    try:
        async with EventPublisher(scoped.kafka, codec, producer="bench.points") as publisher:
            await publisher.publish_many(
                [
                    PredictionOpened(
                        prediction_id=p,
                        stream_id=f"s-{p}",
                        channel_id="c",
                        title="bench",
                        outcomes=("A", "B"),
                        locks_at=locks_at,
                        opened_by="o",
                    )
                    for p in predictions
                ]
            )
            worker.start()
            await points_ready(worker)
            started = time.monotonic()
            await publisher.publish_many(requests)
            figures["published"] = len(requests) / (time.monotonic() - started)
            while await _ledger_size(scoped) < len(requests):
                assert time.monotonic() - started < 300, worker.log_tail()
                await asyncio.sleep(0.05)
            figures["decided"] = len(requests) / (time.monotonic() - started)
        worker.kill()
        figures["baseline"] = await _consume_and_decode(scoped, Topic.POINTS_REQUESTS, len(requests), codec)
        figures["read_back"], entries = await _read_back(scoped, codec)
        assert entries == len(requests), (entries, len(requests))
        figures["read_baseline"] = await _consume_and_decode(scoped, Topic.POINTS_LEDGER, entries, codec)
    finally:
        worker.kill()
        async with TopicAdmin(scoped.kafka) as admin:
            await admin.delete([TopicNames(prefix).physical(t.name) for t in CATALOGUE])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one small run (a smoke test of the bench)")
    args = parser.parse_args()
    sizes = Sizes(users=2_000, stakes=8_000) if args.quick else Sizes(users=10_000, stakes=40_000)
    runs = 1 if args.quick else args.runs
    tune_for_throughput()  # the in-process read-back, as the worker runs it
    settings = Settings()
    results = [asyncio.run(one_run(settings, sizes)) for _ in range(runs)]
    m = {key: statistics.median(r[key] for r in results) for key in results[0]}
    for i, r in enumerate(results, 1):
        print(
            f"run {i}: decided {r['decided']:,.0f}/s (consume+decode {r['baseline']:,.0f}/s), "
            f"read back {r['read_back']:,.0f}/s (consume+decode {r['read_baseline']:,.0f}/s)"
        )
    total = sizes.users + sizes.stakes
    print(
        f"channel points, {total:,} requests ({sizes.users:,} grants, {sizes.stakes:,} stakes), {runs} run(s)"
    )
    print(f"  decided by the ledger worker {m['decided']:>10,.0f} /s (first publish -> all on the ledger)")
    print(f"  published                    {m['published']:>10,.0f} /s (the producer alone)")
    print(f"  aiokafka consume + decode    {m['baseline']:>10,.0f} /s (baseline, same requests, same run)")
    print(f"  ratio                        {m['decided'] / m['baseline']:>10.2f}x")
    print(f"  takeover read-back           {m['read_back']:>10,.0f} /s (ledger entries folded into balances)")
    print(f"  aiokafka consume + decode    {m['read_baseline']:>10,.0f} /s (baseline, same entries)")
    print(f"  ratio                        {m['read_back'] / m['read_baseline']:>10.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
