"""What every scenario of ``bench/hot_stream.py`` shares: fresh topics, loading them, the raw-consume
baseline, worker processes (start, pause, their /metrics and /proc figures), the table.

A helper module (``_``-prefixed: ``esports bench`` does not run it), imported by the bench scripts
beside it, which run as scripts (``bench/`` is then first on ``sys.path``).
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import signal
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.base import Event
from events.codec import EventCodec
from events.topics import CATALOGUE, TopicSpec, partition_key
from infra.kafka import EventPublisher, TopicAdmin, TopicNames, client_options
from infra.settings import Settings
from stream_processors.topology import FAMILIES, internal_topics
from tests.integration.test_lifecycle import WorkerProcess

SAMPLE_S = 0.05  # /metrics polling period: the resolution of the absorption timings
LOAD_CHUNK = 1_000  # records sent before their acks are awaited
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FETCH_RECORDS = 1_000  # records per fetch of the raw baseline: the partition workers' max_poll_records
Records = list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]  # (key, value, headers)
Sample = tuple[float, int, float]  # (epoch s, the worker's counter, its CPU seconds)


class NotExact(Exception):
    """A count or tally never became exact, a final differed from the recount, or the workers never
    absorbed what was loaded: the bench exits 1."""


def progress(message: str) -> None:
    print(f"  [hot_stream {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def merged(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over ``runs`` (empty when there were none)."""
    return {key: median([r[key] for r in runs if key in r]) for key in runs[0]} if runs else {}


def encode_all(codec: EventCodec, events: Sequence[Event]) -> Records:
    return [(partition_key(e), codec.encode(e), codec.headers(e)) for e in events]


def count_timeout(items: int) -> float:
    return 60 + items / 2_000  # generous: even the old designs' rates would get there


# --- topics, load, raw consume --------------------------------------------------------------------


@asynccontextmanager
async def namespace(
    settings: Settings, partitions: int, specs: Sequence[TopicSpec] = CATALOGUE
) -> AsyncIterator[Settings]:
    """Settings with a unique topic prefix, ``specs`` created with ``partitions`` each; deleted after,
    with the internal topics of the app of every family and of each family run alone."""
    prefix = f"bench-hot-{uuid.uuid4().hex[:8]}."
    kafka = settings.kafka.model_copy(update={"topic_prefix": prefix, "default_partitions": partitions})
    scoped = settings.model_copy(update={"kafka": kafka})
    async with TopicAdmin(kafka) as admin:
        await admin.ensure(specs)
    await leaders_serve(scoped, [TopicNames(prefix).physical(s.name) for s in specs], partitions)
    try:
        yield scoped
    finally:
        internal = [
            *internal_topics(partitions),
            *(t for f in FAMILIES for t in internal_topics(partitions, f)),
        ]
        async with TopicAdmin(kafka) as admin:  # states name the topics as the cluster does (prefixed)
            states = await admin.states({s.name: s for s in [*specs, *internal]}.values())
            await admin.delete([state.name for state in states if state.exists])


async def leaders_serve(settings: Settings, topics: Sequence[str], partitions: int) -> None:
    """Until every partition's leader answers (a new topic's leader is known before it serves, and
    every client would retry and log it): end offsets, which aiokafka retries quietly."""
    consumer = AIOKafkaConsumer(**client_options(settings.kafka, "bench-probe"), group_id=None)
    await consumer.start()
    try:
        await consumer.end_offsets([TopicPartition(t, p) for t in topics for p in range(partitions)])
    finally:
        await consumer.stop()


async def load(settings: Settings, codec: EventCodec, topic: str, records: Records) -> float:
    """Publish ``records`` to the physical ``topic`` (batched: a chunk sent before its acks); seconds."""
    async with EventPublisher(settings.kafka, codec, producer="bench.hot_stream") as publisher:
        started = time.monotonic()
        for start in range(0, len(records), LOAD_CHUNK):
            await asyncio.gather(
                *(
                    publisher.publish_raw(topic, value, key=key, headers=headers)
                    for key, value, headers in records[start : start + LOAD_CHUNK]
                )
            )
        return time.monotonic() - started


