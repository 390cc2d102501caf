"""Viewer counts in the read models and the HTTP beacon, against the real Kafka, PostgreSQL and Redis.

ViewerCountChanged reaches the live listing (the ``live:streams`` score and the stream hash's
``viewers``, ``peak_viewers``, ``average_viewers``) and the 10 s PostgreSQL series (``pg.viewers``);
MatchAudienceChanged reaches ``redis.match_viewers``, ``match_viewer_counts`` and the API's match
objects; the beacon publishes a ViewerPresenceBatch of one beat, keyed by its session, from the
"api-beacon" edge, anonymous or not, and is rate limited per session.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from events.codec import EventCodec
from events.streams import StreamCreated, StreamEnded, StreamEndReason, StreamWentLive
from events.viewers import MatchAudienceChanged, ViewerBeat, ViewerCountChanged, ViewerPresenceBatch
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, Position, TopicNames
from infra.settings import Settings
from projections.live import LiveKeys
from projections.viewer_counts import NAME as VIEWERS
from projections.viewer_counts import MatchViewerKeys, bucket_of
from schemas import SCHEMAS_DIR
from tests.integration.projections_support import (
    caught_up,
    dump_redis,
    dump_tables,
    read_model,
    redis_space,
    running_service,
    unique_schema,
)
from tests.integration.test_api_support import ApiStack, open_api_stack
from tests.integration.test_projections_catalog import Platform, ids
from tests.unit.event_samples import SAMPLE_TIME

pytestmark = pytest.mark.integration

T0 = SAMPLE_TIME.replace(second=0, microsecond=0)


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


def count(stream_id: str, viewers: int, peak: int, seconds: float) -> ViewerCountChanged:
    return ViewerCountChanged(
        stream_id=stream_id, count=viewers, peak=peak, occurred_at=T0 + timedelta(seconds=seconds)
    )


async def test_counts_order_the_live_listing_and_fill_the_series(
    platform: Platform, namespace: Settings, codec: EventCodec
) -> None:
    channel, owner = ids("c"), ids("u")
    small, big, early, ended = ids("s"), ids("s"), ids("s"), ids("s")
    keys = LiveKeys(platform.prefix)
    await platform.publish(
        *(
            StreamCreated(stream_id=s, channel_id=channel, owner_id=owner, title=s)
            for s in (small, big, early)
        ),
        StreamWentLive(stream_id=small, channel_id=channel, started_at=T0),
        StreamWentLive(stream_id=big, channel_id=channel, started_at=T0),
        count(early, 7, 7, 0),  # counted before it goes live: kept, not listed yet
        StreamWentLive(stream_id=ended, channel_id=channel, started_at=T0),
        StreamEnded(stream_id=ended, channel_id=channel, ended_at=T0, reason=StreamEndReason.ENDED_BY_OWNER),
        count(ended, 99, 99, 0),  # an ended stream never comes back into the listing
    )
    listed = await platform.redis.zrevrange(keys.live, 0, -1, withscores=True)
    assert sorted(listed) == sorted([(big, 0.0), (small, 0.0)])
    assert await platform.redis.hget(keys.stream(early), "viewers") == "7"

    await platform.publish(
        count(small, 5, 5, 1),
        count(big, 3, 3, 2),
        count(small, 12, 12, 3),  # same bucket: the max stays
        count(small, 8, 12, 4),
        count(big, 40, 40, 11),  # next bucket
        StreamWentLive(stream_id=early, channel_id=channel, started_at=T0),
    )
    assert await platform.redis.zrevrange(keys.live, 0, -1, withscores=True) == [
        (big, 40.0),
        (small, 8.0),
        (early, 7.0),
    ]
    assert await platform.redis.hget(keys.stream(small), "viewers") == "8"
    assert await platform.redis.hget(keys.stream(ended), "viewers") == "99"
    rows = await platform.rows(
        "SELECT stream_id, bucket, viewers, peak FROM viewer_counts WHERE stream_id = ANY(%s)"
        " ORDER BY stream_id = %s DESC, bucket",
        [small, big],
        big,
    )
    assert rows == [(big, T0, 3, 3), (big, T0 + timedelta(seconds=10), 40, 40), (small, T0, 12, 12)]
    assert bucket_of(T0 + timedelta(seconds=19.9)) == T0 + timedelta(seconds=10)

    # Every count again (a replay of the topic after a rebalance): the series does not change.
    before = await dump_tables(platform.pool, platform.schema)
    await platform.publish(count(small, 5, 5, 1), count(small, 12, 12, 3), count(big, 3, 3, 2))
    assert (await dump_tables(platform.pool, platform.schema))["viewer_counts"] == before["viewer_counts"]


async def test_restarted_service_applies_counts_once(namespace: Settings, codec: EventCodec) -> None:
    """A second service over the same schema and prefix starts at the stored offsets: nothing twice."""
    stream, channel = ids("s"), ids("c")
    schema = unique_schema()
    async with (
        read_model(namespace, schema) as pool,
        redis_space(namespace) as (client, prefix),
        EventPublisher(namespace.kafka, codec, producer="tests") as publisher,
    ):
        events = [
            StreamCreated(stream_id=stream, channel_id=channel, owner_id="o", title="t"),
            StreamWentLive(stream_id=stream, channel_id=channel, started_at=T0),
            *(count(stream, n, n, n) for n in range(1, 25)),
        ]
        async with running_service(namespace, schema, prefix):
            await caught_up(pool, schema, client, prefix, await publisher.publish_many(events))
            tables, keys = await dump_tables(pool, schema), await dump_redis(client, prefix)
        async with running_service(namespace, schema, prefix):
            last = await publisher.publish_many([count(stream, 24, 24, 24)])
            await caught_up(pool, schema, client, prefix, last)
            assert (await dump_tables(pool, schema))["viewer_counts"] == tables["viewer_counts"]
            after = await dump_redis(client, prefix)
            relative = LiveKeys("")  # dump_redis strips the prefix
            assert after[relative.stream(stream)] == keys[relative.stream(stream)]
            assert after[relative.live] == keys[relative.live] == [(stream, 24.0)]
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sum(next_offset) FROM projection_offsets WHERE projector = %s", (VIEWERS,)
            )
            assert (await cur.fetchone()) == (25,)


@pytest.fixture(scope="module")
async def beacon_stack(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiStack]:
    async with open_api_stack(settings, Path(tmp_path_factory.mktemp("beacon")), lifecycle=False) as stack:
        yield stack


async def _heartbeats(
    stack: ApiStack, wanted: int, timeout_s: float = 20.0
) -> list[tuple[ViewerPresenceBatch, ViewerBeat]]:
    """The beats on ``viewers.presence``, each with its batch (checked to be keyed by its shard_key)."""
    names = TopicNames(stack.settings.kafka.topic_prefix)
    consumer = EventConsumer(
        stack.settings.kafka,
        EventCodec.load(SCHEMAS_DIR),
        topics=["viewers.presence"],
        group_id=None,
        dead_letters=DeadLetters(stack.publisher, names.physical("deadletter")),
        from_beginning=True,
    )
    found: list[tuple[ViewerPresenceBatch, ViewerBeat]] = []
    deadline = time.monotonic() + timeout_s
    async with consumer:
        async for batch in consumer.batches(timeout_ms=100):
            for consumed in batch:
                event = consumed.event
                assert isinstance(event, ViewerPresenceBatch) and consumed.key == event.shard_key.encode()
                found.extend((event, beat) for beat in event.beats)
            if len(found) >= wanted or time.monotonic() > deadline:
                return found
    return found


async def test_beacon_publishes_heartbeats_anonymous_or_not(beacon_stack: ApiStack) -> None:
    stack = beacon_stack
    owner = await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"b-{uuid.uuid4().hex[:12]}", "display_name": "B"}
    )
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Embed"}, expect=201
    )
    stream_id = created["stream_id"]
    await stack.query(f"/api/v1/streams/{stream_id}", after=created["positions"])
    url = f"/api/v1/streams/{stream_id}/beacon"

    anonymous = await stack.client.post(url, json={"session_id": "anon-1"})
    assert anonymous.status_code == 204 and anonymous.content == b""
    signed_in = await stack.client.post(url, json={"session_id": "user-1"}, headers=owner.auth)
    assert signed_in.status_code == 204

    beats = await _heartbeats(stack, 2)
    assert sorted((b.stream_id, b.session_id, batch.edge_id, b.user_id) for batch, b in beats) == [
        (stream_id, "anon-1", "api-beacon", None),
        (stream_id, "user-1", "api-beacon", owner.user_id),
    ]
    assert all(batch.beats == (b,) and batch.shard_key == b.session_id for batch, b in beats)
    assert {batch.producer for batch, _ in beats} == {"producers.api"}


async def test_beacon_refusals_are_problems(beacon_stack: ApiStack) -> None:
    stack = beacon_stack
    refusals = [
        await stack.client.post("/api/v1/streams/no-such-stream/beacon", json={"session_id": "x"}),
        await stack.client.post("/api/v1/streams/s/beacon", json={"session_id": "not valid!"}),
        await stack.client.post("/api/v1/streams/s/beacon", json={}),
        await stack.client.post(
            "/api/v1/streams/s/beacon", json={"session_id": "x"}, headers={"Authorization": "Bearer nope"}
        ),
    ]
    assert [r.status_code for r in refusals] == [404, 422, 422, 401]
    assert all(r.headers["content-type"] == "application/problem+json" for r in refusals)

    statuses = [
        (await stack.client.post("/api/v1/streams/any/beacon", json={"session_id": "eager"})).status_code
        for _ in range(5)
    ]
    assert statuses[:3] == [404, 404, 404]  # under the limit: the stream is looked up
    assert statuses[3:] == [429, 429]
    limited = await stack.client.post("/api/v1/streams/any/beacon", json={"session_id": "eager"})
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["retry-after"]) <= 10


def audience(match_id: str, viewers: int, peak: int, seconds: float, average: float) -> MatchAudienceChanged:
    return MatchAudienceChanged(
        match_id=match_id,
        count=viewers,
        peak=peak,
        average=average,
        occurred_at=T0 + timedelta(seconds=seconds),
    )


async def match_viewers_caught_up(platform: Platform, positions: list[Position]) -> None:
    """Until ``redis.match_viewers`` stored offsets beyond ``positions`` (PostgreSQL is waited for too)."""
    await caught_up(platform.pool, platform.schema, platform.redis, platform.prefix, positions)
    keys = MatchViewerKeys(platform.prefix)
    deadline = time.monotonic() + 30
    for position in positions:
        field = f"{position.topic}:{position.partition}"
        while int(await platform.redis.hget(keys.offsets, field) or 0) <= position.offset:
            assert time.monotonic() < deadline, f"redis.match_viewers did not reach {position}"
            await asyncio.sleep(0.02)


async def test_match_audiences_fill_redis_and_their_series(platform: Platform) -> None:
    final, semi = ids("m"), ids("m")
    events = [
        audience(final, 5, 5, 1, 5.0),
        audience(semi, 3, 3, 2, 3.0),
        audience(final, 12, 12, 3, 6.5),  # same bucket: the max stays
        audience(final, 8, 12, 4, 9.25),
        audience(final, 40, 40, 11, 10.75),  # next bucket
    ]
    await match_viewers_caught_up(platform, await platform.publisher.publish_many(events))
    keys = MatchViewerKeys(platform.prefix)
    assert await platform.redis.hgetall(keys.match(final)) == {
        "viewers": "40",
        "peak": "40",
        "average": "10.75",
    }
    assert await platform.redis.hgetall(keys.match(semi)) == {"viewers": "3", "peak": "3", "average": "3"}
    rows = await platform.rows(
        "SELECT match_id, bucket, viewers, peak FROM match_viewer_counts WHERE match_id = ANY(%s)"
        " ORDER BY match_id = %s DESC, bucket",
        [final, semi],
        final,
    )
    assert rows == [(final, T0, 12, 12), (final, T0 + timedelta(seconds=10), 40, 40), (semi, T0, 3, 3)]

    # Counts published again (the agent re-deciding after a crash): the series keeps its maxima, and a
    # match whose count is the same again keeps its hash.
    tables, redis_before = (
        await dump_tables(platform.pool, platform.schema),
        await dump_redis(platform.redis, platform.prefix),
    )
    await match_viewers_caught_up(platform, await platform.publisher.publish_many(events[:3]))
    assert (await dump_tables(platform.pool, platform.schema))["match_viewer_counts"] == tables[
        "match_viewer_counts"
    ]
    after = await dump_redis(platform.redis, platform.prefix)
    relative = MatchViewerKeys("").match(semi)  # dump_redis strips the prefix
    assert after[relative] == redis_before[relative]


async def test_stream_counts_carry_peak_and_average_to_the_stream_hash(platform: Platform) -> None:
    stream, channel = ids("s"), ids("c")
    await platform.publish(
        StreamCreated(stream_id=stream, channel_id=channel, owner_id="o", title="t"),
        StreamWentLive(stream_id=stream, channel_id=channel, started_at=T0),
        ViewerCountChanged(stream_id=stream, count=4, peak=9, average=6.5, occurred_at=T0),
    )
    stored = await platform.redis.hgetall(LiveKeys(platform.prefix).stream(stream))
    assert (stored["viewers"], stored["peak_viewers"], stored["average_viewers"]) == ("4", "9", "6.5")


async def test_match_objects_show_the_combined_audience(beacon_stack: ApiStack) -> None:
    stack = beacon_stack
    organizer = await stack.register()
    await stack.command(
        "POST", "/api/v1/channels", organizer, {"slug": f"m-{uuid.uuid4().hex[:12]}", "display_name": "Org"}
    )
    body = {"name": "Cup", "game": "CS2", "starts_at": "2030-06-14T15:00:00Z"}
    tournament = await stack.command("POST", "/api/v1/tournaments", organizer, body, expect=201)
    tournament_id = tournament["tournament_id"]
    await stack.query(f"/api/v1/tournaments/{tournament_id}", after=tournament["positions"])
    match_body = {"teams": ["A", "B"], "scheduled_start": "2030-06-14T17:00:00Z"}
    match = await stack.command(
        "POST", f"/api/v1/tournaments/{tournament_id}/matches", organizer, match_body, expect=201
    )
    match_id = match["match_id"]
    counted = await stack.query(f"/api/v1/matches/{match_id}", after=match["positions"])
    assert (counted["viewers"], counted["peak_viewers"]) == (0, 0)  # never counted yet

    # What the match-audience agent publishes, through the running projector service.
    await stack.publisher.publish(
        MatchAudienceChanged(match_id=match_id, count=1500, peak=2100, average=1320.5)
    )
    deadline = time.monotonic() + 30
    while (await stack.query(f"/api/v1/matches/{match_id}"))["viewers"] != 1500:
        assert time.monotonic() < deadline, "the match never showed its audience"
        await asyncio.sleep(0.05)
    shown = await stack.query(f"/api/v1/matches/{match_id}")
    assert (shown["viewers"], shown["peak_viewers"], shown["average_viewers"]) == (1500, 2100, 1320.5)
    listed = await stack.query(f"/api/v1/tournaments/{tournament_id}")
    (in_tournament,) = [m for m in listed["matches"] if m["match_id"] == match_id]
    assert (in_tournament["viewers"], in_tournament["peak_viewers"]) == (1500, 2100)
