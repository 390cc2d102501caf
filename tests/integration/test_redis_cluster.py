"""The Redis read models on a local three-node Redis Cluster (``redis_cluster_support``), with the real
Kafka and PostgreSQL: the projector service writes them through a cluster client, every key of a
read model lands in its read model's hash slot and the read models spread over the nodes, the API's
readers read them back, and ``esports rebuild`` swaps a rebuilt shadow in (one script per read model,
on the node holding its slot) that equals what was projected live, also while chat keeps coming.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import WatchError

from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.ingest import IngestHealthReported
from infra.kafka import EventPublisher, Position
from infra.redis import RedisClient, make_client
from infra.settings import Settings
from producers.auth.login_limiter import LoginLimiter
from producers.listings import StreamReader
from projections.queries.tournaments import match_audiences
from projections.rebuild.command import Options, rebuild, shadow_prefix
from projections.rebuild.progress import Progress
from projections.redis_keys import ChatKeys, IngestHealthKeys, LiveKeys, MatchViewerKeys, glob_escape
from tests.integration.projections_support import read_model, redis_space, running_service, unique_schema
from tests.integration.redis_cluster_support import LocalCluster, local_cluster
from tests.integration.test_rebuild_support import MATCH, STREAMS, dump_keys, session_events, wait_applied

pytestmark = pytest.mark.integration

READ_MODELS = [k.read_model for k in (LiveKeys, ChatKeys, MatchViewerKeys, IngestHealthKeys)]


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def on_cluster(namespace: Settings, redis_cluster: LocalCluster) -> Settings:
    """This test's topics, the shared PostgreSQL, and Redis: the cluster."""
    return redis_cluster.settings(namespace)


@pytest.fixture
async def cluster_client(settings: Settings, redis_cluster: LocalCluster) -> AsyncIterator[RedisClient]:
    client = make_client(redis_cluster.settings(settings).redis, name="tests")
    try:
        yield client
    finally:
        await client.aclose()


async def test_read_models_on_the_cluster_are_rebuilt_to_what_was_projected(
    on_cluster: Settings, codec: EventCodec
) -> None:
    schema = unique_schema()
    async with (
        EventPublisher(on_cluster.kafka, codec, producer="tests.cluster") as publisher,
        read_model(on_cluster, schema) as pool,
        redis_space(on_cluster) as (client, prefix),
        running_service(on_cluster, schema, prefix),
    ):
        assert isinstance(client, RedisCluster)
        positions = await publisher.publish_many(session_events(catalog=120, chat_per_stream=30))
        await wait_applied(pool, client, schema=schema, prefix=prefix, positions=positions, timeout_s=45)
        live = await dump_keys(client, prefix)
        assert len(live) > 20
        await assert_one_slot_per_read_model(client, prefix, live)

        # A quiet rebuild: the swapped-in keys are the projected ones, key by key; no shadow is left.
        options = Options(names=("redis",), schema=schema, redis_prefix=prefix, batch_size=100)
        summary = await rebuild(on_cluster, options, Progress(io.StringIO(), quiet=True))
        assert summary.redis is not None and summary.redis.moved == len(live) == summary.redis.deleted
        assert await dump_keys(client, prefix) == live
        assert not [k async for k in client.scan_iter(match=f"{glob_escape(shadow_prefix(prefix))}*")]
        await assert_readers_see(pool, client, prefix, live)

        # Chat keeps coming during a rebuild: the swaps catch up with the live projector on the
        # cluster too, and every late message lands once.
        late: list[Position] = []
        publishing = asyncio.create_task(publish_slowly(publisher, late))
        await rebuild(on_cluster, options, Progress(io.StringIO(), quiet=True))
        await publishing
        await wait_applied(pool, client, schema=schema, prefix=prefix, positions=positions + late)
        recent = await client.lrange(ChatKeys(prefix).recent(STREAMS[0]), 0, -1)
        ids = [json.loads(m)["message_id"] for m in recent]
        assert [i for i in ids if i.startswith("late-")] == [f"late-{n}" for n in range(LATE)]

        await assert_ingest_health_on_the_cluster(publisher, client, prefix)


LATE = 24


async def publish_slowly(publisher: EventPublisher, positions: list[Position]) -> None:
    for start in range(0, LATE, 4):
        positions += await publisher.publish_many(
            [
                ChatMessageAccepted(
                    message_id=f"late-{n}",
                    stream_id=STREAMS[0],
                    user_id="late",
                    display_name="L",
                    text=str(n),
                )
                for n in range(start, start + 4)
            ]
        )
        await asyncio.sleep(0.02)


