"""Exactly-once under a crash: ``kill -9`` the projector service while it applies a mixed stream of
~2,000 events, restart it, and compare every table and Redis key with a clean replay into a fresh
schema and prefix: they must be equal row by row."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.channels import ChannelCreated, ChannelStreamKeyRotated, ChannelUpdated
from events.codec import EventCodec
from events.streams import (
    StreamCreated,
    StreamEnded,
    StreamEndReason,
    StreamEndRequested,
    StreamRole,
    StreamScheduled,
    StreamTransitionRejected,
    StreamUpdated,
    StreamWentLive,
)
from events.tournaments import (
    MatchEnded,
    MatchScheduled,
    MatchScoreUpdated,
    MatchStarted,
    TeamScore,
    TournamentCreated,
)
from events.users import (
    ChannelFollowed,
    ChannelUnfollowed,
    ModeratorAppointed,
    ModeratorRemoved,
    TournamentFollowed,
    TournamentUnfollowed,
    UserRegistered,
    UserRole,
    UserRoleChanged,
)
from infra.kafka import EventPublisher
from infra.settings import REPO_ROOT, Settings
from projections.catalog import NAME as CATALOG
from tests.integration.projections_support import (
    caught_up,
    dump_redis,
    dump_tables,
    read_model,
    redis_space,
    running_service,
    unique_schema,
)
from tests.integration.test_projections_catalog import http_get
from tests.ports import free_port
from tests.unit.event_samples import SAMPLE_TIME

pytestmark = pytest.mark.integration

EVENTS = 2000
KILL_AFTER = 300  # events applied by the first process before it is killed
T0 = SAMPLE_TIME
Story = list[Event]


class World:
    """Generates causally ordered stories (one per entity) over shared ids, deterministically."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.users: list[str] = []
        self.channels: list[str] = []
        self.tournaments: list[str] = []
        self.matches_without_main: list[str] = []
        self.serial = 0

    def new_id(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"

    def at(self, minutes: int) -> timedelta:
        return timedelta(minutes=minutes + self.rng.randrange(60))

    def user(self) -> Story:
        user = self.new_id("u")
        self.users.append(user)
        story: Story = [UserRegistered(user_id=user, username=f"name-{user}", display_name=user.upper())]
        if self.rng.random() < 0.3:
            story.append(
                UserRoleChanged(
                    user_id=user, role=UserRole.STREAMER, previous_role=UserRole.VIEWER, changed_by="a"
                )
            )
        for channel in self.rng.sample(self.channels, min(3, len(self.channels))):
            story.append(ChannelFollowed(user_id=user, channel_id=channel))
            if self.rng.random() < 0.3:
                story.append(ChannelUnfollowed(user_id=user, channel_id=channel))
            if self.rng.random() < 0.2:
                story.append(ModeratorAppointed(user_id=user, channel_id=channel, appointed_by="owner"))
                if self.rng.random() < 0.5:
                    story.append(ModeratorRemoved(user_id=user, channel_id=channel, removed_by="owner"))
        for tournament in self.rng.sample(self.tournaments, min(2, len(self.tournaments))):
            story.append(TournamentFollowed(user_id=user, tournament_id=tournament))
            if self.rng.random() < 0.3:
                story.append(TournamentUnfollowed(user_id=user, tournament_id=tournament))
        return story

    def channel(self) -> Story:
        channel = self.new_id("c")
        self.channels.append(channel)
        story: Story = [
            ChannelCreated(channel_id=channel, owner_id="owner", slug=f"slug-{channel}", display_name=channel)
        ]
        for n in range(self.rng.randrange(3)):
            story.append(ChannelUpdated(channel_id=channel, updated_by="owner", description=f"take {n}"))
        if self.rng.random() < 0.5:
            story.append(
                ChannelStreamKeyRotated(channel_id=channel, key_id=f"key-{channel}", rotated_by="owner")
            )
        return story

    def tournament(self) -> Story:
        tournament = self.new_id("t")
        self.tournaments.append(tournament)
        story: Story = [
            TournamentCreated(
                tournament_id=tournament, name=tournament, game="lol", organizer_id="o", starts_at=T0
            )
        ]
        for _ in range(self.rng.randrange(1, 4)):
            story.extend(self.match(tournament))
        return story

    def match(self, tournament: str) -> Story:
        match = self.new_id("m")
        named = self.new_id("s-named") if self.rng.random() < 0.3 else None
        if named is None:
            self.matches_without_main.append(match)
        story: Story = [
            MatchScheduled(
                tournament_id=tournament,
                match_id=match,
                teams=("A", "B"),
                scheduled_start=T0,
                stream_id=named,
            )
        ]
        if self.rng.random() < 0.7:
            story.append(MatchStarted(tournament_id=tournament, match_id=match, started_at=T0 + self.at(0)))
            for a in range(self.rng.randrange(4)):
                scores = (TeamScore(team="A", score=a), TeamScore(team="B", score=1))
                story.append(MatchScoreUpdated(tournament_id=tournament, match_id=match, scores=scores))
            if self.rng.random() < 0.6:
                story.append(
                    MatchEnded(
                        tournament_id=tournament, match_id=match, ended_at=T0 + self.at(90), winner="A"
                    )
                )
        return story

    def stream(self) -> Story:
        stream, channel = self.new_id("s"), self.rng.choice(self.channels)
        match = (
            self.matches_without_main.pop() if self.matches_without_main and self.rng.random() < 0.5 else None
        )
        story: Story = [
            StreamCreated(
                stream_id=stream,
                channel_id=channel,
                owner_id="owner",
                title=stream,
                match_id=match,
                role=StreamRole.MAIN,
            )
        ]
        if self.rng.random() < 0.4:
            story.append(
                StreamUpdated(stream_id=stream, updated_by="owner", title=f"{stream} (2)", tags=("x",))
            )
        if self.rng.random() < 0.4:
            story.append(
                StreamScheduled(stream_id=stream, channel_id=channel, scheduled_start=T0 + self.at(0))
            )
        if self.rng.random() < 0.8:
            story.extend(self.lifecycle(stream, channel))
        return story

    def lifecycle(self, stream: str, channel: str) -> Story:
        live = StreamWentLive(
            stream_id=stream, channel_id=channel, started_at=T0 + self.at(10), causation_id="i"
        )
        story: Story = [live]
        if self.rng.random() < 0.3:
            story.append(live)  # a redelivered decision: same event id, new offset
        if self.rng.random() < 0.6:
            story.append(StreamEndRequested(stream_id=stream, channel_id=channel, requested_by="owner"))
            ended = StreamEnded(
                stream_id=stream,
                channel_id=channel,
                ended_at=T0 + self.at(200),
                reason=StreamEndReason.ENDED_BY_OWNER,
            )
            story.append(ended)
            if self.rng.random() < 0.3:
                story.extend([live, ended])  # the whole decision history again, after the end
            story.append(
                StreamTransitionRejected(
                    stream_id=stream,
                    channel_id=channel,
                    attempted="end",
                    current_state="ended",
                    reason="r",
                    causation_id="c",
                )
            )
        return story


def mixed_events(count: int, seed: int = 3) -> list[Event]:
    """About ``count`` events of every catalog family, stories interleaved at random."""
    world = World(seed)
    makers: list[Callable[[], Story]] = [
        world.channel,
        world.tournament,
        world.user,
        world.stream,
        world.stream,
    ]
    stories = [world.channel(), world.tournament()]
    while sum(map(len, stories)) < count:
        stories.append(world.rng.choice(makers)())
    return list(_interleave(world.rng, stories))


def _interleave(rng: random.Random, stories: list[Story]) -> Iterator[Event]:
    pending = [list(story) for story in stories]
    while pending:
        story = rng.choice(pending)
        yield story.pop(0)
        if not story:
            pending.remove(story)


def service_process(
    settings: Settings, schema: str, prefix: str, port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "ESPORTS_PROJECTIONS__WEB_PORT": str(port),
        "ESPORTS_PROJECTIONS__BATCH_SIZE": "50",  # many small transactions: the kill lands mid-stream
    }
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "projections", "--schema", schema, "--redis-prefix", prefix],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


