"""The hot stream with two worker processes of a family (`esports processors --only FAMILY`).

One stream of a match with 900 viewers, a POV stream of the same match with 300 (150 of them also on
the main stream), and a stream of no match. The heartbeats are published as the edges publish them
(:func:`edge_ws.commands.presence_batches`, keyed by session over 3 partitions), so both workers
count a share of the hot stream. The counts and the match audience must equal a recount of the
heartbeats read back from ``viewers.presence``; then one worker is killed (-9) while heartbeats keep
coming, the other takes its partitions over (re-reading their window), the counts stay equal to the
recount (never above it), and when 200 viewers leave they fall to the new recount. The window is
10 s here (a setting), so the test takes about a minute.

Polls: 3,000 voters through two workers of the polls family, one killed, the final tally equal to a
recount. Moderation: one stream's chat from 303 senders through two workers of the moderation
family, one killed, every message decided once and as the whole-stream decide() would.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from edge_ws.commands import presence_batches
from events.base import Event, utc_now
from events.chat import (
    ChatChannelSynced,
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageSent,
    ChatMessageSubmitted,
    ChatSettingsChanged,
)
from events.codec import EventCodec
from events.polls import PollClosed, PollOpened, PollVoted, PollVotingClosed
from events.streams import StreamCreated, StreamRole
from events.viewers import MatchAudienceChanged, ViewerCountChanged, ViewerPresenceBatch
from infra.kafka import (
    DeadLetters,
    EventConsumer,
    EventPublisher,
    LoggedDeadLetters,
    TopicAdmin,
    TopicNames,
    partition_of_key,
)
from infra.settings import Settings
from stream_processors.moderation.agent import chat_limits
from stream_processors.moderation.decisions import decide
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.state import ChatChannel
from stream_processors.topology import internal_topics
from stream_processors.viewers.counts import epoch_ms
from tests.integration.test_lifecycle import WorkerProcess
from tests.integration.test_moderation import ChatLog, kafka_io  # noqa: F401 (a fixture)
from tests.integration.test_polls import Tallies
from tests.integration.test_processor_restarts import read_topics
from tests.integration.test_viewer_counts_match import Audiences, audience_io  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration

WINDOW_S = 10
BEAT_EVERY_S = 2.0
PARTITIONS = 3  # the namespace fixture's


def watching(tag: str) -> dict[str, list[str]]:
    """session -> the streams it watches."""
    main, pov, other = f"main-{tag}", f"pov-{tag}", f"other-{tag}"
    sessions: dict[str, list[str]] = {}
    for n in range(900):
        sessions[f"v{n}-{tag}"] = [main, pov] if n < 150 else [main]
    for n in range(150):
        sessions[f"p{n}-{tag}"] = [pov]
    for n in range(40):
        sessions[f"o{n}-{tag}"] = [other]
    return sessions


async def beat(publisher: EventPublisher, sessions: dict[str, list[str]], edges: int = 3) -> None:
    """One flush of a fleet of ``edges`` nodes, each holding a third of the sessions."""
    now = utc_now()
    records: list[ViewerPresenceBatch] = []
    for edge in range(edges):
        mine = {
            (s, sid): (None, None) for sid, streams in list(sessions.items())[edge::edges] for s in streams
        }
        records.extend(presence_batches(mine, PARTITIONS, edge_id=f"edge-{edge}", seen_at=now))
    await publisher.publish_many(records)


async def recount(namespace: Settings, codec: EventCodec, match_of: dict[str, str]) -> dict[str, int]:
    """Distinct sessions per stream and per match within the window, from ``viewers.presence`` itself."""
    consumer = EventConsumer(
        namespace.kafka,
        codec,
        topics=["viewers.presence"],
        group_id=None,
        dead_letters=LoggedDeadLetters("recount"),
        from_beginning=True,
    )
    seen: dict[tuple[str, str], datetime] = {}
    async with consumer:
        async for batch in consumer.batches(timeout_ms=300):
            if not batch:
                break
            for consumed in batch:
                event = consumed.event
                assert isinstance(event, ViewerPresenceBatch)
                for b in event.beats:
                    key = (b.stream_id, b.session_id)
                    seen[key] = max(seen.get(key, event.occurred_at), event.occurred_at)
    horizon = epoch_ms(max(seen.values())) - WINDOW_S * 1000
    present = [(s, sid) for (s, sid), at in seen.items() if epoch_ms(at) > horizon]
    counts: dict[str, int] = {}
    for stream, _ in present:
        counts[stream] = counts.get(stream, 0) + 1
    for match in set(match_of.values()):
        counts[match] = len({sid for s, sid in present if match_of.get(s) == match})
    return counts


async def keep_beating(
    publisher: EventPublisher, sessions: dict[str, list[str]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        await beat(publisher, sessions)
        try:
            await asyncio.wait_for(stop.wait(), BEAT_EVERY_S)
        except TimeoutError:
            pass


def heartbeats_counted(worker: WorkerProcess) -> int:
    _, text = worker.get("/metrics")
    found = re.search(r"^esports_viewer_heartbeats_total (\S+)$", text, flags=re.MULTILINE)
    return int(float(found.group(1))) if found else 0  # Prometheus floats: 12.0, 1.2e+06


async def test_two_workers_count_the_hot_stream_exactly_and_one_takes_over_after_a_kill(
    namespace: Settings,
    codec: EventCodec,
    audience_io: tuple[EventPublisher, Audiences],  # noqa: F811
    tmp_path: Path,
) -> None:
    publisher, audiences = audience_io
    tag = uuid.uuid4().hex[:8]
    match, main, pov, other = f"match-{tag}", f"main-{tag}", f"pov-{tag}", f"other-{tag}"
    match_of = {main: match, pov: match}
    await publisher.publish_many(
        [
            StreamCreated(stream_id=main, channel_id="c1", owner_id="u1", title="Final", match_id=match),
            StreamCreated(
                stream_id=pov,
                channel_id="c2",
                owner_id="u2",
                title="POV",
                role=StreamRole.POV,
                match_id=match,
            ),
            StreamCreated(stream_id=other, channel_id="c3", owner_id="u3", title="Elsewhere"),
        ]
    )
    env = {"ESPORTS_PROCESSORS__VIEWER_WINDOW_S": str(WINDOW_S), "ESPORTS_PROCESSORS__SESSION_TIMEOUT_S": "6"}
    workers = [
        WorkerProcess(
            namespace, tmp_path / f"faust-{n}", tmp_path / f"worker-{n}.log", ["--only", "viewers"], **env
        )
        for n in range(2)
    ]
    sessions = watching(tag)
    stop = asyncio.Event()
    beating: asyncio.Task[None] | None = None
    try:
        for worker in workers:
            worker.start()
        await asyncio.gather(*(w.wait_healthy(timeout_s=60) for w in workers))
        beating = asyncio.create_task(keep_beating(publisher, sessions, stop))
        expected = {main: 900, pov: 300, other: 40, match: 1050}
        await audiences.reach(expected, timeout_s=30)
        assert await recount(namespace, codec, match_of) == expected
        assert all(heartbeats_counted(w) > 0 for w in workers), "both workers count a share"
        shares = [json.loads(w.get("/health")[1])["kafka"]["partition_workers"]["presence"] for w in workers]
        assert sorted(p for share in shares for p in share["ready"]) == list(range(PARTITIONS)), shares

        workers[0].kill()  # mid-load: the heartbeats keep coming
        killed_at = time.monotonic()
        await asyncio.sleep(12)  # the session timeout (6 s) and the take-over's re-read
        await audiences.reach(expected, timeout_s=20)
        survivor = heartbeats_counted(workers[1])
        await asyncio.sleep(2 * BEAT_EVERY_S)
        assert heartbeats_counted(workers[1]) - survivor >= len(sessions), "the survivor counts every session"

        leaving = [sid for sid in sessions if sid.startswith("v")][-200:]  # main-only viewers
        for sid in leaving:
            del sessions[sid]
        left = {main: 700, pov: 300, other: 40, match: 850}
        await audiences.reach(left, timeout_s=WINDOW_S + 15)
        # One more beat after the counts fell: the recount's window ends at the last beat, which must
        # be later than the leavers' last beat + the window, as the worker's wall clock already is.
        await asyncio.sleep(BEAT_EVERY_S + 0.5)
        stop.set()
        await beating
        assert await recount(namespace, codec, match_of) == left
    finally:
        stop.set()
        if beating is not None:
            await asyncio.gather(beating, return_exceptions=True)
        for worker in workers:
            worker.kill()
    for audience, ceiling in expected.items():
        counts = [e.count for e in audiences.of(audience)]
        assert max(counts) == ceiling, f"{audience}: {counts} (never counted above the recount)"
    async with TopicAdmin(namespace.kafka) as admin:  # the family's own changelogs
        names = TopicNames(namespace.kafka.topic_prefix)
        await admin.delete([names.physical(t.name) for t in internal_topics(1, "viewers")])
    after_kill = [e for e in audiences.of(match) if isinstance(e, MatchAudienceChanged)]
    assert after_kill[-1].peak == 1050 and killed_at > 0
    assert all(isinstance(e, ViewerCountChanged) for e in audiences.of(main))


def recount_votes(log: list[Event], poll: PollOpened, partitions: int) -> tuple[int, ...]:
    """The tally recomputed from ``polls.votes`` itself: per partition, the votes before its
    end-of-votes marker, each voter's latest valid one (an option of the poll)."""
    cut: set[int] = set()
    latest: dict[str, int] = {}
    for event in log:  # in log order per partition
        if isinstance(event, PollVotingClosed) and event.poll_id == poll.poll_id:
            cut.add(partition_of_key(event.user_id.encode(), partitions))
        elif isinstance(event, PollVoted) and event.poll_id == poll.poll_id:
            if partition_of_key(event.user_id.encode(), partitions) in cut:
                continue
            if 0 <= event.option < len(poll.options):
                latest[event.user_id] = event.option
    return tuple(list(latest.values()).count(i) for i in range(len(poll.options)))


