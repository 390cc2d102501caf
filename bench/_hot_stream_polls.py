"""Scenario 6 of ``bench/hot_stream.py``: one poll, N voters, tallied by the vote workers.

A helper module (``_``-prefixed: ``esports bench`` does not run it); the scenario is described in the
bench's docstring.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
    namespace,
    progress,
    raw_consume,
    row,
)

from events.codec import EventCodec
from events.polls import PollClosed, PollOpened, PollTallyUpdated, PollVoted
from events.streams import StreamCreated
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicNames
from infra.settings import Settings

OPTIONS = ("alpha", "bravo", "charlie", "delta")
CHANGED = 0.10  # the share of voters who vote again, for another option, after everyone voted once
GOAL_VOTES_S = 20_000  # per worker
SOURCE = "polls.votes"
# The poll workers' group session (default 10 s): loading ~220,000 votes while they are paused takes
# ~10 s on 2 CPUs, and an expired session would rebalance (re-reading every vote) mid-measurement.
SESSION_TIMEOUT_S = 45.0
ACCEPTED_S = 60.0  # how long the poll agent may take to publish the opened poll's first (empty) tally


@dataclass(frozen=True)
class Ballot:
    """One poll's votes (encoded for ``polls.votes``) and their recount: each voter's latest vote."""

    created: StreamCreated
    opened: PollOpened
    records: Records
    recount: tuple[int, ...]
    voters: int


def ballot(codec: EventCodec, voters: int, seed: int = 13) -> Ballot:
    """``voters`` distinct voters each vote for a random option; then CHANGED of them change it."""
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    stream_id, poll_id = f"hot-{tag}", f"poll-{tag}"
    created = StreamCreated(stream_id=stream_id, channel_id="c", owner_id="mod", title="t")
    opened = PollOpened(
        poll_id=poll_id, stream_id=stream_id, question="MVP?", options=OPTIONS, opened_by="mod"
    )  # before the votes: a take-over re-reads from its opening (less a minute)
    users = [f"user-{uuid.uuid4().hex[:16]}" for _ in range(voters)]
    latest = {user: rng.randrange(len(OPTIONS)) for user in users}
    votes = [PollVoted(poll_id=poll_id, stream_id=stream_id, user_id=u, option=o) for u, o in latest.items()]
    for user in rng.sample(users, int(voters * CHANGED)):
        latest[user] = (latest[user] + rng.randrange(1, len(OPTIONS))) % len(OPTIONS)
        votes.append(PollVoted(poll_id=poll_id, stream_id=stream_id, user_id=user, option=latest[user]))
    counted = Counter(latest.values())
    recount = tuple(counted[i] for i in range(len(OPTIONS)))
    return Ballot(created, opened, encode_all(codec, votes), recount, voters)


@dataclass
class Tallies:
    """When ``polls.tallies`` first showed each (poll, counts, final), epoch s; the finals."""

    seen: dict[tuple[str, tuple[int, ...], bool], float] = field(default_factory=dict)
    finals: dict[str, PollTallyUpdated] = field(default_factory=dict)

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=20):
            for consumed in batch:
                if isinstance(tally := consumed.event, PollTallyUpdated):
                    self.seen.setdefault((tally.poll_id, tally.counts, tally.final), time.time())
                    if tally.final:
                        self.finals.setdefault(tally.poll_id, tally)

    def of(self, poll_id: str) -> list[tuple[int, ...]]:
        """The counts ``polls.tallies`` showed for ``poll_id``, in the order they first came."""
        return [key[1] for key, _at in sorted(self.seen.items(), key=lambda s: s[1]) if key[0] == poll_id]

    async def running(self, poll_id: str, counts: tuple[int, ...] | None, timeout_s: float) -> float:
        """When a running tally of ``poll_id`` first showed ``counts`` (None: any counts)."""
        deadline = time.monotonic() + timeout_s
        while not (found := [at for key, at in self.seen.items() if _matches(key, poll_id, counts)]):
            if time.monotonic() > deadline:
                wanted = "no running tally" if counts is None else f"no running tally {counts}"
                raise NotExact(f"poll {poll_id}: {wanted} in {timeout_s:.0f}s; last {self.of(poll_id)[-3:]}")
            await asyncio.sleep(0.02)
        return min(found)

    async def final(self, poll_id: str, timeout_s: float) -> tuple[PollTallyUpdated, float]:
        deadline = time.monotonic() + timeout_s
        while poll_id not in self.finals:
            if time.monotonic() > deadline:
                last = self.of(poll_id)[-3:]
                raise NotExact(f"poll {poll_id}: no final tally in {timeout_s:.0f}s; last {last}")
            await asyncio.sleep(0.02)
        tally = self.finals[poll_id]
        return tally, self.seen[(poll_id, tally.counts, True)]


def _matches(key: tuple[str, tuple[int, ...], bool], poll_id: str, counts: tuple[int, ...] | None) -> bool:
    return key[0] == poll_id and not key[2] and (counts is None or key[1] == counts)


@dataclass
class PollBench:
    """One scenario's poll workers (``esports processors --only polls``) and the tallies they publish."""

    workers: Workers
    tallies: Tallies
    publisher: EventPublisher


