"""Scale-out of the projector service (issue 14): two projector processes in the same consumer groups
split every projector's partitions, and the read models they build together equal a clean replay of
the same topics, row by row and key by key.

The load is a live session over many streams, so every partition of every topic carries events: the
catalogue's random stories, and per stream its ingest health, viewer counts, chat with moderation
(each outcome right after its request, with the moderation agent's decision ids), a poll with the
poll agent's tallies, each match's audience, each user's notifications and reads. It is published in
three parts: the first while both processes run (each applies events for every projector), the
second while one process is killed with SIGKILL (its partitions move to the survivor, as the group
coordinator shows), the third once it was started again (they move back). A single in-process
service then replays the topics from the beginning into a fresh schema and prefix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiokafka.admin.client
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol.admin import DescribeGroupsRequest
from psycopg_pool import AsyncConnectionPool

from events.base import Event, utc_now
from events.chat import (
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageDeleted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageRestored,
    ChatSettingsChanged,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
)
from events.codec import EventCodec
from events.ingest import IngestDisconnected, IngestHealthReported
from events.notifications import NotificationIssued, NotificationKind
from events.points import (
    PointsGranted,
    PointsStaked,
    PredictionOpened,
    PredictionResolved,
    PredictionUpdated,
    StakeSettled,
)
from events.polls import PollClosed, PollOpened, PollTallyUpdated
from events.streams import StreamCreated
from events.topics import spec
from events.tournaments import MatchScheduled
from events.users import NotificationsRead, UserRegistered
from events.viewers import (
    MatchAudienceChanged,
    ViewerCountChanged,
    ViewingSessionEnded,
    ViewingSessionStarted,
)
from infra.kafka import EventPublisher, Position, TopicNames, client_options
from infra.redis import RedisClient
from infra.settings import REPO_ROOT, Settings
from projections.projector import BatchStore, group_id
from projections.service import build_stores
from stream_processors.moderation.state import head
from tests.integration.projections_support import (
    dump_tables,
    read_model,
    redis_space,
    running_service,
    unique_schema,
)
from tests.integration.test_projections_catalog import http_get
from tests.integration.test_projections_restart import mixed_events
from tests.integration.test_rebuild_support import dump_keys, wait_applied
from tests.ports import free_port
from tests.unit.event_samples import SAMPLE_TIME

pytestmark = pytest.mark.integration

T0 = SAMPLE_TIME
CATALOG_EVENTS = 1000
LIVE_STREAMS = 30  # streams with chat, counts, a poll and ingest reports (spread over every partition)
INBOXES = 40
PARTS = (0.4, 0.7)  # the session is published in three parts, split at these fractions
BATCH_SIZE = "50"  # many small transactions: the kill lands mid-batch, the two processes interleave
Step = list[Event]  # published back to back (a cause and the agent's decision on it)
Story = list[Step]  # in its own order; stories are interleaved with each other
Assignment = dict[str, set[tuple[str, int]]]  # a process (client id) -> its partitions of one group


# --- the session -----------------------------------------------------------------------------------


class LiveSession:
    """What happens around the catalogue's streams, matches and users (deterministic per seed)."""

    def __init__(self, catalog: Sequence[Event], seed: int) -> None:
        self.rng = random.Random(seed)
        self.streams = [e.stream_id for e in catalog if isinstance(e, StreamCreated)][:LIVE_STREAMS]
        self.matches = sorted({e.match_id for e in catalog if isinstance(e, MatchScheduled)})
        self.users = [e.user_id for e in catalog if isinstance(e, UserRegistered)][:INBOXES]
        self.requests = 0

    def stories(self) -> list[Story]:
        per_stream = (self.ingest, self.counts, self.chat, self.poll, self.prediction, self.sessions)
        return [
            *(story(stream) for stream in self.streams for story in per_stream),
            *(self.audience(match) for match in self.matches),
            *(self.inbox(user) for user in self.users),
        ]

    def ingest(self, stream: str) -> Story:
        # A report's key expires 30 s after the report's own time: old reports write nothing, and the
        # last one is dated an hour ahead, so it outlives the test and the replay writes it too.
        moments = [T0, T0 + timedelta(seconds=5), utc_now() + timedelta(hours=1)]
        story: Story = [
            [
                IngestHealthReported(
                    stream_id=stream,
                    session_id=f"session-{stream}",
                    input_bitrate_kbps=6000.0 - n,
                    fps=60.0,
                    encoder_speed=1.0,
                    dropped_frames=n,
                    restarts=0,
                    occurred_at=moment,
                )
            ]
            for n, moment in enumerate(moments)
        ]
        if self.rng.random() < 0.3:
            story.append([IngestDisconnected(stream_id=stream, session_id=f"session-{stream}")])
        return story

    def counts(self, stream: str) -> Story:
        peak = 0
        story: Story = []
        for n in range(self.rng.randrange(4, 12)):
            count = self.rng.randrange(10, 5000)
            peak = max(peak, count)
            at = T0 + timedelta(seconds=7 * n)
            story.append([ViewerCountChanged(stream_id=stream, count=count, peak=peak, occurred_at=at)])
        return story

    def audience(self, match: str) -> Story:
        peak = 0
        story: Story = []
        for n in range(self.rng.randrange(2, 6)):
            count = self.rng.randrange(100, 90000)
            peak = max(peak, count)
            at = T0 + timedelta(seconds=11 * n)
            story.append([MatchAudienceChanged(match_id=match, count=count, peak=peak, occurred_at=at)])
        return story

    def chat(self, stream: str) -> Story:
        story = [
            self.decided(self.request(stream, ModerationAction.SLOW_MODE), ChatSettingsChanged, slow_mode_s=5)
        ]
        for n in range(self.rng.randrange(8, 20)):
            user = f"viewer-{self.rng.randrange(6)}"
            message = ChatMessageAccepted(
                message_id=f"{stream}-msg-{n}",
                stream_id=stream,
                user_id=user,
                display_name=user.title(),
                text=f"gg {n}",
                occurred_at=T0 + timedelta(seconds=10 * n),
            )
            story += [[message], *self.moderation(message)]
        if self.rng.random() < 0.3:
            cleared_before = T0 + timedelta(seconds=45)
            story.append(
                self.decided(
                    self.request(stream, ModerationAction.CLEAR), ChatCleared, cleared_before=cleared_before
                )
            )
        return story + self.held(stream)

    def moderation(self, message: ChatMessageAccepted) -> Story:
        stream, user, roll = message.stream_id, message.user_id, self.rng.random()
        if roll < 0.1:
            delete = self.request(stream, ModerationAction.DELETE, message=message.message_id)
            story = [
                self.decided(delete, ChatMessageDeleted, message_id=message.message_id, deleted_by="mod")
            ]
            if self.rng.random() < 0.5:
                undelete = self.request(stream, ModerationAction.UNDELETE, message=message.message_id)
                restored = {"sent_at": message.occurred_at, "restored_by": "mod"}
                story.append(
                    self.decided(undelete, ChatMessageRestored, **_message_fields(message), **restored)
                )
            return story
        if roll < 0.16:
            story = [
                self.decided(self.request(stream, ModerationAction.BAN, user=user), UserBanned, user_id=user)
            ]
            if self.rng.random() < 0.6:
                unban = self.request(stream, ModerationAction.UNBAN, user=user)
                story.append(self.decided(unban, UserUnbanned, user_id=user))
            return story
        if roll < 0.2:
            timeout = self.request(stream, ModerationAction.TIMEOUT, user=user)
            until = timeout.occurred_at + timedelta(seconds=60)
            return [self.decided(timeout, UserTimedOut, user_id=user, duration_s=60, until=until)]
        return []

    def held(self, stream: str) -> Story:
        """A message the rules held for review, then a moderator's approval or denial of it."""
        held = ChatMessageHeld(
            message_id=f"{stream}-held",
            stream_id=stream,
            user_id="newcomer",
            display_name="Newcomer",
            text="free skins at example.test",
            score=0.8,
            reasons=("link",),
            occurred_at=T0 + timedelta(minutes=5),
        )
        if self.rng.random() < 0.5:
            approve = self.request(stream, ModerationAction.APPROVE, message=held.message_id)
            return [
                [held],
                self.decided(approve, ChatMessageAccepted, **_message_fields(held), approved_by="mod"),
            ]
        deny = self.request(stream, ModerationAction.DENY, message=held.message_id)
        denied = {"reason": RejectionReason.DENIED, "detail": "scam", "denied_by": "mod"}
        fields = {"message_id": held.message_id, "user_id": held.user_id, **denied}
        return [[held], self.decided(deny, ChatMessageRejected, **fields)]

    def request(
        self, stream: str, action: ModerationAction, *, user: str | None = None, message: str | None = None
    ) -> ModerationActionRequested:
        self.requests += 1
        return ModerationActionRequested(
            stream_id=stream,
            action=action,
            actor_id="mod",
            target_user_id=user,
            target_message_id=message,
            reason=f"rule {self.requests % 50}",
            duration_s=60 if action is ModerationAction.TIMEOUT else None,
            occurred_at=T0 + timedelta(minutes=self.requests % 50, seconds=1),
        )

    def decided(self, request: ModerationActionRequested, kind: type[Event], **fields: Any) -> Step:
        """The request and the moderation agent's decision on it (its envelope, id included, derived
        from the request as the agent derives it), published back to back as the agent answers."""
        values: dict[str, Any] = {**head(request, kind), "stream_id": request.stream_id, **fields}
        if "actor_id" in {f.name for f in dataclasses.fields(kind)}:
            values["actor_id"] = request.actor_id
        return [request, kind(**values)]

    def poll(self, stream: str) -> Story:
        """A poll opened with the agent's all-zero tally right after it, running tallies, then closed
        with the final tally stamped with the close's time (as the poll agent does)."""
        poll, counts = f"poll-{stream}", [0, 0, 0]
        opened_at, closed_at = T0 + timedelta(minutes=2), T0 + timedelta(minutes=4)

        def tally(**final: Any) -> PollTallyUpdated:
            return PollTallyUpdated(
                poll_id=poll, stream_id=stream, counts=tuple(counts), total=sum(counts), **final
            )

        opened = PollOpened(
            poll_id=poll,
            stream_id=stream,
            question="Who wins?",
            options=("T1", "G2", "Draw"),
            opened_by="mod",
            occurred_at=opened_at,
        )
        story: Story = [[opened, tally()]]
        for _ in range(self.rng.randrange(1, 4)):
            counts[self.rng.randrange(3)] += self.rng.randrange(1, 30)
            story.append([tally()])
        closed = PollClosed(poll_id=poll, stream_id=stream, closed_by="mod", occurred_at=closed_at)
        return [*story, [closed, tally(final=True, occurred_at=closed_at)]]

    def prediction(self, stream: str) -> Story:
        """A prediction on the stream: opened, stakes by two viewers granted points first, the odds,
        resolved and settled (the ledger worker's and prediction worker's events, in their order)."""
        prediction, users = f"pred-{stream}", [f"viewer-{stream}-{n}" for n in range(2)]
        opened = PredictionOpened(
            prediction_id=prediction,
            stream_id=stream,
            channel_id="c",
            title="Map 3?",
            outcomes=("T1", "G2"),
            locks_at=T0 + timedelta(minutes=10),
            opened_by="mod",
            occurred_at=T0 + timedelta(minutes=1),
        )
        grants = [
            PointsGranted(user_id=u, amount=100, reason="watch", grant_id=f"g-{u}", balance=100)
            for u in users
        ]
        stakes = [
            PointsStaked(
                user_id=u, prediction_id=prediction, stream_id=stream, outcome=n, amount=40, balance=60
            )
            for n, u in enumerate(users)
        ]

        def odds(status: str, **more: Any) -> PredictionUpdated:
            return PredictionUpdated(
                prediction_id=prediction,
                stream_id=stream,
                status=status,
                pools=(40, 40),
                stakers=(1, 1),
                **more,
            )

        resolved = PredictionResolved(
            prediction_id=prediction, stream_id=stream, outcome=0, resolved_by="mod"
        )
        settled = [
            StakeSettled(
                user_id=u,
                prediction_id=prediction,
                stream_id=stream,
                staked=40,
                payout=80 - 80 * n,
                balance=140 - 80 * n,
            )
            for n, u in enumerate(users)
        ]
        return [
            [opened],
            grants,
            stakes,
            [odds("open")],
            [resolved],
            settled,
            [odds("resolved", winning_outcome=0, settled=True)],
        ]

    def sessions(self, stream: str) -> Story:
        """Viewing sessions of the stream: two ended, one still open."""
        story: Story = []
        for n in range(3):
            start = T0 + timedelta(minutes=n)
            started = ViewingSessionStarted(
                session_id=f"sess-{stream}-{n}",
                stream_id=stream,
                started_at=start,
                edge_id="e",
                user_id=f"u{n}",
            )
            story.append([started])
            if n < 2:
                end = start + timedelta(minutes=5)
                story.append(
                    [
                        ViewingSessionEnded(
                            session_id=started.session_id,
                            stream_id=stream,
                            started_at=start,
                            ended_at=end,
                            watch_ms=300_000,
                            edge_id="e",
                            user_id=f"u{n}",
                        )
                    ]
                )
        return story

    def inbox(self, user: str) -> Story:
        """Notifications issued to ``user``, who reads the first one or marks all as read."""
        issued = [
            NotificationIssued(
                notification_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{user}:{n}")),
                user_id=user,
                kind=NotificationKind.STREAM_LIVE,
                causation_id=f"cause-{user}-{n}",
                title=f"live {n}",
                occurred_at=T0 + timedelta(minutes=n),
            )
            for n in range(self.rng.randrange(1, 4))
        ]
        if self.rng.random() < 0.5:
            read = NotificationsRead(user_id=user, notification_ids=(issued[0].notification_id,))
        else:
            read = NotificationsRead(user_id=user, all_before=T0 + timedelta(minutes=1))
        story: Story = [[issued[0]], [read]]
        return story + [[n] for n in issued[1:]]


