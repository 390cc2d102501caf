"""The viewer-count agent as a real worker process: 1,000 viewers on two edges, 300 leave, a restart.

The window is 15 s here (``ESPORTS_PROCESSORS__VIEWER_WINDOW_S``; production: 30 s), so the test
takes about 25 s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from events.codec import EventCodec
from events.viewers import ViewerCountChanged, ViewerHeartbeat
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicAdmin, TopicNames
from infra.settings import Settings
from stream_processors.topology import internal_topics
from tests.integration.test_lifecycle import WorkerProcess

pytestmark = pytest.mark.integration

WINDOW_MS = 15_000  # the counting window the worker runs with (a setting; production: 30 s)

VIEWERS = 1_000
LEAVING = 300
EDGES = ("edge-a", "edge-b")


class Counts:
    """Reads viewers.counts in the background: the latest count per stream and every event."""

    def __init__(self) -> None:
        self.events: list[tuple[ViewerCountChanged, float]] = []

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=50):
            now = time.monotonic()
            self.events.extend((c.event, now) for c in batch if isinstance(c.event, ViewerCountChanged))

    def latest(self, stream_id: str) -> int | None:
        mine = [e.count for e, _ in self.events if e.stream_id == stream_id]
        return mine[-1] if mine else None

    async def reaches(self, stream_id: str, count: int, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while self.latest(stream_id) != count:
            assert time.monotonic() < deadline, (
                f"count {self.latest(stream_id)}, not {count}, in {timeout_s}s"
            )
            await asyncio.sleep(0.05)
        return time.monotonic()


@pytest.fixture
async def counts_io(namespace: Settings, codec: EventCodec) -> AsyncIterator[tuple[EventPublisher, Counts]]:
    names = TopicNames(namespace.kafka.topic_prefix)
    async with EventPublisher(namespace.kafka, codec, producer="tests.viewers") as publisher:
        dead = DeadLetters(publisher, names.physical("deadletter"))
        consumer = EventConsumer(
            namespace.kafka,
            codec,
            topics=["viewers.counts"],
            group_id=None,
            dead_letters=dead,
            from_beginning=True,
        )
        counts = Counts()
        async with consumer:
            task = asyncio.create_task(counts.collect(consumer))
            yield publisher, counts
            task.cancel()
    async with TopicAdmin(namespace.kafka) as admin:
        await admin.delete([names.physical(t.name) for t in internal_topics(1)])


async def beat(publisher: EventPublisher, stream_id: str, sessions: list[str]) -> None:
    """One heartbeat per session, batched per edge node as edge_ws does (each session on one edge)."""
    for index, edge in enumerate(EDGES):
        mine = sessions[index :: len(EDGES)]
        await publisher.publish_many(
            [
                ViewerHeartbeat(stream_id=stream_id, session_id=s, edge_id=edge, producer="edge_ws")
                for s in mine
            ]
        )


async def test_thousand_viewers_leave_and_restart(
    namespace: Settings, counts_io: tuple[EventPublisher, Counts], tmp_path: Path
) -> None:
    publisher, counts = counts_io
    window = {"ESPORTS_PROCESSORS__VIEWER_WINDOW_S": str(WINDOW_MS / 1000)}
    worker = WorkerProcess(namespace, tmp_path / "faust", tmp_path / "worker.log", **window)
    stream_id = f"stream-{uuid.uuid4().hex[:8]}"
    sessions = [f"session-{i}" for i in range(VIEWERS)]
    worker.start()
    try:
        await worker.wait_healthy(timeout_s=40)
        for start in range(0, VIEWERS, 100):  # joins arrive over a second, in batches
            await beat(publisher, stream_id, sessions[start : start + 100])
            await asyncio.sleep(0.1)
        last_join = time.monotonic()
        assert await counts.reaches(stream_id, VIEWERS, 10) - last_join <= 2.0
        await beat(publisher, stream_id, sessions)  # the same viewers again: still 1,000
        left_at = time.monotonic()  # the leavers' last heartbeat

        await worker.stop()  # a restart in the middle of the run
        worker.start()
        await worker.wait_healthy(timeout_s=40)
        await beat(publisher, stream_id, sessions[LEAVING : LEAVING + 400])  # again, after the restart
        await asyncio.sleep(2)
        assert counts.latest(stream_id) == VIEWERS
        assert max(e.count for e, _ in counts.events) == VIEWERS  # never double counted

        staying = sessions[LEAVING:]
        while counts.latest(stream_id) != VIEWERS - LEAVING:
            assert time.monotonic() - left_at < WINDOW_MS / 1000 + 2, f"count {counts.latest(stream_id)}"
            await beat(publisher, stream_id, staying)  # the staying viewers keep sending
            await asyncio.sleep(1)
        final = [e for e, _ in counts.events if e.stream_id == stream_id]
        assert final[-1].peak == VIEWERS
        assert all(e.count <= VIEWERS for e in final)
        assert len({e.event_id for e in final}) == len({(e.event_id, e.count) for e in final})
    finally:
        worker.kill()
