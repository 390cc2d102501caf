"""Viewer-count and poll-tally agents: throughput and latency on this machine, with the real worker.

Each run uses fresh topics and a fresh worker subprocess (started like the integration tests do) and
measures, for heartbeats (viewer-count agent) and votes (poll agent):
- absorbed/s: a burst (distinct sessions over several streams, batched per edge node like edge_ws;
  distinct voters over several polls) published as fast as the producer can, timed from the first
  publish until every stream's ViewerCountChanged (every poll's PollTallyUpdated) shows its exact
  count; the producer's own rate is printed beside it, since an agent cannot absorb faster than the
  records arrive;
- baseline/s, measured in the same run: a raw aiokafka consumer (no decoding, no processing) reading
  the same records of the same topic from the beginning;
- latency on an idle agent: one heartbeat on a fresh stream (one vote on a fresh poll), so no
  throttle (once a second per stream, 250 ms per poll) delays it, timed until its count is read back.

Medians over the runs; ``--quick`` is one small run (a smoke test of the bench). A heartbeat burst
must be absorbed within the counting window (30 s): heartbeats older than that are expired, so an
exact count could never be reached, whence the burst sizes.

    python bench/counts.py [--runs 3] [--quick]

Why a ``--quick`` run used to time out: the agents read with Faust's ``take_events``, whose buffer
drops the records that arrive while a batch is being processed and acks them unprocessed, so now and
then a stream never reached its exact count. The agents now batch with
:class:`stream_processors.batching.Batcher` (ack after store), and the bench waits for exact counts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer

from events.base import Event
from events.codec import EventCodec
from events.polls import PollOpened, PollTallyUpdated, PollVoteCast
from events.streams import StreamCreated
from events.topics import CATALOGUE
from events.viewers import ViewerCountChanged, ViewerHeartbeat
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicAdmin, TopicNames
from infra.settings import Settings
from schemas import SCHEMAS_DIR
from stream_processors.topology import internal_topics
from tests.integration.test_lifecycle import WorkerProcess

EDGES = ("edge-a", "edge-b")
BATCH = 500  # records per publish_many, as an edge node batches them
OWNER = "bench-owner"  # owns every bench stream, so it may open polls
OPTIONS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Sizes:
    heartbeats: int
    streams: int
    votes: int
    polls: int
    probes: int


class Latest:
    """The latest count per stream (viewers.counts) and total per poll (polls.tallies), with when."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[int, float]] = {}

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=10):
            now = time.monotonic()
            for consumed in batch:
                event = consumed.event
                if isinstance(event, ViewerCountChanged):
                    self.latest[event.stream_id] = (event.count, now)
                elif isinstance(event, PollTallyUpdated):
                    self.latest[event.poll_id] = (event.total, now)

    async def wait(self, wanted: dict[str, int], timeout_s: float) -> float:
        """When every key of ``wanted`` showed its count (the last of those moments)."""
        deadline = time.monotonic() + timeout_s
        while any(self.latest.get(k, (None, 0.0))[0] != n for k, n in wanted.items()):
            if time.monotonic() > deadline:
                missing = {
                    k: self.latest.get(k) for k, n in wanted.items() if self.latest.get(k, (0,))[0] != n
                }
                raise TimeoutError(
                    f"counts not reached in {timeout_s}s: {list(missing.items())[:3]} (a heartbeat burst the"
                    " agent absorbs more slowly than the 30 s window expires before it is counted)"
                )
            await asyncio.sleep(0.005)
        return max(self.latest[k][1] for k in wanted)


async def _burst(
    publisher: EventPublisher, latest: Latest, records: list[Event], wanted: dict[str, int]
) -> tuple[float, float]:
    """(absorbed records/s, published records/s) for one burst."""
    started = time.monotonic()
    for start in range(0, len(records), BATCH):
        await publisher.publish_many(records[start : start + BATCH])
    published = time.monotonic()
    done = await latest.wait(wanted, timeout_s=300)
    return len(records) / (done - started), len(records) / (published - started)