async def raw_consume(
    settings: Settings,
    topic: str,
    partitions: int,
    records: int,
    codec: EventCodec | None = None,
    weight: Callable[[Event], int] = lambda _event: 1,
) -> tuple[float, int]:
    """Seconds a group-less aiokafka consumer takes to read ``records`` records of ``topic`` from the
    beginning (fetching like the partition workers), and with ``codec`` the sum of ``weight`` over
    the events it decoded (0 without)."""
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka, "bench-raw"), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        started, seen, items = time.monotonic(), 0, 0
        while seen < records:
            fetched = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
            for batch in fetched.values():
                seen += len(batch)
                if codec is not None:
                    items += sum(weight(codec.decode(r.value)) for r in batch if r.value is not None)
        return time.monotonic() - started, items
    finally:
        await consumer.stop()


# --- worker processes, their /metrics and logs ----------------------------------------------------


def pid_of(worker: WorkerProcess) -> int:
    assert worker.process is not None
    return worker.process.pid


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def took(worker: WorkerProcess, role: str, topic: str) -> tuple[float, set[int]] | None:
    """When the worker last logged ``<role>: took`` (epoch s) and the partitions of ``topic`` it took."""
    last = None
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if f"{role}: took [" in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            taken = ast.literal_eval(line[line.index("took [") + 5 :])
            last = (stamp, {p for t, p in taken if t == topic})
    return last


def split_done(taken: Sequence[tuple[float, set[int]] | None], partitions: int) -> bool:
    """Every worker's latest assignment is non-empty, they are disjoint and cover every partition."""
    owned = [t[1] for t in taken if t is not None and t[1]]
    return len(owned) == len(taken) and sum(map(len, owned)) == partitions == len(set().union(*owned))


