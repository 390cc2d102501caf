"""A match's combined audience through the real worker: viewers of two streams of a match count once.

The match has a main broadcast (StreamCreated with ``match_id`` on ``streams``) and a POV stream
that joins it later (StreamUpdated); a third stream belongs to no match. Alice watches both streams
of the match, Bob the main one, Carol the POV, Dave the unrelated stream. Each stream counts its own
viewers (Alice once in each); the match counts Alice and Bob, then Carol too once the POV joins
(without a new heartbeat: the POV's present sessions join the match), Alice once (3, never 4); a
restart with every heartbeat sent again changes nothing, and when only Bob keeps sending, the counts
fall after the window (15 s here, a setting; 30 s in production). About 40 s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from events.base import Event
from events.codec import EventCodec
from events.streams import StreamCreated, StreamRole, StreamUpdated
from events.viewers import MatchAudienceChanged, ViewerCountChanged, ViewerHeartbeat
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicAdmin, TopicNames
from infra.settings import Settings
from stream_processors.topology import internal_topics
from tests.integration.test_lifecycle import WorkerProcess

pytestmark = pytest.mark.integration

WINDOW_MS = 15_000  # the counting window the worker runs with (a setting; production: 30 s)


class Audiences:
    """Reads viewers.counts and viewers.match_counts in the background: every count, in order."""

    def __init__(self) -> None:
        self.events: list[ViewerCountChanged | MatchAudienceChanged] = []

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=50):
            for consumed in batch:
                if isinstance(consumed.event, ViewerCountChanged | MatchAudienceChanged):
                    self.events.append(consumed.event)

    def of(self, audience: str) -> list[ViewerCountChanged | MatchAudienceChanged]:
        return [e for e in self.events if _id(e) == audience]

    def latest(self, audience: str) -> int | None:
        mine = self.of(audience)
        return mine[-1].count if mine else None

    async def reach(self, wanted: dict[str, int], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while any(self.latest(a) != n for a, n in wanted.items()):
            now = {a: self.latest(a) for a in wanted}
            assert time.monotonic() < deadline, f"counts {now}, not {wanted}, in {timeout_s}s"
            await asyncio.sleep(0.05)


def _id(event: ViewerCountChanged | MatchAudienceChanged) -> str:
    return event.stream_id if isinstance(event, ViewerCountChanged) else event.match_id


@pytest.fixture
async def audience_io(
    namespace: Settings, codec: EventCodec
) -> AsyncIterator[tuple[EventPublisher, Audiences]]:
    names = TopicNames(namespace.kafka.topic_prefix)
    async with EventPublisher(namespace.kafka, codec, producer="tests.viewers") as publisher:
        consumer = EventConsumer(
            namespace.kafka,
            codec,
            topics=["viewers.counts", "viewers.match_counts"],
            group_id=None,
            dead_letters=DeadLetters(publisher, names.physical("deadletter")),
            from_beginning=True,
        )
        audiences = Audiences()
        async with consumer:
            task = asyncio.create_task(audiences.collect(consumer))
            yield publisher, audiences
            task.cancel()
    async with TopicAdmin(namespace.kafka) as admin:
        await admin.delete([names.physical(t.name) for t in internal_topics(1)])


def beats(watching: dict[str, list[str]]) -> list[Event]:
    return [
        ViewerHeartbeat(stream_id=stream, session_id=session, edge_id="edge-a", producer="edge_ws")
        for session, streams in watching.items()
        for stream in streams
    ]


async def test_a_viewer_of_two_streams_counts_once_in_the_match(
    namespace: Settings, audience_io: tuple[EventPublisher, Audiences], tmp_path: Path
) -> None:
    publisher, audiences = audience_io
    tag = uuid.uuid4().hex[:8]
    match, main, pov, other = f"match-{tag}", f"main-{tag}", f"pov-{tag}", f"other-{tag}"
    await publisher.publish_many(
        [
            StreamCreated(stream_id=main, channel_id="c1", owner_id="u1", title="Final", match_id=match),
            StreamCreated(
                stream_id=pov,
                channel_id="c2",
                owner_id="u2",
                title="POV",
                role=StreamRole.POV,
            ),
            StreamCreated(stream_id=other, channel_id="c3", owner_id="u3", title="Elsewhere"),
        ]
    )
    watching = {"alice": [main, pov], "bob": [main], "carol": [pov], "dave": [other]}
    window = {"ESPORTS_PROCESSORS__VIEWER_WINDOW_S": str(WINDOW_MS / 1000)}
    worker = WorkerProcess(namespace, tmp_path / "faust", tmp_path / "worker.log", **window)
    worker.start()
    try:
        await worker.wait_healthy(timeout_s=40)
        await publisher.publish_many(beats(watching))
        await audiences.reach({main: 2, pov: 2, other: 1, match: 2}, timeout_s=20)
        await publisher.publish(StreamUpdated(stream_id=pov, updated_by="u2", match_id=match))
        await audiences.reach({match: 3}, timeout_s=20)

        await worker.stop()  # a restart, then every heartbeat again
        worker.start()
        await worker.wait_healthy(timeout_s=40)
        await publisher.publish_many(beats(watching))
        await publisher.publish_many(beats({"alice": [pov, main]}))
        await asyncio.sleep(2)
        assert {a: audiences.latest(a) for a in (main, pov, other, match)} == {
            main: 2,
            pov: 2,
            other: 1,
            match: 3,
        }

        left_at = time.monotonic()  # only Bob keeps watching
        while audiences.latest(match) != 1 or audiences.latest(main) != 1 or audiences.latest(pov) != 0:
            assert time.monotonic() - left_at < WINDOW_MS / 1000 + 15, worker.log_tail()
            await publisher.publish_many(beats({"bob": [main]}))
            await asyncio.sleep(1)
    finally:
        worker.kill()
    in_match = audiences.of(match)
    assert all(isinstance(e, MatchAudienceChanged) for e in in_match)
    assert max(e.count for e in in_match) == 3  # Alice was never counted twice, restart or not
    assert in_match[-1].peak == 3 and 1 < in_match[-1].average <= 3
    assert max(e.count for e in audiences.of(main)) == 2 and max(e.count for e in audiences.of(pov)) == 2
    assert audiences.of(other) and all(isinstance(e, ViewerCountChanged) for e in audiences.of(other))