async def applied(pool: AsyncConnectionPool) -> int:
    """Events the catalog projector has committed (the topics are new: offsets start at 0)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM projection_offsets WHERE projector = %s", (CATALOG,)
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def test_kill_9_mid_stream_then_restart_equals_a_clean_replay(
    namespace: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    events = mixed_events(EVENTS)
    schema, clean_schema = unique_schema(), unique_schema()
    log_path = tmp_path / "service.log"
    async with (
        EventPublisher(namespace.kafka, codec, producer="tests") as publisher,
        read_model(namespace, schema) as pool,
        redis_space(namespace) as (client, prefix),
    ):
        positions = await publisher.publish_many(events[: len(events) // 2])
        first = service_process(namespace, schema, prefix, free_port(), log_path)
        rest = asyncio.create_task(publisher.publish_many(events[len(events) // 2 :]))
        await wait_until(lambda: _at_least(pool, KILL_AFTER), 60, "the first process to apply events")
        first.send_signal(signal.SIGKILL)
        killed_at = await applied(pool)
        assert first.wait(10) == -signal.SIGKILL
        positions += await rest
        assert 0 < killed_at < len(events), killed_at

        port = free_port()
        second = service_process(namespace, schema, prefix, port, log_path)
        try:
            started = time.monotonic()
            await caught_up(pool, schema, client, prefix, positions, timeout_s=90)
            print(
                f"\nkilled after {killed_at} of {len(events)} events; the restart applied the rest"
                f" in {time.monotonic() - started:.1f}s (10 s of it: the dead member's session timeout)"
            )
            status, body = await http_get(port, "/health")
            assert status == 200, body
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, log_path.read_text()[-3000:]
        after_crash = await dump_tables(pool, schema), await dump_redis(client, prefix)

        async with (
            read_model(namespace, clean_schema) as clean_pool,
            redis_space(namespace) as (clean_client, clean_prefix),
            running_service(namespace, clean_schema, clean_prefix),
        ):
            started = time.monotonic()
            await caught_up(clean_pool, clean_schema, clean_client, clean_prefix, positions, timeout_s=90)
            elapsed = time.monotonic() - started
            print(f"clean replay: {len(events)} events in {elapsed:.2f}s ({len(events) / elapsed:.0f}/s)")
            clean = await dump_tables(clean_pool, clean_schema), await dump_redis(clean_client, clean_prefix)

    assert set(after_crash[0]) == set(clean[0])
    for table, rows in clean[0].items():
        assert after_crash[0][table] == rows, table
    assert sum(map(len, clean[0].values())) > 500
    assert after_crash[1] == clean[1]
    assert len(clean[1]) > 100


async def _at_least(pool: AsyncConnectionPool, count: int) -> bool:
    return await applied(pool) >= count
