"""Scenarios 1-4 of ``bench/hot_stream.py``: one hot stream counted by the presence workers.

A helper module (``_``-prefixed: ``esports bench`` does not run it); the scenarios are described in
the bench's docstring.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _hot_stream_support import (
    NotExact,
    Records,
    Row,
    Sampler,
    Workers,
    burst_figures,
    count_timeout,
    encode_all,
    load,
    namespace,
    pid_of,
    progress,
    raw_consume,
    row,
    rss_bytes,
)

from edge_ws.commands import presence_batches
from events.base import Event
from events.codec import EventCodec
from events.viewers import ViewerCountChanged, ViewerPresenceBatch
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicNames
from infra.settings import Settings
from stream_processors.viewers.counts import epoch_ms
from stream_processors.viewers.presence import PartitionPresence

WINDOW_S = 600  # the counting window the workers run with here (default 30 s)
HISTORICAL_BEATS_S = 2_800  # the old per-stream design on one stream (not measured here)
GOAL_BEATS_S = 25_000  # per worker, and at least 8x the historical figure
EDGES, FLUSH_S, SPREAD_S = 20, 5.0, 15.0  # the fleet of scenario 4 (edge.heartbeat_flush_s = 5 s)
SOURCE = "viewers.presence"

# --- records (pure) -----------------------------------------------------------------------------


def session_ids(count: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(count)]  # as edge_ws.session gives them


def hot_stream_records(
    codec: EventCodec, stream_id: str, sessions: int, partitions: int, edge_id: str = "edge-0"
) -> Records:
    """Every session of one stream seen at once by one edge: one flush, split per partition."""
    seen = dict.fromkeys(((stream_id, s) for s in session_ids(sessions)), (None, None))
    return encode_all(codec, presence_batches(seen, partitions, edge_id=edge_id, seen_at=datetime.now(UTC)))


def fleet_records(codec: EventCodec, stream_id: str, sessions: int, partitions: int) -> Records:
    """Every session heartbeats once in the last SPREAD_S seconds, through one of EDGES edges that
    each flush every FLUSH_S (staggered); records in the order the fleet sent them."""
    now = time.time()
    ids = session_ids(sessions)
    flushes = int(SPREAD_S / FLUSH_S)
    batches: list[ViewerPresenceBatch] = []
    for edge in range(EDGES):
        for k in range(flushes):
            at = now - SPREAD_S + edge * FLUSH_S / EDGES + k * FLUSH_S
            mine = ids[edge * flushes + k :: EDGES * flushes]
            seen = dict.fromkeys(((stream_id, s) for s in mine), (None, None))
            batches += presence_batches(
                seen, partitions, edge_id=f"edge-{edge}", seen_at=datetime.fromtimestamp(at, UTC)
            )
    batches.sort(key=lambda b: b.occurred_at)
    return encode_all(codec, batches)


def beats_of(event: Event) -> int:
    return len(getattr(event, "beats", ()))


async def baselines(
    settings: Settings, codec: EventCodec, partitions: int, records: Records
) -> dict[str, float]:
    topic = TopicNames(settings.kafka.topic_prefix).physical(SOURCE)
    raw_s, _ = await raw_consume(settings, topic, partitions, len(records))
    decode_s, beats = await raw_consume(settings, topic, partitions, len(records), codec, beats_of)
    return {"raw_records": len(records) / raw_s, "raw_beats": beats / raw_s, "decode_beats": beats / decode_s}


# --- one scenario's workers and counts ------------------------------------------------------------


@dataclass
class Counts:
    """When ``viewers.counts`` first showed each (stream, count), epoch s."""

    seen: dict[tuple[str, int], float] = field(default_factory=dict)

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=20):
            for consumed in batch:
                if isinstance(event := consumed.event, ViewerCountChanged):
                    self.seen.setdefault((event.stream_id, event.count), time.time())

    async def wait(self, stream_id: str, count: int, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while (stream_id, count) not in self.seen:
            if time.monotonic() > deadline:
                shown = sorted(c for s, c in self.seen if s == stream_id)[-3:]
                raise NotExact(
                    f"{stream_id}: count {count:,} never published in {timeout_s:.0f}s; last {shown}"
                )
            await asyncio.sleep(0.02)
        return self.seen[(stream_id, count)]


@dataclass
class Bench:
    """One scenario's presence workers and the counts they publish."""

    workers: Workers
    counts: Counts

    async def paused_burst(self, records: Records, stream_id: str, sessions: int) -> dict[str, float]:
        """Load ``records`` while the workers are paused, resume them, time how they absorb the
        burst. The pause stays well within the group's session timeout, so no rebalance follows
        (``reread_beats`` would show one)."""
        timeout_s = self.workers.settings.processors.session_timeout_s
        before, resumed = await self.workers.paused_load(records, timeout_s)
        await self.workers.absorbed(sum(before.values()) + sessions, count_timeout(sessions))
        exact = await self.counts.wait(stream_id, sessions, count_timeout(sessions)) - resumed
        figures = burst_figures(self.workers.sampler.samples, before, resumed, sessions)
        figures["beats"] = figures.pop("rate")
        figures["reread_beats"] = figures.pop("reread")
        return {**figures, "exact_s": exact}