@asynccontextmanager
async def poll_bench(base: Settings, codec: EventCodec, partitions: int) -> AsyncIterator[PollBench]:
    """Fresh topics, a ``polls.tallies`` reader and a sampler; every worker killed on exit."""
    async with namespace(base, partitions) as settings:
        with tempfile.TemporaryDirectory(prefix="bench-hot-polls-") as data:
            async with EventPublisher(settings.kafka, codec, producer="bench.hot_stream") as publisher:
                names = TopicNames(settings.kafka.topic_prefix)
                reader = EventConsumer(
                    settings.kafka,
                    codec,
                    topics=["polls.tallies"],
                    group_id=None,
                    dead_letters=DeadLetters(publisher, names.physical("deadletter")),
                    from_beginning=True,
                )
                env = {"ESPORTS_PROCESSORS__SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)}
                sampler = Sampler("esports_poll_votes_total")
                only = ["--only", "polls"]
                workers = Workers(settings, codec, Path(data), sampler, "votes", SOURCE, only, env)
                async with reader:
                    here = PollBench(workers, Tallies(), publisher)
                    task = asyncio.create_task(here.tallies.collect(reader))
                    try:
                        yield here
                    finally:
                        task.cancel()
                        sampler.stop()
                        workers.kill()


async def one_poll(
    base: Settings, codec: EventCodec, votes: Ballot, partitions: int, count: int
) -> dict[str, float]:
    """``count`` workers split ``polls.votes``; the poll is opened; its votes are loaded while the
    workers are paused, then absorbed (votes/s per worker, time to the exact running tally); the poll
    is closed (time to the final tally, which must equal the recount); then the baselines."""
    poll_id, stream_id = votes.opened.poll_id, votes.opened.stream_id
    async with poll_bench(base, codec, partitions) as here:
        await here.publisher.publish(votes.created)  # the stream's owner, before the agent's first read
        here.workers.start(count)
        await here.workers.ready(partitions)
        await here.publisher.publish(votes.opened)
        await here.tallies.running(poll_id, None, ACCEPTED_S)  # accepted: its empty tally went out
        progress(f"{count} vote worker(s): poll open, loading {len(votes.records):,} votes")
        before, resumed = await here.workers.paused_load(votes.records, SESSION_TIMEOUT_S)
        read = len(votes.records)
        await here.workers.absorbed(sum(before.values()) + read, count_timeout(read))
        figures = burst_figures(here.workers.sampler.samples, before, resumed, read)
        figures["exact_s"] = await here.tallies.running(poll_id, votes.recount, count_timeout(read)) - resumed
        closing = time.time()
        await here.publisher.publish(PollClosed(poll_id=poll_id, stream_id=stream_id, closed_by="mod"))
        final, final_at = await here.tallies.final(poll_id, count_timeout(read))
        if final.counts != votes.recount or final.total != votes.voters:
            raise NotExact(
                f"poll {poll_id}: the final tally {final.counts} (total {final.total:,}) is not the "
                f"recount of its votes {votes.recount} (total {votes.voters:,})"
            )
        figures["close_s"] = final_at - closing
        here.workers.kill()  # the baselines read alone
        figures.update(await baselines(here.workers.settings, codec, partitions, read))
    return figures


async def baselines(settings: Settings, codec: EventCodec, partitions: int, votes: int) -> dict[str, float]:
    topic = TopicNames(settings.kafka.topic_prefix).physical(SOURCE)
    raw_s, _ = await raw_consume(settings, topic, partitions, votes)
    decode_s, _ = await raw_consume(settings, topic, partitions, votes, codec)
    return {"raw_votes": votes / raw_s, "decode_votes": votes / decode_s}


# --- rows of the table ----------------------------------------------------------------------------


def poll_rows(voters: int, one: dict[str, float], two: dict[str, float]) -> list[Row]:
    if not one:
        return []
    raw = one["raw_votes"]
    votes = voters + int(voters * CHANGED)
    rows = [
        (f"1 poll, {voters:,} voters, {len(OPTIONS)} options, {CHANGED:.0%} vote again:", "", "", ""),
        row(f"raw aiokafka consume, {votes:,} votes", raw, "votes/s"),
        row("  + EventCodec.decode in the same loop", one["decode_votes"], "votes/s", raw),
        row("1 vote worker, votes loaded while it was paused", one["per_worker"], "votes/s", raw),
        row("  worker CPU busy while absorbing", 100 * one["cpu_busy"], "%"),
        row("  votes per worker CPU-second", one["per_cpu_s"], "votes/CPU-s"),
        row("  exact running tally after resume", one["exact_s"], "s", fmt=".1f"),
        row("  close -> final tally (= recount)", one["close_s"], "s", fmt=".2f"),
    ]
    if two:
        raw2 = two["raw_votes"]
        rows += [
            row("2 vote workers, per worker (mean)", two["per_worker"], "votes/s", raw2),
            row("2 vote workers, slower worker", two["min_worker"], "votes/s", raw2),
            row("2 vote workers, total", two["rate"], "votes/s", raw2),
            row("  worker CPU busy while absorbing (mean)", 100 * two["cpu_busy"], "%"),
            row("  votes per worker CPU-second", two["per_cpu_s"], "votes/CPU-s"),
            row("  exact running tally after resume", two["exact_s"], "s", fmt=".1f"),
            row("  close -> final tally (= recount)", two["close_s"], "s", fmt=".2f"),
        ]
    return rows


def print_goal(one: dict[str, float], two: dict[str, float]) -> None:
    if not one:
        return
    per_worker = [one["per_worker"], *([two["min_worker"]] if two else [])]
    lowest = min(per_worker)
    print(
        f"  polls goal >= {GOAL_VOTES_S:,} votes/s per worker: lowest per-worker figure {lowest:,.0f} "
        f"-> {'met' if lowest >= GOAL_VOTES_S else 'NOT met'}; every running and final tally equal to "
        "the recount (each voter's latest vote)"
    )
    rereads = [f.get("reread", 0.0) for f in (one, two)]
    if any(rereads):
        print(
            f"  note: a rebalance during a poll burst re-read {max(rereads):,.0f} votes (figures include it)"
        )
