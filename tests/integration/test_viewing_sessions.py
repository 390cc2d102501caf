"""Viewing sessions through the real presence worker (``esports processors --only viewers``): each session
starts once at its first heartbeat and ends with its last, and a worker killed (-9) while sessions are
open is followed by one that keeps their starts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from events.base import Event
from events.topics import Topic
from events.viewers import ViewerBeat, ViewerPresenceBatch, ViewingSessionEnded, ViewingSessionStarted
from infra.kafka import EventPublisher
from infra.settings import Settings
from tests.integration.test_lifecycle import WorkerProcess
from tests.integration.test_points import CODEC, points_ready, read_partitions

pytestmark = pytest.mark.integration

WINDOW_S = 4


@pytest.mark.timeout(180)
async def test_sessions_start_once_and_end_with_their_last_heartbeat_across_a_worker_kill(
    namespace: Settings, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    stream = f"s-{run}"
    stays, leaves = f"stays-{run}", f"leaves-{run}"
    worker = WorkerProcess(
        namespace,
        tmp_path / "faust",
        tmp_path / "worker.log",
        args=["--only", "viewers"],
        ESPORTS_PROCESSORS__SESSION_TIMEOUT_S="6",
        ESPORTS_PROCESSORS__VIEWER_WINDOW_S=str(WINDOW_S),
    )
    sent: dict[str, list[int]] = defaultdict(list)  # session -> its heartbeats (epoch ms)

    async def beat(publisher: EventPublisher, *sessions: str) -> None:
        for session in sessions:
            batch = ViewerPresenceBatch(
                shard_key=session,
                edge_id="edge-1",
                beats=(ViewerBeat(stream_id=stream, session_id=session, user_id=f"user-{session}"),),
            )
            await publisher.publish(batch)
            sent[session].append(int(batch.occurred_at.timestamp() * 1000))

    worker.start()
    try:
        async with EventPublisher(namespace.kafka, CODEC, producer="tests.sessions") as publisher:
            await points_ready(worker, roles=("presence",))
            for _ in range(3):
                await beat(publisher, stays, leaves)
                await asyncio.sleep(1)

            async def keeps_watching() -> None:
                while True:
                    await beat(publisher, stays)
                    await asyncio.sleep(1)

            watching = asyncio.create_task(keeps_watching())  # through the kill and the restart
            worker.kill()  # both sessions open: started on the log, not ended
            await asyncio.sleep(WINDOW_S + 6)  # `leaves` ended while nobody read its partition
            worker.start()
            await points_ready(worker, roles=("presence",))
            await asyncio.sleep(3)
            watching.cancel()
            deadline = time.monotonic() + 60
            while True:
                found = await read_partitions(namespace, Topic.VIEWERS_SESSIONS)
                events = [e for part in found.values() for e in part]
                ended = {e.session_id: e for e in events if isinstance(e, ViewingSessionEnded)}
                if {stays, leaves} <= set(ended):
                    break
                assert time.monotonic() < deadline, f"sessions not ended: {events}\n{worker.log_tail()}"
                await asyncio.sleep(0.5)
    finally:
        worker.kill()
    by_id: dict[uuid.UUID, list[Event]] = defaultdict(list)
    for event in events:
        by_id[event.event_id].append(event)
    differing = [same for same in by_id.values() if len(set(same)) != 1]
    assert not differing, differing  # one id, one event (published again: equal)
    distinct = [same[0] for same in by_id.values()]
    for session in (stays, leaves):
        first, last = sent[session][0], sent[session][-1]
        started = [e for e in distinct if isinstance(e, ViewingSessionStarted) and e.session_id == session]
        finished = [e for e in distinct if isinstance(e, ViewingSessionEnded) and e.session_id == session]
        assert [int(e.started_at.timestamp() * 1000) for e in started] == [first], session
        assert len(finished) == 1, finished
        end = finished[0]
        assert int(end.started_at.timestamp() * 1000) == first  # the start kept across the kill
        assert int(end.ended_at.timestamp() * 1000) == last
        assert end.watch_ms == last - first and end.user_id == f"user-{session}" and end.stream_id == stream