@asynccontextmanager
async def bench(base: Settings, codec: EventCodec, partitions: int) -> AsyncIterator[Bench]:
    """Fresh topics, a ``viewers.counts`` reader and a sampler; every worker killed on exit."""
    async with namespace(base, partitions) as settings:
        with tempfile.TemporaryDirectory(prefix="bench-hot-") as data:
            async with EventPublisher(settings.kafka, codec, producer="bench.hot_stream") as dead_publisher:
                names = TopicNames(settings.kafka.topic_prefix)
                dead = DeadLetters(dead_publisher, names.physical("deadletter"))
                reader = EventConsumer(
                    settings.kafka,
                    codec,
                    topics=["viewers.counts"],
                    group_id=None,
                    dead_letters=dead,
                    from_beginning=True,
                )
                env = {"ESPORTS_PROCESSORS__VIEWER_WINDOW_S": str(WINDOW_S)}
                sampler = Sampler("esports_viewer_heartbeats_total")
                workers = Workers(settings, codec, Path(data), sampler, "presence", SOURCE, env=env)
                async with reader:
                    here = Bench(workers, Counts())
                    task = asyncio.create_task(here.counts.collect(reader))
                    try:
                        yield here
                    finally:
                        task.cancel()
                        sampler.stop()
                        workers.kill()


# --- scenarios ------------------------------------------------------------------------------------


async def one_worker(base: Settings, codec: EventCodec, sessions: int, partitions: int) -> dict[str, float]:
    """Scenarios 1 and 2: the baselines; 1 worker started on a pre-loaded backlog; then a burst."""
    cold_stream, warm_stream = f"hot-{uuid.uuid4()}", f"hot-{uuid.uuid4()}"
    cold = hot_stream_records(codec, cold_stream, sessions, partitions)
    warm = hot_stream_records(codec, warm_stream, sessions, partitions)
    async with bench(base, codec, partitions) as here:
        workers = here.workers
        await load(workers.settings, codec, workers.topic, cold)
        figures = await baselines(workers.settings, codec, partitions, cold)
        progress(f"1 worker: {len(cold)} records pre-loaded, raw consume {figures['raw_beats']:,.0f} beats/s")
        started = workers.start(1)
        await workers.absorbed(sessions, count_timeout(sessions))
        figures.update(cold_figures(workers, started, sessions))
        exact = await here.counts.wait(cold_stream, sessions, count_timeout(sessions))
        figures["cold_exact_s"] = exact - started
        await workers.ready(partitions)  # Faust up too: the burst meets a running, idle worker
        warm_figures = await here.paused_burst(warm, warm_stream, sessions)
    return {**figures, **{f"warm_{k}": v for k, v in warm_figures.items()}}


def cold_figures(workers: Workers, started: float, sessions: int) -> dict[str, float]:
    """Beats/s from the worker's ``presence: took`` (its partitions assigned and sought) to its
    counter at ``sessions``; start-up is the process start to that line."""
    worker = workers.processes[0]
    taken = workers.took(worker)
    samples = workers.sampler.samples[pid_of(worker)]
    reached = next(t for t, v, _ in samples if v >= sessions)
    assigned = taken[0] if taken else next(t for t, v, _ in reversed(samples) if v == 0)
    return {"cold_beats": sessions / (reached - assigned), "startup_s": assigned - started}


async def two_workers(base: Settings, codec: EventCodec, sessions: int, partitions: int) -> dict[str, float]:
    """Scenario 3: a burst through 2 workers that split the partitions; then the baselines."""
    stream_id = f"hot-{uuid.uuid4()}"
    records = hot_stream_records(codec, stream_id, sessions, partitions)
    async with bench(base, codec, partitions) as here:
        here.workers.start(2)
        await here.workers.ready(partitions)
        progress("2 workers: partitions split, loading the burst")
        figures = await here.paused_burst(records, stream_id, sessions)
        here.workers.kill()  # the baselines read alone, as in scenario 1
        figures.update(await baselines(here.workers.settings, codec, partitions, records))
    return figures