def _message_fields(message: ChatMessageAccepted | ChatMessageHeld) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "user_id": message.user_id,
        "display_name": message.display_name,
        "text": message.text,
    }


def session(seed: int = 14) -> list[Event]:
    """The catalogue's stories (already interleaved: one story here) and the live session's,
    interleaved at random, each story in its order and each step back to back."""
    catalog = mixed_events(CATALOG_EVENTS, seed)
    rng = random.Random(seed)
    pending = [[[event] for event in catalog], *LiveSession(catalog, seed).stories()]
    events: list[Event] = []
    while pending:
        story = rng.choices(pending, [len(s) for s in pending])[0]  # long stories spread out
        events += story.pop(0)
        if not story:
            pending.remove(story)
    return events


# --- the processes and their consumer groups -------------------------------------------------------


@dataclass
class Projector:
    """One projector service process, told apart by the client id its consumers carry."""

    client_id: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_projector(settings: Settings, schema: str, prefix: str, client_id: str, log_dir: Path) -> Projector:
    """``python -m projections``: the service with its own schema and Redis prefix (``esports
    projector`` takes neither and would write into the shared ``public`` schema and no prefix)."""
    port = free_port()
    env = {
        **os.environ,
        "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "ESPORTS_KAFKA__CLIENT_ID": client_id,
        "ESPORTS_PROJECTIONS__WEB_PORT": str(port),
        "ESPORTS_PROJECTIONS__BATCH_SIZE": BATCH_SIZE,
    }
    log_path = log_dir / f"{client_id}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "projections", "--schema", schema, "--redis-prefix", prefix],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Projector(client_id, port, process, log_path)


