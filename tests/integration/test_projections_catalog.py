"""The projectors against the real Kafka, PostgreSQL and Redis: every event family lands in the
expected rows and keys, duplicates change nothing, and read-your-writes positions work."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

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
    ModeratorAppointed,
    ModeratorRemoved,
    TournamentFollowed,
    TournamentUnfollowed,
    UserRegistered,
    UserRole,
    UserRoleChanged,
)
from infra.kafka import EventPublisher, Position
from infra.redis import RedisClient
from infra.settings import Settings
from projections.catalog import NAME as CATALOG
from projections.live import LiveKeys
from projections.positions import position_reached, wait_for_position
from tests.integration.projections_support import (
    caught_up,
    dump_redis,
    dump_tables,
    read_model,
    redis_space,
    running_service,
    unique_schema,
)
from tests.unit.event_samples import SAMPLE_TIME

pytestmark = pytest.mark.integration

T0 = SAMPLE_TIME


class Platform:
    """One isolated platform: topics (namespace), read-model schema, Redis prefix, running service."""

    def __init__(
        self,
        publisher: EventPublisher,
        pool: AsyncConnectionPool,
        schema: str,
        client: RedisClient,
        prefix: str,
    ) -> None:
        self.publisher, self.pool, self.schema, self.redis, self.prefix = (
            publisher,
            pool,
            schema,
            client,
            prefix,
        )
        self.port = 0  # of the service's /health and /metrics

    async def publish(self, *events: Event) -> list[Position]:
        """Publish and wait until both projectors applied everything."""
        positions = await self.publisher.publish_many(events)
        await caught_up(self.pool, self.schema, self.redis, self.prefix, positions)
        return positions

    async def rows(self, query: str, *params: object) -> list[tuple[object, ...]]:
        async with self.pool.connection() as conn:
            return await (await conn.execute(query, params)).fetchall()

    async def row(self, query: str, *params: object) -> tuple[object, ...]:
        (found,) = await self.rows(query, *params)
        return found


@pytest.fixture
async def platform(namespace: Settings, codec: EventCodec) -> AsyncIterator[Platform]:
    schema = unique_schema()
    async with (
        read_model(namespace, schema) as pool,
        redis_space(namespace) as (client, prefix),
        EventPublisher(namespace.kafka, codec, producer="tests") as publisher,
        running_service(namespace, schema, prefix) as port,
    ):
        platform = Platform(publisher, pool, schema, client, prefix)
        platform.port = port
        yield platform


def ids(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


async def test_users_roles_follows_and_moderators(platform: Platform) -> None:
    alice, bob, carol, channel, tournament = ids("u"), ids("u"), ids("u"), ids("c"), ids("t")
    await platform.publish(
        UserRegistered(user_id=alice, username=f"alice-{alice}", display_name="Alice", role=UserRole.VIEWER),
        UserRegistered(user_id=bob, username=f"bob-{bob}", display_name="Bob"),
        UserRoleChanged(
            user_id=alice, role=UserRole.STREAMER, previous_role=UserRole.VIEWER, changed_by="admin"
        ),
        ChannelFollowed(user_id=bob, channel_id=channel),
        ChannelFollowed(user_id=bob, channel_id=channel),  # twice: one row
        TournamentFollowed(user_id=bob, tournament_id=tournament),
        TournamentFollowed(user_id=alice, tournament_id=tournament),
        TournamentUnfollowed(user_id=alice, tournament_id=tournament),
        ModeratorAppointed(user_id=bob, channel_id=channel, appointed_by=alice),
        ModeratorAppointed(user_id=carol, channel_id=channel, appointed_by=alice),
        ModeratorRemoved(user_id=carol, channel_id=channel, removed_by=alice),
    )
    assert await platform.row("SELECT username, display_name, role FROM users WHERE user_id = %s", alice) == (
        f"alice-{alice}",
        "Alice",
        "streamer",
    )
    assert await platform.row("SELECT role FROM users WHERE user_id = %s", bob) == ("viewer",)
    assert await platform.rows("SELECT user_id FROM channel_follows WHERE channel_id = %s", channel) == [
        (bob,)
    ]
    assert await platform.rows(
        "SELECT user_id FROM tournament_follows WHERE tournament_id = %s", tournament
    ) == [(bob,)]
    assert await platform.rows(
        "SELECT user_id, appointed_by FROM channel_moderators WHERE channel_id = %s", channel
    ) == [(bob, alice)]


async def test_channels_profile_and_stream_key_id(platform: Platform) -> None:
    channel, owner = ids("c"), ids("u")
    created = ChannelCreated(channel_id=channel, owner_id=owner, slug=f"slug-{channel}", display_name="LEC")
    updated = ChannelUpdated(channel_id=channel, updated_by=owner, description="EMEA league", language=None)
    standard = ChannelUpdated(channel_id=channel, updated_by=owner, low_latency=False)
    rotated = ChannelStreamKeyRotated(channel_id=channel, key_id="key-2", rotated_by=owner)
    await platform.publish(created, updated, standard, rotated)
    assert await platform.row(
        "SELECT owner_id, slug, display_name, description, language, low_latency, stream_key_id,"
        " created_at, updated_at FROM channels WHERE channel_id = %s",
        channel,
    ) == (
        owner,
        f"slug-{channel}",
        "LEC",
        "EMEA league",
        "en",
        False,
        "key-2",
        created.occurred_at,
        rotated.occurred_at,
    )


async def test_streams_metadata_and_lifecycle_into_postgres_and_redis(platform: Platform) -> None:
    channel, owner, live_id, ended_id, match = ids("c"), ids("u"), ids("s"), ids("s"), ids("m")
    await platform.publish(
        StreamCreated(stream_id=live_id, channel_id=channel, owner_id=owner, title="Day 1", tags=("lec",)),
        StreamUpdated(stream_id=live_id, updated_by=owner, title="Day 1: finals", match_id=match),
        StreamScheduled(stream_id=live_id, channel_id=channel, scheduled_start=T0),
        StreamWentLive(stream_id=live_id, channel_id=channel, started_at=T0 + timedelta(minutes=1)),
        StreamEndRequested(stream_id=live_id, channel_id=channel, requested_by=owner),
        StreamTransitionRejected(
            stream_id=live_id, attempted="go_live", current_state="live", reason="already", causation_id="x"
        ),
        StreamCreated(stream_id=ended_id, channel_id=channel, owner_id=owner, title="Warm-up", game="lol"),
        StreamWentLive(stream_id=ended_id, channel_id=channel, started_at=T0),
        StreamEnded(
            stream_id=ended_id,
            channel_id=channel,
            ended_at=T0 + timedelta(hours=1),
            reason=StreamEndReason.ENDED_BY_OWNER,
        ),
    )
    rows = await platform.rows(
        "SELECT stream_id, title, tags, match_id, state, scheduled_start, started_at, ended_at, end_reason"
        " FROM streams WHERE channel_id = %s ORDER BY title",
        channel,
    )
    assert rows == [
        (live_id, "Day 1: finals", ["lec"], match, "live", T0, T0 + timedelta(minutes=1), None, None),
        (ended_id, "Warm-up", [], None, "ended", None, T0, T0 + timedelta(hours=1), "ended_by_owner"),
    ]
    keys = LiveKeys(platform.prefix)
    assert await platform.redis.zrange(keys.live, 0, -1, withscores=True) == [(live_id, 0.0)]
    assert await platform.redis.hgetall(keys.stream(live_id)) == {
        "state": "live",
        "title": "Day 1: finals",
        "game": "",
        "channel_id": channel,
        "started_at": "2025-06-01T18:31:15.123+00:00",
        "viewers": "0",
    }
    assert (await platform.redis.hgetall(keys.stream(ended_id)))["state"] == "ended"


async def test_a_decision_applied_before_its_stream_converges(platform: Platform) -> None:
    channel, stream = ids("c"), ids("s")
    await platform.publish(StreamWentLive(stream_id=stream, channel_id=channel, started_at=T0))
    assert await platform.row("SELECT state, created_at FROM streams WHERE stream_id = %s", stream) == (
        "live",
        None,
    )
    created = StreamCreated(stream_id=stream, channel_id=channel, owner_id="o", title="late metadata")
    await platform.publish(created)
    assert await platform.row(
        "SELECT state, title, owner_id, created_at, updated_at FROM streams WHERE stream_id = %s", stream
    ) == ("live", "late metadata", "o", created.occurred_at, created.occurred_at)
    stream_hash = await platform.redis.hgetall(LiveKeys(platform.prefix).stream(stream))
    assert (stream_hash["state"], stream_hash["title"]) == ("live", "late metadata")


async def test_tournaments_matches_scores_and_main_stream(platform: Platform) -> None:
    tournament, match, other, stream = ids("t"), ids("m"), ids("m"), ids("s")
    scores = (TeamScore(team="G2", score=2), TeamScore(team="FNC", score=1))
    await platform.publish(
        TournamentCreated(
            tournament_id=tournament, name="LEC", game="lol", organizer_id="riot", starts_at=T0
        ),
        MatchScheduled(
            tournament_id=tournament, match_id=match, teams=("G2", "FNC"), scheduled_start=T0, best_of=3
        ),
        MatchScheduled(
            tournament_id=tournament,
            match_id=other,
            teams=("MAD", "SK"),
            scheduled_start=T0,
            stream_id="named",
        ),
        StreamCreated(stream_id=stream, channel_id="c", owner_id="o", title="G2-FNC", match_id=match),
        StreamCreated(
            stream_id=ids("s"), channel_id="c", owner_id="o", title="pov", match_id=match, role=StreamRole.POV
        ),
        MatchStarted(tournament_id=tournament, match_id=match, started_at=T0),
        MatchScoreUpdated(tournament_id=tournament, match_id=match, scores=scores[:1]),
        MatchScoreUpdated(tournament_id=tournament, match_id=match, scores=scores),
        MatchScoreUpdated(tournament_id=tournament, match_id=match, scores=scores),  # replace, not add
        MatchEnded(tournament_id=tournament, match_id=match, ended_at=T0 + timedelta(hours=2), winner="G2"),
    )
    assert await platform.row(
        "SELECT name, game, starts_at FROM tournaments WHERE tournament_id = %s", tournament
    ) == (
        "LEC",
        "lol",
        T0,
    )
    assert await platform.rows(
        "SELECT match_id, teams, best_of, state, started_at, ended_at, scores, winner, main_stream_id"
        " FROM matches WHERE tournament_id = %s ORDER BY match_id = %s DESC",
        tournament,
        match,
    ) == [
        (
            match,
            ["G2", "FNC"],
            3,
            "ended",
            T0,
            T0 + timedelta(hours=2),
            json.loads('[{"team": "G2", "score": 2}, {"team": "FNC", "score": 1}]'),
            "G2",
            stream,
        ),
        (other, ["MAD", "SK"], 1, "scheduled", None, None, [], None, "named"),
    ]


async def test_a_duplicate_lifecycle_decision_changes_nothing(platform: Platform) -> None:
    channel, stream = ids("c"), ids("s")
    created = StreamCreated(stream_id=stream, channel_id=channel, owner_id="o", title="t")
    went_live = StreamWentLive(stream_id=stream, channel_id=channel, started_at=T0, causation_id="ingest-1")
    ended = StreamEnded(
        stream_id=stream, channel_id=channel, ended_at=T0 + timedelta(hours=1), causation_id="req"
    )
    await platform.publish(created, went_live)
    before_pg, before_redis = await dumps(platform)
    first = await platform.publish(went_live)  # same event id, new offset
    assert (await dumps(platform)) == (before_pg, before_redis)
    await platform.publish(ended)
    after_end = await dumps(platform)
    again = await platform.publish(went_live, ended)  # a redelivered cause, replayed after the end
    assert (await dumps(platform)) == after_end
    assert again[0].offset > first[0].offset
    assert await platform.row("SELECT state FROM streams WHERE stream_id = %s", stream) == ("ended",)


async def dumps(platform: Platform) -> tuple[object, object]:
    """The read models without their offsets (which a duplicate does move, past itself)."""
    tables = await dump_tables(platform.pool, platform.schema)
    del tables["projection_offsets"]
    keys = await dump_redis(platform.redis, platform.prefix)
    del keys[LiveKeys("").offsets]
    return tables, keys


async def test_positions_wait_until_applied_and_time_out_beyond_the_end(platform: Platform) -> None:
    user = ids("u")
    (position,) = await platform.publisher.publish_many(
        [UserRegistered(user_id=user, username=ids("name"), display_name="D")]
    )
    assert await wait_for_position(platform.pool, position, 10.0, schema=platform.schema)
    beyond = Position(position.topic, position.partition, position.offset + 1)
    assert not await wait_for_position(platform.pool, beyond, 0.2, schema=platform.schema)
    async with platform.pool.connection() as conn:
        assert await position_reached(conn, position, schema=platform.schema)
        assert not await position_reached(conn, beyond, schema=platform.schema)
        # a topic no PostgreSQL projector reads: nothing to wait for
        assert await position_reached(conn, Position("viewers.heartbeats", 0, 10**9), schema=platform.schema)
    # the same user's next event lands at exactly that position
    (next_position,) = await platform.publisher.publish_many(
        [UserRoleChanged(user_id=user, role=UserRole.ADMIN, previous_role=UserRole.VIEWER, changed_by="a")]
    )
    assert next_position == beyond
    assert await wait_for_position(platform.pool, beyond, 10.0, schema=platform.schema)


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    response = (await reader.read()).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


async def test_health_and_metrics(platform: Platform) -> None:
    await platform.publish(UserRegistered(user_id=ids("u"), username=ids("name"), display_name="D"))
    status, body = await http_get(platform.port, "/health")
    assert status == 200, body
    health = json.loads(body)
    assert health["status"] == "ok"
    assert {name: dep["ok"] for name, dep in health["dependencies"].items()} == {
        "kafka": True,
        "postgresql": True,
        "redis": True,
    }
    status, metrics = await http_get(platform.port, "/metrics")
    assert status == 200
    assert f'esports_projection_events_applied_total{{projector="{CATALOG}"}} 1.0' in metrics
    assert 'esports_projection_dead_letters_total{projector="redis.live"} 0.0' in metrics
    lines = metrics.splitlines()
    offsets = [line for line in lines if line.startswith("esports_projection_next_offset{")]
    assert any(f'projector="{CATALOG}",topic="users"}}' in line for line in offsets), offsets
    assert f'esports_projection_store_seconds_count{{projector="{CATALOG}"}} ' in metrics
    lags = [line for line in lines if line.startswith("kafka_consumer_lag{")]
    assert any(f'projector.{CATALOG}",partition=' in line for line in lags), lags
    assert (await http_get(platform.port, "/nope"))[0] == 404
