"""The lifecycle agent as a real worker process against the real broker.

One worker (a subprocess, like `esports processors`) per test namespace: causes go in on ``streams``
and ``ingest``, decisions come out on ``streams.lifecycle``; then the worker is stopped with SIGTERM,
started again, and replayed causes must not yield a new distinct decision.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from events.base import Event
from events.codec import EventCodec
from events.ids import IdSpace
from events.ingest import IngestConnected, IngestDisconnected, IngestProtocol
from events.streams import (
    StreamCreated,
    StreamEnded,
    StreamEndReason,
    StreamEndRequested,
    StreamTransitionRejected,
    StreamWentLive,
)
from events.topics import CATALOGUE
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicAdmin, TopicNames
from infra.settings import REPO_ROOT, Settings
from stream_processors.topology import LIFECYCLE_SOURCES, app_id, internal_topics
from tests.ports import free_port

pytestmark = pytest.mark.integration

STREAMS = 50
EARLY = 5  # streams whose connect is published before their creation
DECISION_TIMEOUT_S = 45.0  # generous: a restarted worker rejoins its group first, on a loaded 2-core box
FALLBACK_COMMAND = (
    "import sys; from infra import logs; from infra.settings import Settings; "
    "from stream_processors import worker; logs.configure(); sys.exit(worker.run(Settings()))"
)


def worker_command() -> list[str]:
    """`esports processors` once the CLI has it, else the same call spelled out."""
    from infra import cli

    known = any("processors" in (getattr(a, "choices", None) or {}) for a in cli.build_parser()._actions)
    if known:
        return [sys.executable, "-m", "infra.cli", "processors"]
    return [sys.executable, "-c", FALLBACK_COMMAND]


class WorkerProcess:
    """The processors as a subprocess, configured only through ESPORTS_* variables."""

    def __init__(
        self, settings: Settings, data_dir: Path, log_path: Path, args: Sequence[str] = (), **env: str
    ) -> None:
        """``args`` follow ``esports processors`` (``--only viewers``); ``env`` adds ESPORTS_* settings."""
        self.port = free_port()
        self.log_path = log_path
        self.args = list(args)
        self.env = {
            **os.environ,
            "ESPORTS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
            "ESPORTS_PROCESSORS__WEB_PORT": str(self.port),
            "ESPORTS_PROCESSORS__DATA_DIR": str(data_dir),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            command = [*worker_command(), *self.args]
            self.process = subprocess.Popen(
                command, env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    async def wait_healthy(self, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            try:
                status, body = await asyncio.to_thread(self.get, "/health")
                health = json.loads(body)
                if status == 200 and health["kafka"]["assigned_partitions"] > 0:
                    return dict(health)
            except (OSError, ValueError):
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"worker not healthy in {timeout_s}s\n{self.log_tail()}")

    async def stop(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, timeout_s)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Decisions:
    """Reads streams.lifecycle in the background; decisions by cause, with their arrival time."""

    def __init__(self) -> None:
        self.by_cause: dict[str, list[tuple[Event, float]]] = defaultdict(list)
        self.arrived = asyncio.Event()

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=100):
            now = time.monotonic()
            for consumed in batch:
                cause = consumed.event.causation_id
                self.by_cause[cause].append((consumed.event, now))
            if batch:
                self.arrived.set()

    async def first(self, cause: Event, timeout_s: float = DECISION_TIMEOUT_S) -> tuple[Event, float]:
        key = str(cause.event_id)
        deadline = time.monotonic() + timeout_s
        while not self.by_cause.get(key):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no decision for {type(cause).__name__} {key} in {timeout_s}s"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass
        return self.by_cause[key][0]

    def distinct_ids(self, cause: Event) -> set[uuid.UUID]:
        return {event.event_id for event, _ in self.by_cause.get(str(cause.event_id), [])}


@pytest.fixture
async def kafka_io(namespace: Settings, codec: EventCodec) -> AsyncIterator[tuple[EventPublisher, Decisions]]:
    names = TopicNames(namespace.kafka.topic_prefix)
    async with EventPublisher(namespace.kafka, codec, producer="tests.lifecycle") as publisher:
        dead = DeadLetters(publisher, names.physical("deadletter"))
        consumer = EventConsumer(
            namespace.kafka,
            codec,
            topics=["streams.lifecycle"],
            group_id=None,
            dead_letters=dead,
            from_beginning=True,
        )
        decisions = Decisions()
        async with consumer:
            task = asyncio.create_task(decisions.collect(consumer))
            yield publisher, decisions
            task.cancel()
    async with TopicAdmin(namespace.kafka) as admin:  # the catalogue is dropped by `namespace`
        await admin.delete([names.physical(t.name) for t in internal_topics(1)])


async def outcome(publisher: EventPublisher, decisions: Decisions, cause: Event) -> Event:
    """Publish ``cause`` and return the first decision taken on it."""
    await publisher.publish(cause)
    return (await decisions.first(cause))[0]


def stream_created(stream_id: str) -> StreamCreated:
    return StreamCreated(
        stream_id=stream_id, channel_id=f"chan-{stream_id}", owner_id="owner-1", title="Grand final"
    )


def end_requested(stream_id: str, reason: StreamEndReason) -> StreamEndRequested:
    return StreamEndRequested(
        stream_id=stream_id, channel_id=f"chan-{stream_id}", requested_by="owner-1", reason=reason
    )


def connected(stream_id: str, session: str = "s1") -> IngestConnected:
    return IngestConnected(
        stream_id=stream_id, session_id=session, protocol=IngestProtocol.SRT, node="ingest-1"
    )


async def test_the_lifecycle_agent_decides_survives_a_restart_and_replays_identically(
    namespace: Settings,
    tmp_path: Path,
    kafka_io: tuple[EventPublisher, Decisions],
) -> None:
    publisher, decisions = kafka_io
    # Its streams go live on connects alone (no health reports): keep the silence rule out of the way
    # of a run that can outlast the default 30 s on a loaded machine (test_lifecycle_silence tests it).
    quiet = {"ESPORTS_INGEST__SILENCE_END_S": "3600"}
    worker = WorkerProcess(namespace, tmp_path / "faust", tmp_path / "worker.log", **quiet)
    worker.start()
    try:
        await worker.wait_healthy()
        await _scenario(worker, publisher, decisions, namespace)
    finally:
        worker.kill()


async def _scenario(
    worker: WorkerProcess, publisher: EventPublisher, decisions: Decisions, ns: Settings
) -> None:
    ids = [f"stream-{uuid.uuid4().hex[:8]}" for _ in range(STREAMS)]
    await publisher.publish_many([stream_created(sid) for sid in ids])

    # go live, one stream at a time: cause published (acked) -> decision consumed
    latencies, connects = [], []
    for sid in ids:
        cause = connected(sid)
        started = time.monotonic()
        await publisher.publish(cause)
        went, arrived = await decisions.first(cause)
        latencies.append(arrived - started)
        connects.append(cause)
        assert isinstance(went, StreamWentLive), worker.log_tail()
        assert (went.stream_id, went.channel_id, went.ingest_session_id) == (sid, f"chan-{sid}", "s1")
        assert went.started_at == cause.occurred_at
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[-1]
    print(
        f"\nlifecycle cause -> decision latency over {STREAMS} streams: p50 {p50 * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )

    # a connect published before its stream's creation, in one batch across the two topics (the
    # worker may read either first): live all the same, decided on the connect
    early = [connected(f"stream-early-{uuid.uuid4().hex[:8]}") for _ in range(EARLY)]
    early_created = [stream_created(c.stream_id) for c in early]
    await publisher.publish_many([e for pair in zip(early, early_created, strict=True) for e in pair])
    for cause in early:
        went, _ = await decisions.first(cause)
        assert isinstance(went, StreamWentLive), worker.log_tail()
        assert (went.stream_id, went.ingest_session_id) == (cause.stream_id, "s1")
        assert (went.started_at, went.occurred_at) == (cause.occurred_at, cause.occurred_at)
        assert went.event_id == uuid.uuid5(IdSpace.LIFECYCLE.value, f"{cause.event_id}:StreamWentLive")
    assert not any(decisions.by_cause.get(str(c.event_id)) for c in early_created)

    # a live stream whose publisher leaves: ended; then a new session: refused
    left = IngestDisconnected(stream_id=ids[0], session_id="s1", reason="eof")
    ended = await outcome(publisher, decisions, left)
    assert isinstance(ended, StreamEnded) and ended.reason is StreamEndReason.PUBLISHER_STOPPED
    after_end = connected(ids[0], session="s2")
    refused_ended = await outcome(publisher, decisions, after_end)
    assert isinstance(refused_ended, StreamTransitionRejected) and refused_ended.current_state == "ended"

    # a record that is not an event goes to the dead-letter topic; the agent carries on after it
    names = TopicNames(ns.kafka.topic_prefix)
    await publisher.publish_raw(names.physical("streams"), b"not avro", key=ids[2].encode())
    end_2 = end_requested(ids[2], StreamEndReason.ENDED_BY_OWNER)
    ended_2 = await outcome(publisher, decisions, end_2)  # same partition as the garbage: after it
    assert isinstance(ended_2, StreamEnded) and ended_2.reason is StreamEndReason.ENDED_BY_OWNER
    _, metrics = await asyncio.to_thread(worker.get, "/metrics")
    assert 'esports_processor_dead_letters_total{reason="bad_magic_byte"} 1.0' in metrics, metrics
    went_live = f'esports_lifecycle_decisions_total{{kind="StreamWentLive"}} {STREAMS + EARLY}.0'
    assert went_live in metrics, metrics
    assert "esports_processor_event_seconds_bucket{family=" in metrics, metrics
    assert "esports_processor_event_age_seconds_bucket{family=" in metrics, metrics
    assert 'kafka_consumer_lag{group="' in metrics, metrics
    for hot_path in ("presence", "votes", "chat"):  # the partition workers' groups beside the app's
        assert f'kafka_consumer_lag{{group="{ns.kafka.topic_prefix}esports-processors-{hot_path}"' in metrics

    # restart, replay causes, then a sentinel per replayed (topic, key), which is processed after it
    # (once every agent reading a source acked some of it, so a commit can have happened: the
    # moderation agent publishes each stream's channel to chat.sent on its connect)
    for _ in range(60):
        if 0 not in (await committed(ns)).values():
            break
        await asyncio.sleep(0.5)
    assert await worker.stop() == 0, worker.log_tail()  # a clean exit on SIGTERM, promptly
    # What was acked is committed; other agents reading `streams` may not have reached its last
    # records yet (the worker does not wait for them: stream_wait_empty=False), and those are
    # redelivered after the restart, which the replay below shows changes nothing.
    done = await committed(ns)
    assert 0 < done["streams"] <= STREAMS + EARLY + 2 and 0 < done["ingest"] <= STREAMS + EARLY + 2, done
    worker.start()
    await worker.wait_healthy()

    replayed: list[Event] = [connects[1], left, early[0], end_2]
    before = {str(c.event_id): decisions.distinct_ids(c) for c in replayed}
    assert all(len(ids) == 1 for ids in before.values())
    await publisher.publish_many([*replayed, early_created[0]])  # the late creation again, too
    sentinels = [
        IngestDisconnected(stream_id=ids[1], session_id="s1"),  # stream 1 is still live after the restart
        connected(ids[0], session="s3"),
        IngestDisconnected(stream_id=early[0].stream_id, session_id="s1"),  # still live, too
        end_requested(ids[2], StreamEndReason.ENDED_BY_MODERATOR),
    ]
    await publisher.publish_many(sentinels)
    outcomes = [type((await decisions.first(s))[0]) for s in sentinels]
    assert outcomes == [StreamEnded, StreamTransitionRejected, StreamEnded, StreamTransitionRejected], (
        worker.log_tail()
    )
    for replay in replayed:
        assert decisions.distinct_ids(replay) == before[str(replay.event_id)], type(replay).__name__
    assert not decisions.by_cause.get(str(early_created[0].event_id))

    assert await worker.stop() == 0, worker.log_tail()
    await _only_the_changelog_was_created(ns)


async def committed(ns: Settings) -> dict[str, int]:
    """Records the processors' consumer group has committed, per source topic (summed over partitions)."""
    names = TopicNames(ns.kafka.topic_prefix)
    async with TopicAdmin(ns.kafka) as admin:
        offsets = await admin._admin.list_consumer_group_offsets(app_id(ns.kafka))
    totals: dict[str, int] = defaultdict(int)
    for tp, meta in offsets.items():
        totals[names.logical(tp.topic)] += meta.offset
    return {topic: totals[topic] for topic in LIFECYCLE_SOURCES}


async def _only_the_changelog_was_created(ns: Settings) -> None:
    names = TopicNames(ns.kafka.topic_prefix)
    async with TopicAdmin(ns.kafka) as admin:
        existing = {t for t in await admin._admin.list_topics() if t.startswith(names.prefix)}
    catalogue = {names.physical(t.name) for t in CATALOGUE}
    assert existing - catalogue == {names.physical(t.name) for t in internal_topics(1)}