async def big_stream(base: Settings, codec: EventCodec, sessions: int, partitions: int) -> dict[str, float]:
    """Scenario 4: ``sessions`` spread as a fleet sends them, 1 worker, exact count, memory per session."""
    stream_id = f"hot-{uuid.uuid4()}"
    records = fleet_records(codec, stream_id, sessions, partitions)
    progress(f"{sessions:,} sessions: {len(records):,} records built")
    async with bench(base, codec, partitions) as here:
        here.workers.start(1)
        await here.workers.ready(partitions)
        pid = pid_of(here.workers.processes[0])
        rss_before = rss_bytes(pid)
        figures = await here.paused_burst(records, stream_id, sessions)
        await asyncio.sleep(2.0)  # a few reports later: the steady state, not a fetch in flight
        figures["rss_per_session"] = (rss_bytes(pid) - rss_before) / sessions
        figures["rss_before_mib"] = rss_before / 2**20
        here.workers.kill()
        figures.update(await baselines(here.workers.settings, codec, partitions, records))
    figures["state_per_session"] = state_bytes_per_session(codec, records, sessions)
    return figures


def state_bytes_per_session(codec: EventCodec, records: Records, sessions: int) -> float:
    """The bytes ``PartitionPresence`` holds per session (tracemalloc), the beats decoded like the worker
    decodes them (fresh strings), all in one presence: the state alone, without a process around it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        presence = PartitionPresence(WINDOW_S * 1000)
        for _key, value, _headers in records:
            event = codec.decode(value)
            assert isinstance(event, ViewerPresenceBatch)
            at_ms = epoch_ms(event.occurred_at)
            for beat in event.beats:
                presence.observe(beat.stream_id, beat.session_id, at_ms)
            del event
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert presence.sessions == sessions
    return held / sessions


# --- rows of the table ----------------------------------------------------------------------------


def viewer_rows(n: str, one: dict[str, float], two: dict[str, float]) -> list[Row]:
    raw = one["raw_beats"]
    rows = [
        row(f"raw aiokafka consume, {n} sessions (records)", one["raw_records"], "rec/s"),
        row(f"raw aiokafka consume, {n} sessions (beats)", raw, "beats/s"),
        row("  + EventCodec.decode in the same loop", one["decode_beats"], "beats/s", raw),
        row("1 worker started on the pre-loaded backlog", one["cold_beats"], "beats/s", raw),
        row("  start-up: process start -> partitions taken", one["startup_s"], "s", fmt=".1f"),
        row(f"  exact {n} after process start", one["cold_exact_s"], "s", fmt=".1f"),
        row("1 worker, burst loaded while it was paused", one["warm_beats"], "beats/s", raw),
        row("  worker CPU busy while absorbing", 100 * one["warm_cpu_busy"], "%"),
        row("  beats per worker CPU-second", one["warm_per_cpu_s"], "beats/CPU-s"),
        row(f"  exact {n} after resume", one["warm_exact_s"], "s", fmt=".1f"),
    ]
    if two:
        raw2 = two["raw_beats"]
        rows += [
            row("2 workers, burst, per worker (mean)", two["per_worker"], "beats/s", raw2),
            row("2 workers, burst, slower worker", two["min_worker"], "beats/s", raw2),
            row("2 workers, burst, total", two["beats"], "beats/s", raw2),
            row("  worker CPU busy while absorbing (mean)", 100 * two["cpu_busy"], "%"),
            row("  beats per worker CPU-second", two["per_cpu_s"], "beats/CPU-s"),
            row(f"  exact {n} after resume", two["exact_s"], "s", fmt=".1f"),
        ]
    return rows


def big_rows(b: str, big: dict[str, float]) -> list[Row]:
    if not big:
        return []
    return [
        row(f"1 worker, {b} spread sessions, absorbed", big["beats"], "beats/s", big["raw_beats"]),
        row("  worker CPU busy while absorbing", 100 * big["cpu_busy"], "%"),
        row(f"  exact {b} after resume", big["exact_s"], "s", fmt=".1f"),
        row("  worker memory per session (VmRSS delta)", big["rss_per_session"], "B"),
        row("  PartitionPresence alone (tracemalloc)", big["state_per_session"], "B"),
    ]


def print_goal(one: dict[str, float], two: dict[str, float]) -> None:
    per_worker = [one["cold_beats"], one["warm_beats"], *([two["min_worker"]] if two else [])]
    goal = max(GOAL_BEATS_S, 8 * HISTORICAL_BEATS_S)
    lowest = min(per_worker)
    print(
        f"  viewers goal >= {goal:,} beats/s per worker ({GOAL_BEATS_S:,} and 8x {HISTORICAL_BEATS_S:,}): "
        f"lowest per-worker figure {lowest:,.0f} = {lowest / HISTORICAL_BEATS_S:.0f}x historical -> "
        f"{'met' if lowest >= goal else 'NOT met'}; every count reached exactly"
    )
    if two:
        print(
            f"  2 workers vs 1 (burst, total): {two['beats'] / one['warm_beats']:.2f}x on "
            f"{os.cpu_count()} CPUs (the broker needs CPU too)"
        )


def reread_note(*runs: dict[str, float]) -> None:
    rereads = [f.get(k, 0.0) for f in runs for k in ("warm_reread_beats", "reread_beats")]
    if any(rereads):
        print(f"  note: a rebalance during a burst re-read {max(rereads):,.0f} beats (figures include it)")