class Sampler:
    """Reads the counter ``metric`` from each worker's /metrics and its CPU time from /proc every
    SAMPLE_S, in a thread (the bench's event loop never delays a sample)."""

    def __init__(self, metric: str) -> None:
        self.samples: dict[int, list[Sample]] = {}  # by worker pid
        self._pattern = re.compile(rf"^{re.escape(metric)} (\S+)$", re.M)
        self._ports: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, worker: WorkerProcess) -> None:
        self.samples[pid_of(worker)] = []
        self._ports[pid_of(worker)] = worker.port

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            for pid, port in list(self._ports.items()):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                        text = r.read().decode()
                    if found := self._pattern.search(text):
                        self.samples[pid].append((time.time(), int(float(found.group(1))), cpu_seconds(pid)))
                except OSError:
                    continue  # not up yet (or gone)

    def latest(self, pid: int) -> int:
        return self.samples[pid][-1][1] if self.samples[pid] else 0

    def total(self) -> int:
        return sum(self.latest(pid) for pid in self.samples)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Workers:
    """The worker processes of one scenario (``esports processors`` + ``args``, each on a free web
    port), the partition worker ``role`` that reads ``source`` (a logical topic), and their samples."""

    settings: Settings
    codec: EventCodec
    data: Path
    sampler: Sampler
    role: str
    source: str
    args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    processes: list[WorkerProcess] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return TopicNames(self.settings.kafka.topic_prefix).physical(self.source)

    def start(self, count: int) -> float:
        """Start ``count`` worker processes; when (epoch s)."""
        started = time.time()
        for _ in range(count):
            name = f"w{len(self.processes)}"
            worker = WorkerProcess(
                self.settings, self.data / f"faust-{name}", self.data / f"{name}.log", self.args, **self.env
            )
            worker.start()
            self.processes.append(worker)
            self.sampler.watch(worker)
        return started

    def took(self, worker: WorkerProcess) -> tuple[float, set[int]] | None:
        return took(worker, self.role, self.topic)

    async def ready(self, partitions: int) -> None:
        """Until every worker is healthy and they have split the partitions of the source."""
        for worker in self.processes:
            await worker.wait_healthy(timeout_s=90)
        deadline = time.monotonic() + 120
        while not split_done([self.took(w) for w in self.processes], partitions):
            if time.monotonic() > deadline:
                raise NotExact(f"{self.source} partitions never split\n{self.processes[0].log_tail()}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a report or two: the workers idle before anything is timed

    async def absorbed(self, wanted: int, timeout_s: float) -> None:
        """Until the workers' counters add up to ``wanted``; fails if a worker dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while self.sampler.total() < wanted:
            dead = [w for w in self.processes if w.process is None or w.process.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise NotExact(
                    f"the workers read {self.sampler.total():,} of {wanted:,} from {self.source} in "
                    f"{timeout_s:.0f}s{' (a worker died)' if dead else ''}\n"
                    f"{(dead or self.processes)[0].log_tail()}"
                )
            await asyncio.sleep(SAMPLE_S)
        await asyncio.sleep(4 * SAMPLE_S)  # each worker's last sample is its final count

    async def paused_load(self, records: Records, session_timeout_s: float) -> tuple[dict[int, int], float]:
        """Load ``records`` onto the source while the workers are stopped (SIGSTOP), then resume them:
        the bench's producer then bounds nothing. Their counters before, and when they resumed."""
        before = {pid: self.sampler.latest(pid) for pid in self.sampler.samples}
        for worker in self.processes:
            os.kill(pid_of(worker), signal.SIGSTOP)
        try:
            load_s = await load(self.settings, self.codec, self.topic, records)
        finally:
            resumed = time.time()
            for worker in self.processes:
                os.kill(pid_of(worker), signal.SIGCONT)
        if load_s > session_timeout_s / 2:
            progress(f"warning: workers paused {load_s:.1f}s, near the group session timeout")
        return before, resumed

    def kill(self) -> None:
        for worker in self.processes:
            worker.kill()


def burst_figures(
    samples: dict[int, list[Sample]], before: dict[int, int], resumed: float, items: int
) -> dict[str, float]:
    """Per worker: items/s, CPU busy fraction and items per CPU-second from resuming (or its last
    sample still at its count before, if later) to its first sample at its final count; in total:
    ``items`` over the span from the first worker's start to the last one's end."""
    spans, rates, busy = [], [], []
    for pid, taken in samples.items():
        share = taken[-1][1] - before[pid]
        start = next(s for s in reversed(taken) if s[1] <= before[pid])
        end = next(s for s in taken if s[1] >= before[pid] + share)
        begun = max(resumed, start[0])
        spans.append((begun, end[0]))
        rates.append(share / (end[0] - begun))
        busy.append((end[2] - start[2]) / (end[0] - begun))
    absorbed = sum(taken[-1][1] - before[pid] for pid, taken in samples.items())
    return {
        "rate": items / (max(e for _, e in spans) - min(s for s, _ in spans)),
        "per_worker": statistics.mean(rates),
        "min_worker": min(rates),
        "cpu_busy": statistics.mean(busy),
        "per_cpu_s": statistics.mean(r / b for r, b in zip(rates, busy, strict=True)),
        "reread": float(absorbed - items),  # a rebalance re-reads partitions
    }


# --- the table ------------------------------------------------------------------------------------

Row = tuple[str, str, str, str]  # figure, median with its unit, raw-consume baseline, ratio


def row(label: str, value: float, unit: str, baseline: float | None = None, fmt: str = ",.0f") -> Row:
    ratio = f"{value / baseline:.3f}" if baseline else ""
    return (label, f"{value:{fmt}} {unit}", f"{baseline:,.0f}" if baseline else "", ratio)


def print_table(rows: list[Row]) -> None:
    everything = [("figure", "median", "raw consume", "ratio"), *rows]
    widths = [max(len(r[i]) for r in everything) for i in range(4)]
    for r in everything:
        print(f"  {r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}")


def print_run(label: str, index: int, figures: dict[str, float]) -> None:
    shown = ", ".join(f"{k} {v:,.1f}" if v < 100 else f"{k} {v:,.0f}" for k, v in sorted(figures.items()))
    print(f"run {index + 1} {label}: {shown}")