def _heartbeats(sizes: Sizes) -> tuple[list[Event], dict[str, int]]:
    tag = uuid.uuid4().hex[:6]
    stream_ids = [f"bench-{tag}-{i}" for i in range(sizes.streams)]
    beats: list[Event] = [
        ViewerHeartbeat(
            stream_id=stream_ids[i % sizes.streams],
            session_id=f"s-{i}",
            edge_id=EDGES[i % len(EDGES)],
            producer="edge_ws",
        )
        for i in range(sizes.heartbeats)
    ]
    return beats, {s: len(range(i, sizes.heartbeats, sizes.streams)) for i, s in enumerate(stream_ids)}


def _votes(stream_id: str, polls: list[str], votes: int) -> tuple[list[Event], dict[str, int]]:
    cast: list[Event] = [
        PollVoteCast(poll_id=polls[i % len(polls)], stream_id=stream_id, user_id=f"u-{i}", option=i % 4)
        for i in range(votes)
    ]
    return cast, {p: len(range(i, votes, len(polls))) for i, p in enumerate(polls)}


def _opened(stream_id: str, poll_id: str) -> PollOpened:
    return PollOpened(
        poll_id=poll_id, stream_id=stream_id, question="Who wins?", options=OPTIONS, opened_by=OWNER
    )


async def _heartbeat_latencies(publisher: EventPublisher, latest: Latest, probes: int) -> list[float]:
    found = []
    for _ in range(probes):
        stream_id = f"bench-lat-{uuid.uuid4().hex[:8]}"
        sent = time.monotonic()
        await publisher.publish_many([ViewerHeartbeat(stream_id=stream_id, session_id="s", edge_id="edge-a")])
        found.append(await latest.wait({stream_id: 1}, timeout_s=30) - sent)
        await asyncio.sleep(0.2)
    return found


async def _vote_latencies(
    publisher: EventPublisher, latest: Latest, stream_id: str, probes: int
) -> list[float]:
    found = []
    for _ in range(probes):
        poll_id = f"lat-{uuid.uuid4().hex[:8]}"
        await publisher.publish(_opened(stream_id, poll_id))
        await asyncio.sleep(0.3)  # opened (its first, empty tally) before the vote is timed
        sent = time.monotonic()
        await publisher.publish(PollVoteCast(poll_id=poll_id, stream_id=stream_id, user_id="voter", option=1))
        found.append(await latest.wait({poll_id: 1}, timeout_s=30) - sent)
    return found