async def assert_one_slot_per_read_model(client: RedisClient, prefix: str, dump: dict[str, Any]) -> None:
    """Each key is in its read model's slot (the slot of its tag), the read models in different
    slots, and more than one node holds keys (checked on the nodes themselves)."""
    assert isinstance(client, RedisCluster)
    slots = {name: await client.cluster_keyslot(name) for name in READ_MODELS}
    assert len(set(slots.values())) == len(READ_MODELS)
    seen = set()
    for key in dump:
        read_model = key[key.index("{") + 1 : key.index("}")]
        assert key.startswith(f"{{{read_model}}}") and read_model in slots, key
        assert await client.cluster_keyslot(prefix + key) == slots[read_model], key
        seen.add(read_model)
    assert seen == {"redis.live", "redis.chat", "redis.match_viewers"}  # this session has no ingest
    sizes = [await client.dbsize(target_nodes=node) for node in client.get_primaries()]
    assert len(sizes) == 3 and sum(1 for size in sizes if size > 0) > 1, sizes


async def assert_readers_see(pool: Any, client: RedisClient, prefix: str, dump: dict[str, Any]) -> None:
    """The API's readers, on a cluster client, read what the projectors wrote."""
    relative = LiveKeys("")
    listing, _, source = await StreamReader(pool, client, prefix=prefix, live_cache_s=0).live(
        limit=100, cursor=None
    )
    assert source == "redis"
    live_ids = [row["stream_id"] for row in listing]
    assert STREAMS[0] in live_ids and STREAMS[1] in live_ids and STREAMS[2] not in live_ids
    assert live_ids == [member for member, _ in sorted(dump[relative.live][1], key=lambda m: -m[1])]
    main = next(row for row in listing if row["stream_id"] == STREAMS[0])
    assert main["peak_viewers"] == int(dump[relative.stream(STREAMS[0])][1]["peak_viewers"])

    audience = (await match_audiences(client, prefix, [MATCH]))[MATCH]
    stored = dump[MatchViewerKeys("").match(MATCH)][1]
    assert audience["viewers"] == int(stored["viewers"]) > 0

    limiter = LoginLimiter(client, prefix=prefix, per_minute=2)  # its two keys are in two slots
    for _ in range(2):
        await limiter.record_failure("alice", "10.0.0.1")
    assert await limiter.blocked_for("alice", "10.0.0.9") > 0
    await limiter.record_success("alice", "10.0.0.1")
    assert await limiter.blocked_for("alice", "10.0.0.9") == 0
    assert await limiter.blocked_for("bob", "10.0.0.1") > 0  # the address keeps counting


async def assert_ingest_health_on_the_cluster(
    publisher: EventPublisher, client: RedisClient, prefix: str
) -> None:
    """A fresh report (it expires 30 s after it was measured, so it is checked alone, now)."""
    assert isinstance(client, RedisCluster)
    report = IngestHealthReported(
        stream_id=STREAMS[0],
        session_id="sess-1",
        input_bitrate_kbps=6000.0,
        fps=60.0,
        encoder_speed=1.0,
        dropped_frames=0,
        restarts=0,
    )
    await publisher.publish_many([report])
    key = IngestHealthKeys(prefix).stream(STREAMS[0])
    for _ in range(400):
        if (stored := await client.get(key)) is not None:
            break
        await asyncio.sleep(0.05)
    assert stored is not None and json.loads(stored)["session_id"] == "sess-1"
    assert await client.cluster_keyslot(key) == await client.cluster_keyslot("redis.ingest")


async def test_a_watched_key_changed_on_the_cluster_fails_the_transaction(
    cluster_client: RedisClient,
) -> None:
    """What a projector's exactly-once batch relies on (WATCH, then MULTI/EXEC) holds on the cluster."""
    keys = LiveKeys("watch-test:")
    async with cluster_client.pipeline(transaction=True) as tx:
        await tx.watch(keys.offsets, keys.stream("s1"))
        await tx.hget(keys.offsets, "streams:0")
        await cluster_client.hset(keys.offsets, "streams:0", "7")  # another writer, another connection
        tx.multi()
        tx.hset(keys.stream("s1"), "state", "live")
        tx.hset(keys.offsets, "streams:0", "8")
        with pytest.raises(WatchError):
            await tx.execute()
    assert await cluster_client.hget(keys.offsets, "streams:0") == "7"
    assert await cluster_client.exists(keys.stream("s1")) == 0
    await cluster_client.delete(keys.offsets)