class DescribeGroupsUpToV2(DescribeGroupsRequest):
    """DescribeGroups at version 2 at most: aiokafka 0.14 decodes a v3 answer with the v2 schema
    (``DescribeGroupsRequest_v3.RESPONSE_TYPE = DescribeGroupsResponse_v2``, which lacks
    ``authorized_operations``), so ``describe_consumer_groups`` fails with "Buffer underrun decoding
    string" against any broker that speaks v3."""

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        low, high = versions[self.API_KEY]
        return super().prepare({**versions, self.API_KEY: (low, min(high, 2))})


class Groups:
    """The consumer groups of every registered projector, as the group coordinator describes them
    (the service's /health and /metrics do not say which partitions a process holds)."""

    def __init__(self, settings: Settings, stores: Sequence[BatchStore]) -> None:
        names, default = TopicNames(settings.kafka.topic_prefix), settings.kafka.default_partitions
        self.partitions = {
            group_id(settings.kafka, store.name): {
                (names.physical(topic), p)
                for topic in store.topics
                for p in range(spec(topic).partitions or default)
            }
            for store in stores
        }
        self._admin = AIOKafkaAdminClient(**client_options(settings.kafka, "tests-groups"))

    @asynccontextmanager
    async def open(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Groups]:
        monkeypatch.setattr(aiokafka.admin.client, "DescribeGroupsRequest", DescribeGroupsUpToV2)
        await self._admin.start()
        try:
            yield self
        finally:
            await self._admin.close()

    async def assignments(self) -> dict[str, Assignment]:
        """Each stable group's members' partitions, by process (a rebalancing group: none)."""
        found: dict[str, Assignment] = {}
        for response in await self._admin.describe_consumer_groups(sorted(self.partitions)):
            for group in response.to_object()["groups"]:
                members: Assignment = {}
                for member in group["members"] if group["state"] == "Stable" else ():
                    assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
                    owner = member["client_id"].split("-", 1)[0]  # "<client id>-<group id>"
                    members.setdefault(owner, set()).update(assignment.partitions())
                found[group["group"]] = members
        return found

    async def split_between(self, owners: set[str], timeout_s: float) -> dict[str, Assignment]:
        """Wait until every group has exactly ``owners`` as members, each holding partitions and
        together all of them, none twice; returns the assignments."""
        deadline = time.monotonic() + timeout_s
        while True:
            assignments = await self.assignments()
            if all(self._split(group, assignments.get(group, {}), owners) for group in self.partitions):
                return assignments
            assert time.monotonic() < deadline, f"groups not split between {owners}: {assignments}"
            await asyncio.sleep(0.25)

    def _split(self, group: str, members: Assignment, owners: set[str]) -> bool:
        held = list(members.values())
        return (
            set(members) == owners
            and all(held)  # each process holds some
            and sum(map(len, held)) == len(self.partitions[group])  # none twice
            and set().union(*held) == self.partitions[group]  # together all of them
        )