async def _raw_consume(settings: Settings, topic: str, records: int) -> float:
    """Baseline: records/s of a bare aiokafka consumer reading ``records`` records of ``topic``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        started, seen = time.monotonic(), 0
        while seen < records:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            seen += sum(len(b) for b in batches.values())
        return seen / (time.monotonic() - started)
    finally:
        await consumer.stop()


async def one_run(settings: Settings, sizes: Sizes) -> dict[str, float]:
    prefix = f"bench-{uuid.uuid4().hex[:10]}."
    scoped = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix, "default_partitions": 3})}
    )
    names = TopicNames(prefix)
    codec = EventCodec.load(SCHEMAS_DIR)
    async with TopicAdmin(scoped.kafka) as admin:
        await admin.ensure(CATALOGUE)
    data = Path(tempfile.mkdtemp(prefix="bench-counts-"))
    worker = WorkerProcess(scoped, data / "faust", data / "worker.log")
    vote_stream = f"bench-votes-{uuid.uuid4().hex[:6]}"
    polls = [f"poll-{i}-{uuid.uuid4().hex[:6]}" for i in range(sizes.polls)]
    figures: dict[str, float] = {}
    try:
        async with EventPublisher(scoped.kafka, codec, producer="bench.counts") as publisher:
            # The stream exists before the worker reads anything, so its owner may open polls.
            await publisher.publish(
                StreamCreated(stream_id=vote_stream, channel_id="c", owner_id=OWNER, title="b")
            )
            consumer = EventConsumer(
                scoped.kafka,
                codec,
                topics=["viewers.counts", "polls.tallies"],
                group_id=None,
                dead_letters=DeadLetters(publisher, names.physical("deadletter")),
                from_beginning=True,
            )
            latest = Latest()
            async with consumer:
                task = asyncio.create_task(latest.collect(consumer))
                worker.start()
                await worker.wait_healthy(timeout_s=60)
                await _heartbeat_latencies(publisher, latest, 2)  # warm-up (metadata, first records)
                figures["hb_latency"] = statistics.median(
                    await _heartbeat_latencies(publisher, latest, sizes.probes)
                )
                beats, wanted = _heartbeats(sizes)
                figures["hb_absorbed"], figures["hb_published"] = await _burst(
                    publisher, latest, beats, wanted
                )
                total_beats = sizes.heartbeats + sizes.probes + 2
                figures["hb_baseline"] = await _raw_consume(
                    scoped, names.physical("viewers.heartbeats"), total_beats
                )

                await _vote_latencies(publisher, latest, vote_stream, 1)  # warm-up
                figures["vote_latency"] = statistics.median(
                    await _vote_latencies(publisher, latest, vote_stream, sizes.probes)
                )
                await publisher.publish_many([_opened(vote_stream, p) for p in polls])
                await latest.wait(dict.fromkeys(polls, 0), timeout_s=30)  # open (empty tallies) first
                votes, wanted = _votes(vote_stream, polls, sizes.votes)
                figures["vote_absorbed"], figures["vote_published"] = await _burst(
                    publisher, latest, votes, wanted
                )
                total_polls = sizes.votes + 2 * (sizes.probes + 1) + len(polls)
                figures["vote_baseline"] = await _raw_consume(scoped, names.physical("polls"), total_polls)
                task.cancel()
    finally:
        worker.kill()
        async with TopicAdmin(scoped.kafka) as admin:
            await admin.delete([names.physical(t.name) for t in (*CATALOGUE, *internal_topics(1))])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one small run (a smoke test of the bench)")
    args = parser.parse_args()
    sizes = (
        Sizes(heartbeats=20_000, streams=10, votes=5_000, polls=4, probes=5)
        if args.quick
        else Sizes(heartbeats=50_000, streams=50, votes=20_000, polls=10, probes=15)
    )
    runs = 1 if args.quick else args.runs
    settings = Settings()
    results = [asyncio.run(one_run(settings, sizes)) for _ in range(runs)]
    m = {key: statistics.median(r[key] for r in results) for key in results[0]}
    for i, r in enumerate(results, 1):  # the spread behind the medians (the machine may be shared)
        print(
            f"run {i}: heartbeats {r['hb_absorbed']:,.0f}/s (raw {r['hb_baseline']:,.0f}/s, "
            f"{r['hb_latency'] * 1000:.0f} ms), votes {r['vote_absorbed']:,.0f}/s "
            f"(raw {r['vote_baseline']:,.0f}/s, {r['vote_latency'] * 1000:.0f} ms)"
        )
    print(f"viewer counts and poll tallies, medians of {runs} run(s)")
    print(f"  heartbeats: {sizes.heartbeats:,} over {sizes.streams} streams")
    print(f"    absorbed by the agent {m['hb_absorbed']:>10,.0f} /s (first publish -> every exact count)")
    print(f"    published             {m['hb_published']:>10,.0f} /s (the producer alone)")
    print(f"    raw aiokafka consume  {m['hb_baseline']:>10,.0f} /s (baseline, same records, same run)")
    print(f"    latency               {m['hb_latency'] * 1000:>10,.0f} ms heartbeat -> ViewerCountChanged")
    print(f"  votes: {sizes.votes:,} over {sizes.polls} polls")
    print(f"    absorbed by the agent {m['vote_absorbed']:>10,.0f} /s (first publish -> every exact tally)")
    print(f"    published             {m['vote_published']:>10,.0f} /s (the producer alone)")
    print(f"    raw aiokafka consume  {m['vote_baseline']:>10,.0f} /s (baseline, same records, same run)")
    print(f"    latency               {m['vote_latency'] * 1000:>10,.0f} ms vote -> PollTallyUpdated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