async def test_two_vote_workers_tally_one_poll_exactly_through_a_kill(
    namespace: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    """3,000 voters of one poll (votes changed, repeated, some invalid) through two workers of the
    polls family; one is killed (-9) mid-load; the final tally equals the recount from polls.votes."""
    tag = uuid.uuid4().hex[:8]
    stream, poll_id = f"stream-{tag}", f"poll-{tag}"
    options = ("a", "b", "c", "d")
    poll = PollOpened(poll_id=poll_id, stream_id=stream, question="MVP?", options=options, opened_by="mod")
    env = {"ESPORTS_PROCESSORS__SESSION_TIMEOUT_S": "6"}
    only = ["--only", "polls"]
    workers = [
        WorkerProcess(namespace, tmp_path / f"faust-{n}", tmp_path / f"worker-{n}.log", only, **env)
        for n in range(2)
    ]
    rng = random.Random(5)
    names = TopicNames(namespace.kafka.topic_prefix)
    async with EventPublisher(namespace.kafka, codec, producer="edge_ws") as publisher:
        consumer = EventConsumer(
            namespace.kafka,
            codec,
            topics=["polls.tallies"],
            group_id=None,
            dead_letters=DeadLetters(publisher, names.physical("deadletter")),
            from_beginning=True,
        )
        tallies = Tallies()
        async with consumer:
            collecting = asyncio.create_task(tallies.collect(consumer))
            try:
                created = StreamCreated(stream_id=stream, channel_id="c", owner_id="mod", title="Final")
                await publisher.publish_many([created, poll])
                for worker in workers:
                    worker.start()
                await asyncio.gather(*(w.wait_healthy(timeout_s=60) for w in workers))

                async def votes(count: int) -> None:
                    batch = [
                        PollVoted(
                            poll_id=poll_id,
                            stream_id=stream,
                            user_id=f"voter-{rng.randrange(3_000)}",
                            option=rng.choice((0, 1, 2, 3, 3, 9)),  # 9: no such option
                        )
                        for _ in range(count)
                    ]
                    await publisher.publish_many(batch)

                for _ in range(10):
                    await votes(600)
                workers[0].kill()  # mid-load
                for _ in range(10):
                    await votes(600)
                    await asyncio.sleep(0.3)
                await publisher.publish(PollClosed(poll_id=poll_id, stream_id=stream, closed_by="mod"))
                await votes(500)  # after the close: not counted
                final = await tallies.final(poll_id, timeout_s=40)
            finally:
                collecting.cancel()
                for worker in workers:
                    worker.kill()
            log = await read_topics(namespace, codec, ["polls.votes"])
            partitions = len({partition_of_key(e.user_id.encode(), PARTITIONS) for e in log["polls.votes"]})
            assert partitions == PARTITIONS
            recount = recount_votes(log["polls.votes"], poll, PARTITIONS)
            assert final.counts == recount and final.total == sum(recount) > 2_000
            assert all(t.total <= 3_000 for t in tallies.of(poll_id))  # never double counted
            assert [t.final for t in tallies.of(poll_id)].count(True) == 1
    async with TopicAdmin(namespace.kafka) as admin:
        await admin.delete([names.physical(t.name) for t in internal_topics(1, "polls")])


def chat_burst(stream: str, rng: random.Random, count: int) -> list[ChatMessageSent]:
    """``count`` messages on one stream as edges publish them (chat.sent, keyed by sender): 300
    viewers, a few spammers (rate limit), repeats (duplicates), blocked and obfuscated terms."""
    texts = ("gg", "what a play", "LETS GO", "badword lol", "you are a b.a.d.w.o.r.d", "pog", "ez")
    burst = []
    for _ in range(count):
        user = f"spammer-{rng.randrange(3)}" if rng.random() < 0.1 else f"viewer-{rng.randrange(300)}"
        text = rng.choice(texts) + ("" if rng.random() < 0.5 else f" {rng.randrange(4)}")
        burst.append(
            ChatMessageSent(
                message_id=f"m-{uuid.uuid4().hex[:12]}",
                stream_id=stream,
                user_id=user,
                display_name=user,
                text=text,
                edge_id="edge-test",
            )
        )
    return burst


def whole_stream_decisions(settings: Settings, setup: list[Event], sent: list[Event]) -> dict[str, tuple]:
    """What the whole-stream decide() of the unit table decides for every message, in the order sent."""
    roster = ChatRoster()
    state = ChatChannel(stream_id=next(e.stream_id for e in setup))  # type: ignore[attr-defined]
    outcome: dict[str, tuple] = {}
    for cause in [*setup, *sent]:
        state, decisions = decide(
            state, cause, cause.occurred_at, roster=roster, limits=chat_limits(settings.chat)
        )
        if isinstance(cause, ChatMessageSent):
            outcome.update(decided(decisions))
    return outcome


def decided(decisions: list[Event]) -> dict[str, tuple]:
    """message id -> (kind, reason) of the decisions on messages."""
    return {
        e.message_id: (e.event_type(), str(getattr(e, "reason", "")))  # type: ignore[attr-defined]
        for e in decisions
        if isinstance(e, ChatMessageAccepted | ChatMessageRejected | ChatMessageHeld)
    }


async def blocked(publisher: EventPublisher, chat: ChatLog, stream: str) -> ChatMessageSubmitted:
    """The owner's ``/block badword``, sent again until the stream's moderation knows the owner (it
    reads ``streams`` and ``chat.submitted`` in no particular order across topics)."""
    for n in range(20):
        block = ChatMessageSubmitted(
            message_id=f"m-block-{n}",
            stream_id=stream,
            user_id="owner",
            display_name="Owner",
            text="/block badword",
            edge_id="edge-test",
        )
        await publisher.publish(block)
        cause = str(block.event_id)
        decision = await chat.wait(
            lambda e, m=block.message_id, c=cause: getattr(e, "message_id", None) == m or e.causation_id == c
        )
        if isinstance(decision, ChatSettingsChanged):
            return block
        await asyncio.sleep(0.5)
    raise AssertionError("the owner's /block was never accepted")


async def test_two_chat_workers_decide_one_stream_as_one_would_through_a_kill(
    namespace: Settings,
    codec: EventCodec,
    tmp_path: Path,
    kafka_io: tuple[EventPublisher, ChatLog],  # noqa: F811
) -> None:
    """3,000 messages of one stream from 303 senders, decided by two workers of the moderation family
    (3 partitions of chat.sent); one is killed (-9) mid-load. Every message is decided exactly once,
    each decision equals the whole-stream decide()'s (the unit table) on the same input, and nothing
    is on chat.messages twice."""
    tag = uuid.uuid4().hex[:8]
    stream = f"stream-{tag}"
    env = {"ESPORTS_PROCESSORS__SESSION_TIMEOUT_S": "6"}
    only = ["--only", "moderation"]
    workers = [
        WorkerProcess(namespace, tmp_path / f"faust-{n}", tmp_path / f"worker-{n}.log", only, **env)
        for n in range(2)
    ]
    rng = random.Random(13)
    names = TopicNames(namespace.kafka.topic_prefix)
    created = StreamCreated(stream_id=stream, channel_id="c", owner_id="owner", title="Final")
    sent: list[Event] = []
    publisher, chat = kafka_io
    try:
        await publisher.publish(created)
        for worker in workers:
            worker.start()
        await asyncio.gather(*(w.wait_healthy(timeout_s=60) for w in workers))
        block = await blocked(publisher, chat, stream)
        for n in range(10):
            burst = chat_burst(stream, rng, 300)
            sent.extend(burst)
            await publisher.publish_many(burst)
            if n == 4:
                workers[0].kill()  # mid-load
            await asyncio.sleep(0.3)
        # the killed worker's partitions wait for its session to expire, then are taken over
        ids = {m.message_id for m in sent}  # type: ignore[attr-defined]
        await chat.wait(lambda e: len(ids & set(decided(chat.events))) == len(ids), timeout_s=90)
        await asyncio.sleep(2)  # anything late (a duplicate) would land by now
    finally:
        for worker in workers:
            worker.kill()
    log = await read_topics(namespace, codec, ["chat.messages", "chat.sent"])
    assert len({partition_of_key(e.user_id.encode(), PARTITIONS) for e in sent}) == PARTITIONS  # type: ignore[attr-defined]
    on_log = [e for e in log["chat.messages"] if getattr(e, "stream_id", None) == stream]
    ids = [e.event_id for e in on_log]
    assert len(ids) == len(set(ids)), "a decision published twice"
    got = decided(on_log)
    assert len(
        [e for e in on_log if isinstance(e, ChatMessageAccepted | ChatMessageRejected | ChatMessageHeld)]
    ) == len(sent)
    expected = whole_stream_decisions(namespace, [created, block], sent)
    assert got == expected
    kinds = {kind for kind, _ in got.values()} | {reason for _, reason in got.values()}
    assert {"ChatMessageHeld", "rate_limited", "duplicate", "blocked_term"} <= kinds
    # the survivor took the killed worker's partitions over: their state read back, resumed after it
    taken = re.findall(r"chat partition (\d+): (\d+) keys restored", (tmp_path / "worker-1.log").read_text())
    assert {int(p) for p, _ in taken} == set(range(PARTITIONS)) and any(int(k) for _, k in taken), taken
    markers = [e for e in log["chat.sent"] if isinstance(e, ChatChannelSynced) and e.stream_id == stream]
    assert len({partition_of_key(e.user_id.encode(), PARTITIONS) for e in markers}) == PARTITIONS
    async with TopicAdmin(namespace.kafka) as admin:
        await admin.delete([names.physical(t.name) for t in internal_topics(1, "moderation")])
