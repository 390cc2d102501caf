"""The Redis read-model key layout (``projections/redis_keys.py``) and the client factory: one hash slot
per read model, its rebuild shadow included, different slots for different read models."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from infra.redis import CacheError, CacheUnavailable, make_client, translate
from infra.settings import Settings
from projections.rebuild.command import shadow_prefix
from projections.redis_keys import ChatKeys, IngestHealthKeys, LiveKeys, MatchViewerKeys, ReadModelKeys

LAYOUTS: list[type[ReadModelKeys]] = [LiveKeys, ChatKeys, MatchViewerKeys, IngestHealthKeys]


def every_key(keys: ReadModelKeys) -> list[str]:
    """One concrete key per pattern (a family's ``*`` filled in)."""
    return [pattern.replace("*", "s-1").replace("\\", "") for pattern in keys.patterns()]


def test_keys_are_spelled_prefix_tag_name() -> None:
    assert (LiveKeys().live, LiveKeys().stream("s1"), LiveKeys().offsets) == (
        "{redis.live}live:streams",
        "{redis.live}stream:s1",
        "{redis.live}offsets:redis.live",
    )
    assert ChatKeys("t:").recent("s1") == "t:{redis.chat}chat:recent:s1"
    assert ChatKeys("t:").window("s1") == "t:{redis.chat}chat:window:s1"
    assert MatchViewerKeys().match("m1") == "{redis.match_viewers}match:m1:viewers"
    assert IngestHealthKeys().stream("s1") == "{redis.ingest}ingest:s1"


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.read_model)
@pytest.mark.parametrize("prefix", ["", "test-1:"])
def test_a_read_model_and_its_rebuild_shadow_share_one_slot(layout: type[ReadModelKeys], prefix: str) -> None:
    live, shadow = layout(prefix), layout(shadow_prefix(prefix))
    slots = {key_slot(key.encode()) for key in every_key(live) + every_key(shadow)}
    assert slots == {key_slot(layout.read_model.encode())}
    assert len(every_key(live)) >= 2  # the offsets hash and the read model's own keys


def test_different_read_models_are_in_different_slots() -> None:
    assert len({key_slot(layout().offsets.encode()) for layout in LAYOUTS}) == len(LAYOUTS)


def test_a_prefix_with_a_brace_is_refused() -> None:
    with pytest.raises(ValueError, match="hash slot"):
        LiveKeys("tenant{a}:")


def test_the_client_is_a_cluster_client_when_the_setting_says_so() -> None:
    settings = Settings().redis
    assert isinstance(make_client(settings.model_copy(update={"cluster": False}), name="t"), aioredis.Redis)
    cluster = settings.model_copy(update={"cluster": True, "db": 0})
    assert isinstance(make_client(cluster, name="t"), RedisCluster)  # connects on its first command
    with pytest.raises(ValueError, match="database 0"):
        make_client(cluster.model_copy(update={"db": 3}), name="t")


def test_cluster_errors_translate_to_ours() -> None:
    assert isinstance(translate(redis.exceptions.ClusterDownError("CLUSTERDOWN"), "x"), CacheUnavailable)
    assert isinstance(translate(redis.exceptions.SlotNotCoveredError("slot 7"), "x"), CacheUnavailable)
    crossed = translate(redis.exceptions.CrossSlotTransactionError("two slots"), "x")
    assert type(crossed) is CacheError and not crossed.retriable
