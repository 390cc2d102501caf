"""The poll agent as a real worker process: 500 concurrent voters, repeated and changed votes, a restart.

The votes are PollVoteCast on ``polls`` as earlier edges wrote them (keyed by stream): the poll agent
re-keys them onto ``polls.votes``, in order with the closes, and the vote worker tallies them there.
Poll A spans a worker restart and is closed by a PollClosed (a vote after it is late); poll B is
opened after it and closed by the deadline (the agent's timer, once the grace has passed). Each final
tally must equal an independent recount of the votes as published (the last vote of each user wins),
and arrive exactly once per poll.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from events.base import utc_now
from events.codec import EventCodec
from events.polls import PollClosed, PollOpened, PollTallyUpdated, PollVoteCast, PollVoted
from events.streams import StreamCreated
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicAdmin, TopicNames, partition_of_key
from infra.settings import Settings
from stream_processors.polls.board import CLOSE_GRACE_MS
from stream_processors.topology import internal_topics
from tests.integration.test_lifecycle import WorkerProcess

pytestmark = pytest.mark.integration

VOTERS = 500
OPTIONS = ("alpha", "bravo", "charlie", "delta")


class Tallies:
    """Reads polls.tallies in the background: every tally, in order."""

    def __init__(self) -> None:
        self.events: list[PollTallyUpdated] = []
        self.received_at: dict[uuid.UUID, float] = {}  # event id -> wall clock when first read here

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=50):
            now = time.time()
            for c in batch:
                if isinstance(c.event, PollTallyUpdated):
                    self.events.append(c.event)
                    self.received_at.setdefault(c.event.event_id, now)

    def of(self, poll_id: str) -> list[PollTallyUpdated]:
        return [t for t in self.events if t.poll_id == poll_id]

    async def final(self, poll_id: str, timeout_s: float) -> PollTallyUpdated:
        deadline = time.monotonic() + timeout_s
        while not any(t.final for t in self.of(poll_id)):
            assert time.monotonic() < deadline, (
                f"no final tally of {poll_id} in {timeout_s}s: {self.of(poll_id)[-1:]}"
            )
            await asyncio.sleep(0.05)
        return next(t for t in self.of(poll_id) if t.final)

    async def reaches(self, poll_id: str, counts: tuple[int, ...], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.of(poll_id) or self.of(poll_id)[-1].counts != counts:
            assert time.monotonic() < deadline, f"{poll_id}: {self.of(poll_id)[-1:]}, not {counts}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def polls_io(namespace: Settings, codec: EventCodec) -> AsyncIterator[tuple[EventPublisher, Tallies]]:
    names = TopicNames(namespace.kafka.topic_prefix)
    async with EventPublisher(namespace.kafka, codec, producer="edge_ws") as publisher:
        dead = DeadLetters(publisher, names.physical("deadletter"))
        consumer = EventConsumer(
            namespace.kafka,
            codec,
            topics=["polls.tallies"],
            group_id=None,
            dead_letters=dead,
            from_beginning=True,
        )
        tallies = Tallies()
        async with consumer:
            task = asyncio.create_task(tallies.collect(consumer))
            yield publisher, tallies
            task.cancel()
    async with TopicAdmin(namespace.kafka) as admin:
        await admin.delete([names.physical(t.name) for t in internal_topics(1)])


class Voters:
    """500 voters; every round each votes (some repeat, some change); the last vote is remembered."""

    def __init__(self, stream_id: str, poll_id: str, seed: int) -> None:
        self.stream_id, self.poll_id = stream_id, poll_id
        self.rng = random.Random(seed)
        self.last: dict[str, int] = {}
        self.sent = 0

    async def round(self, publisher: EventPublisher, users: range) -> None:
        votes = []
        for i in users:
            user = f"user-{i}"
            previous = self.last.get(user)
            repeat = previous is not None and self.rng.random() < 0.4
            option = previous if repeat and previous is not None else self.rng.randrange(len(OPTIONS))
            self.last[user] = option
            votes.append(
                PollVoteCast(poll_id=self.poll_id, stream_id=self.stream_id, user_id=user, option=option)
            )
            if self.rng.random() < 0.2:  # a double-click: the same vote twice
                votes.append(
                    PollVoteCast(poll_id=self.poll_id, stream_id=self.stream_id, user_id=user, option=option)
                )
        chunks = [votes[i : i + 50] for i in range(0, len(votes), 50)]  # concurrent, like many edges
        await asyncio.gather(*(publisher.publish_many(chunk) for chunk in chunks))
        self.sent += len(votes)

    def recount(self) -> tuple[int, ...]:
        """The tally recomputed from the votes as published, independently of the agent."""
        counts = [0] * len(OPTIONS)
        for option in self.last.values():
            counts[option] += 1
        return tuple(counts)


def opened(stream_id: str, poll_id: str, closes_in_s: float | None = None) -> PollOpened:
    closes = None if closes_in_s is None else utc_now() + timedelta(seconds=closes_in_s)
    return PollOpened(
        poll_id=poll_id,
        stream_id=stream_id,
        question="Who takes the map?",
        options=OPTIONS,
        opened_by="mod",
        closes_at=closes,
    )


async def test_five_hundred_voters_with_a_restart(
    namespace: Settings, polls_io: tuple[EventPublisher, Tallies], tmp_path: Path
) -> None:
    publisher, tallies = polls_io
    worker = WorkerProcess(namespace, tmp_path / "faust", tmp_path / "worker.log")
    stream_id = f"stream-{uuid.uuid4().hex[:8]}"
    a = Voters(stream_id, "poll-a", seed=1)
    b = Voters(stream_id, "poll-b", seed=2)
    # "mod" owns the stream's channel: the agent lets only the owner, moderators and admins run polls.
    await publisher.publish(StreamCreated(stream_id=stream_id, channel_id="c", owner_id="mod", title="t"))
    worker.start()
    try:
        await worker.wait_healthy(timeout_s=40)
        await publisher.publish(opened(stream_id, "poll-a"))
        for _ in range(2):  # everyone votes twice, in two halves
            await a.round(publisher, range(0, VOTERS // 2))
            await a.round(publisher, range(VOTERS // 2, VOTERS))
        # live tallies: about a second when idle; 15 s was seen short on a loaded machine
        await tallies.reaches("poll-a", a.recount(), timeout_s=30)

        await worker.stop()  # a restart in the middle: votes keep coming while it is down
        await a.round(publisher, range(0, VOTERS))
        worker.start()
        await worker.wait_healthy(timeout_s=40)
        await a.round(publisher, range(0, VOTERS, 3))
        await publisher.publish(PollClosed(poll_id="poll-a", stream_id=stream_id, closed_by="mod"))
        late = PollVoteCast(
            poll_id="poll-a", stream_id=stream_id, user_id="user-0", option=(a.last["user-0"] + 1) % 4
        )
        await publisher.publish(late)  # after the close: ignored

        final_a = await tallies.final("poll-a", timeout_s=5)
        assert final_a.counts == a.recount() and final_a.total == VOTERS, (
            final_a.counts,
            a.recount(),
            [line for line in worker.get("/metrics")[1].splitlines() if "poll" in line],
        )

        poll_b = opened(stream_id, "poll-b", closes_in_s=6)
        await publisher.publish(poll_b)
        for start in range(0, VOTERS, 100):  # 500 concurrent voters, each votes three times
            for _ in range(3):
                await b.round(publisher, range(start, start + 100))
        bad = PollVoteCast(poll_id="poll-b", stream_id=stream_id, user_id="user-1", option=len(OPTIONS))
        await publisher.publish(bad)
        assert poll_b.closes_at is not None and utc_now() < poll_b.closes_at, "voting took past the deadline"
        assert not any(t.final for t in tallies.of("poll-b"))
        await asyncio.sleep((poll_b.closes_at - utc_now()).total_seconds())
        final_b = await tallies.final("poll-b", timeout_s=CLOSE_GRACE_MS / 1000 + 5)  # by the timer
        # Read here no earlier than the grace after the deadline (a late wake of this test cannot
        # make this fail: it only delays the reading).
        deadline_s = poll_b.closes_at.timestamp() + CLOSE_GRACE_MS / 1000
        assert tallies.received_at[final_b.event_id] >= deadline_s, "closed before the deadline's grace"
        assert final_b.counts == b.recount() and final_b.total == VOTERS, (final_b.counts, b.recount())

        await asyncio.sleep(0.5)
        for poll_id, final in (("poll-a", final_a), ("poll-b", final_b)):
            mine = tallies.of(poll_id)
            finals = [t for t in mine if t.final]
            assert {t.event_id for t in finals} == {final.event_id}  # one final (a redelivery: same id)
            assert all(t.counts == final.counts for t in finals)
            assert all(t.total <= VOTERS for t in mine)  # never double counted
            assert not any(t.final for t in mine[: mine.index(finals[0])]) and mine[-1].final
        status, metrics = worker.get("/metrics")
        assert status == 200 and 'esports_poll_ignored_total{reason="bad_option"} 1.0' in metrics
        assert 'esports_poll_ignored_total{reason="closed_poll"} 1.0' in metrics
        assert 'esports_poll_tallies_total{kind="final"} 2.0' in metrics
    finally:
        worker.kill()


async def test_an_open_poll_keeps_the_votes_its_board_counted_before_the_upgrade(
    namespace: Settings, codec: EventCodec, polls_io: tuple[EventPublisher, Tallies], tmp_path: Path
) -> None:
    """A board stored by the first layout (votes counted in it, keyed by stream) in the changelog: the
    upgraded agent republishes them onto polls.votes, where they count with the new votes."""
    publisher, tallies = polls_io
    stream_id, poll_id = f"stream-{uuid.uuid4().hex[:8]}", "poll-old"
    poll = opened(stream_id, poll_id)
    await publisher.publish_many(
        [StreamCreated(stream_id=stream_id, channel_id="c", owner_id="mod", title="t"), poll]
    )
    old_votes = {f"old-{i}": [i % len(OPTIONS), i] for i in range(40)}
    board = {
        "stream_id": stream_id,
        "channel_id": "c",
        "owner_id": "mod",
        "polls": {poll_id: {"poll_id": poll_id, "options": len(OPTIONS), "votes": old_votes, "seq": 1}},
        "watermark_ms": 1,
        "offset": 40,
    }
    names = TopicNames(namespace.kafka.topic_prefix)
    async with TopicAdmin(namespace.kafka) as admin:
        await admin.ensure(internal_topics(3))
    changelog = names.physical(
        next(t.name for t in internal_topics(3) if t.name.endswith("-polls-changelog"))
    )
    key = stream_id.encode()
    await publisher.publish_raw(
        changelog, json.dumps(board).encode(), key=key, partition=partition_of_key(key, 3)
    )
    worker = WorkerProcess(namespace, tmp_path / "faust", tmp_path / "worker.log")
    worker.start()
    try:
        await worker.wait_healthy(timeout_s=40)
        expected = [0] * len(OPTIONS)
        for option, _ in old_votes.values():
            expected[option] += 1
        await tallies.reaches(poll_id, tuple(expected), timeout_s=15)
        # a voter of before the upgrade changes their vote, a new one votes
        await publisher.publish_many(
            [
                PollVoted(poll_id=poll_id, stream_id=stream_id, user_id="old-0", option=3),
                PollVoted(poll_id=poll_id, stream_id=stream_id, user_id="new-1", option=1),
            ]
        )
        expected[0] -= 1
        expected[3] += 1
        expected[1] += 1
        await publisher.publish(PollClosed(poll_id=poll_id, stream_id=stream_id, closed_by="mod"))
        final = await tallies.final(poll_id, timeout_s=15)
        assert final.counts == tuple(expected) and final.total == 41
    finally:
        worker.kill()