APPLIED = re.compile(r'^esports_projection_events_applied_total\{projector="([^"]+)"\} (\S+)$', re.M)


async def applied_by(projector: Projector) -> dict[str, int]:
    """Events each projector of the process applied so far (its /metrics)."""
    status, body = await http_get(projector.port, "/metrics")
    assert status == 200, body
    return {name: int(float(count)) for name, count in APPLIED.findall(body)}  # 12.0, 1.2e+06


async def every_projector_applied(projectors: Sequence[Projector]) -> bool:
    counts = [await applied_by(p) for p in projectors]
    return all(len(c) == len(counts[0]) > 0 and min(c.values()) > 0 for c in counts)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def stored_offsets(pool: AsyncConnectionPool) -> int:
    """Events the PostgreSQL projectors have committed, all together (the topics start at 0)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT coalesce(sum(next_offset), 0) FROM projection_offsets")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def publish_live(publisher: EventPublisher, events: Sequence[Event], chunk: int = 60) -> list[Position]:
    """Publish part of the session a chunk at a time, as it happens, while the projectors apply it."""
    positions: list[Position] = []
    for start in range(0, len(events), chunk):
        positions += await publisher.publish_many(events[start : start + chunk])
        await asyncio.sleep(0.03)
    return positions


def stop(projectors: Sequence[Projector]) -> None:
    """SIGTERM: each must still be running, and stop cleanly (exit 0: no projector failed)."""
    for projector in projectors:
        assert projector.process.poll() is None, projector.log_tail()
        projector.process.send_signal(signal.SIGTERM)
    for projector in projectors:
        assert projector.process.wait(30) == 0, projector.log_tail()


# --- the comparison --------------------------------------------------------------------------------


async def dumps(pool: AsyncConnectionPool, schema: str, client: RedisClient, prefix: str) -> tuple[Any, Any]:
    # Every table and view of the schema; dump_tables leaves out schema_migrations (its applied_at is
    # the wall clock). No other column comes from a clock: every time is an event's.
    return await dump_tables(pool, schema), await dump_keys(client, prefix)


def differences(scaled: dict[str, Any], replay: dict[str, Any]) -> list[str]:
    """Tables (or keys) that differ, each with how many rows only one side has and the first of them.
    Rows are compared sorted: dump_tables orders by the first three columns, not unique in views
    such as poll_results."""
    lines = []
    for name in sorted(set(scaled) | set(replay)):
        ours, theirs = scaled.get(name), replay.get(name)
        if isinstance(ours, list) and isinstance(theirs, list):
            ours, theirs = sorted(ours, key=repr), sorted(theirs, key=repr)
            if ours != theirs:
                only_ours, only_theirs = (
                    [r for r in ours if r not in theirs],
                    [r for r in theirs if r not in ours],
                )
                lines.append(
                    f"{name}: {len(only_ours)} rows only scaled out, first {only_ours[:1]!r:.400};"
                    f" {len(only_theirs)} only in the replay, first {only_theirs[:1]!r:.400}"
                )
        elif ours != theirs:
            lines.append(f"{name}: scaled out {ours!r:.300}; replay {theirs!r:.300}")
    return lines


def _sizes(assignments: dict[str, Assignment]) -> str:
    """Partitions held per process over all the groups, e.g. ``scalea=31 scaleb=26``."""
    totals: dict[str, int] = {}
    for members in assignments.values():
        for owner, partitions in members.items():
            totals[owner] = totals.get(owner, 0) + len(partitions)
    return " ".join(f"{owner}={count}" for owner, count in sorted(totals.items()))


def _assert_the_session_reached_every_read_model(replay: tuple[dict[str, Any], dict[str, Any]]) -> None:
    tables, keys = replay
    for table in ("streams", "matches", "chat_messages", "moderation_log", "polls", "notifications"):
        assert len(tables[table]) >= 20, table
    for table in ("predictions", "points_ledger", "viewing_sessions"):
        assert len(tables[table]) >= 20, table
    assert len(tables["viewer_counts"]) >= 100 and len(tables["match_viewer_counts"]) >= 50
    for family in (
        "{redis.live}stream:",
        "{redis.chat}chat:recent:",
        "{redis.match_viewers}",
        "{redis.ingest}ingest:",
    ):
        assert sum(key.startswith(family) for key in keys) >= 10, family


# --- the test --------------------------------------------------------------------------------------


async def test_two_projector_processes_split_partitions_and_equal_a_replay(
    namespace: Settings, codec: EventCodec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    events = session()
    first, second = (int(len(events) * part) for part in PARTS)
    schema, replay_schema = unique_schema(), unique_schema()
    running: list[Projector] = []
    async with (
        EventPublisher(namespace.kafka, codec, producer="tests.scale_out") as publisher,
        read_model(namespace, schema) as pool,
        redis_space(namespace) as (client, prefix),
    ):
        groups = Groups(namespace, build_stores(pool, client, schema=schema, redis_prefix=prefix))
        try:
            async with groups.open(monkeypatch):
                a = start_projector(namespace, schema, prefix, "scalea", tmp_path)
                b = start_projector(namespace, schema, prefix, "scaleb", tmp_path)
                running += [a, b]
                split = await groups.split_between({"scalea", "scaleb"}, 60)
                positions = await publish_live(publisher, events[:first])
                await eventually(
                    lambda: every_projector_applied([a, b]), 30, "both to apply for every projector"
                )

                second_part = asyncio.create_task(publish_live(publisher, events[first:second]))
                before = await stored_offsets(pool)
                await eventually(lambda: _beyond(pool, before + 100), 30, "the second part to be applied")
                a.process.send_signal(signal.SIGKILL)  # mid-stream: the second part is still published
                killed_at = await stored_offsets(pool)
                assert a.process.wait(10) == -signal.SIGKILL
                running.remove(a)
                survivor = await groups.split_between({"scaleb"}, 40)  # after the dead one's session timeout
                positions += await second_part

                a = start_projector(namespace, schema, prefix, "scalea", tmp_path)
                running.append(a)
                split_again = await groups.split_between({"scalea", "scaleb"}, 40)
                positions += await publish_live(publisher, events[second:])
                await wait_applied(
                    pool, client, schema=schema, prefix=prefix, positions=positions, timeout_s=60
                )
                assert await every_projector_applied([a]), "the restarted process applies for every projector"
            stop(running)
            running.clear()
        finally:
            for projector in running:
                projector.process.kill()
                projector.process.wait(10)
        scaled = await dumps(pool, schema, client, prefix)
        scaled_at = time.monotonic()

        async with (
            read_model(namespace, replay_schema) as replay_pool,
            redis_space(namespace) as (replay_client, replay_prefix),
            running_service(namespace, replay_schema, replay_prefix),
        ):
            await wait_applied(
                replay_pool, replay_client, schema=replay_schema, prefix=replay_prefix, positions=positions
            )
            replay = await dumps(replay_pool, replay_schema, replay_client, replay_prefix)

    print(
        f"\n{len(events)} events; partitions held: {_sizes(split)}, after the kill {_sizes(survivor)}"
        f" (killed at {killed_at} PostgreSQL store-events), after the restart {_sizes(split_again)};"
        f" scaled out in {scaled_at - started:.1f}s, replayed in {time.monotonic() - scaled_at:.1f}s"
    )
    problems = differences(scaled[0], replay[0]) + differences(scaled[1], replay[1])
    assert not problems, "the scaled-out read models differ from a replay:\n" + "\n".join(problems)
    _assert_the_session_reached_every_read_model(replay)


async def _beyond(pool: AsyncConnectionPool, count: int) -> bool:
    return await stored_offsets(pool) >= count
