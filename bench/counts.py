"""Viewer-count agent throughput and latency on this machine, with the real worker and Kafka.

Measures, as medians over several runs (each run with fresh topics and a fresh worker subprocess,
started like ``tests/integration/test_viewer_counts.py`` does):
- absorbed heartbeats/s: a burst of heartbeats (distinct sessions over several streams, batched per
  edge node like edge_ws) published as fast as the producer can, timed from the first publish until
  every stream's ViewerCountChanged shows its exact count; the producer's own rate is printed next
  to it, since the agent cannot absorb faster than heartbeats arrive;
- heartbeat -> ViewerCountChanged latency on an idle agent: one new session on a fresh stream (so
  the once-a-second throttle of a stream never delays it), timed until its count is read back.

    python bench/counts.py [--runs 3] [--quick]

Votes are not measured here yet (polls are built separately).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events.codec import EventCodec
from events.topics import CATALOGUE
from events.viewers import ViewerCountChanged, ViewerHeartbeat
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicAdmin, TopicNames
from infra.settings import Settings
from stream_processors.topology import internal_topics
from tests.integration.test_lifecycle import WorkerProcess

EDGES = ("edge-a", "edge-b")
BATCH = 500  # heartbeats per publish_many, as an edge node batches them


class Counts:
    """The latest count per stream on viewers.counts, and when it was read."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[int, float]] = {}
        self.history: dict[str, list[int]] = {}

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=10):
            now = time.monotonic()
            for consumed in batch:
                if isinstance(consumed.event, ViewerCountChanged):
                    self.latest[consumed.event.stream_id] = (consumed.event.count, now)
                    self.history.setdefault(consumed.event.stream_id, []).append(consumed.event.count)

    async def wait(self, wanted: dict[str, int], timeout_s: float) -> float:
        """When every stream of ``wanted`` showed its count (the last of those moments)."""
        deadline = time.monotonic() + timeout_s
        while any(self.latest.get(s, (None, 0.0))[0] != n for s, n in wanted.items()):
            if time.monotonic() > deadline:
                missing = {
                    s: self.latest.get(s) for s, n in wanted.items() if self.latest.get(s, (0,))[0] != n
                }
                raise TimeoutError(f"counts not reached in {timeout_s}s: {list(missing.items())[:3]}")
            await asyncio.sleep(0.005)
        return max(self.latest[s][1] for s in wanted)


async def _burst(
    publisher: EventPublisher, counts: Counts, heartbeats: int, streams: int
) -> tuple[float, float]:
    """(absorbed heartbeats/s, published heartbeats/s) for one burst."""
    tag = uuid.uuid4().hex[:6]
    stream_ids = [f"bench-{tag}-{i}" for i in range(streams)]
    beats = [
        ViewerHeartbeat(
            stream_id=stream_ids[i % streams],
            session_id=f"s-{i}",
            edge_id=EDGES[i % len(EDGES)],
            producer="edge_ws",
        )
        for i in range(heartbeats)
    ]
    wanted = {s: len(range(i, heartbeats, streams)) for i, s in enumerate(stream_ids)}
    started = time.monotonic()
    for start in range(0, heartbeats, BATCH):
        await publisher.publish_many(beats[start : start + BATCH])
    published = time.monotonic()
    done = await counts.wait(wanted, timeout_s=120)
    return heartbeats / (done - started), heartbeats / (published - started)


async def _latencies(publisher: EventPublisher, counts: Counts, probes: int) -> list[float]:
    found = []
    for _ in range(probes):
        stream_id = f"bench-lat-{uuid.uuid4().hex[:8]}"
        sent = time.monotonic()
        await publisher.publish_many([ViewerHeartbeat(stream_id=stream_id, session_id="s", edge_id="edge-a")])
        found.append(await counts.wait({stream_id: 1}, timeout_s=30) - sent)
        await asyncio.sleep(0.2)
    return found


async def one_run(
    settings: Settings, heartbeats: int, streams: int, probes: int
) -> tuple[float, float, float]:
    prefix = f"bench-{uuid.uuid4().hex[:10]}."
    scoped = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix, "default_partitions": 3})}
    )
    names = TopicNames(prefix)
    codec = EventCodec.load()
    async with TopicAdmin(scoped.kafka) as admin:
        await admin.ensure(CATALOGUE)
    data = Path(tempfile.mkdtemp(prefix="bench-counts-"))
    worker = WorkerProcess(scoped, data / "faust", data / "worker.log")
    try:
        async with EventPublisher(scoped.kafka, codec, producer="bench.counts") as publisher:
            consumer = EventConsumer(
                scoped.kafka,
                codec,
                topics=["viewers.counts"],
                group_id=None,
                dead_letters=DeadLetters(publisher, names.physical("deadletter")),
                from_beginning=True,
            )
            counts = Counts()
            async with consumer:
                task = asyncio.create_task(counts.collect(consumer))
                worker.start()
                await worker.wait_healthy(timeout_s=60)
                await _latencies(publisher, counts, 2)  # warm-up (first records, metadata), not timed
                latencies = await _latencies(publisher, counts, probes)
                absorbed, produced = await _burst(publisher, counts, heartbeats, streams)
                task.cancel()
    finally:
        worker.kill()
        async with TopicAdmin(scoped.kafka) as admin:
            await admin.delete([names.physical(t.name) for t in (*CATALOGUE, *internal_topics(1))])
    return absorbed, produced, statistics.median(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one small run (a smoke test of the bench)")
    args = parser.parse_args()
    runs, heartbeats, streams, probes = (1, 20_000, 10, 5) if args.quick else (args.runs, 200_000, 50, 15)
    settings = Settings()
    results = [asyncio.run(one_run(settings, heartbeats, streams, probes)) for _ in range(runs)]
    absorbed, produced, latency = (statistics.median(r[i] for r in results) for i in range(3))
    print(f"viewer counts: {heartbeats:,} heartbeats over {streams} streams, median of {runs} run(s)")
    print(f"  absorbed     {absorbed:>10,.0f} heartbeats/s (first publish -> every exact count)")
    print(f"  published    {produced:>10,.0f} heartbeats/s (the producer alone, for comparison)")
    print(f"  latency      {latency * 1000:>10,.0f} ms heartbeat -> ViewerCountChanged (median of {probes})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
