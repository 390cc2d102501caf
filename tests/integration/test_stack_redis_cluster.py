"""`esports infra up redis` with ``ESPORTS_REDIS__CLUSTER=true``: a local three-node Redis Cluster.

Run as users run it (``python -m infra.cli infra ...`` in a child process), from a run folder of its
own on free ports, so the shared stack is never touched: `up` forms the cluster once, a cluster
client's keys spread over all three nodes, `down` leaves no process and `up` rejoins the same cluster
(same node ids, keys back from the AOF, no second ``redis-cli --cluster create``), `up` completes a
partly running cluster and refuses standalone settings while the cluster runs. About 20 s on 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
import redis

from infra.redis import make_client
from infra.settings import Settings
from infra.stack import processes
from infra.stack import redis as stack_redis
from tests.chaos.platform import esports, free_base, settings_of

pytestmark = pytest.mark.integration

CREATED = "Performing hash slots allocation"  # what `redis-cli --cluster create` logs, once per create
UP_TIMEOUT_S = 60.0


def _cluster_port() -> int:
    """A base port whose three client ports and their bus ports (+10000) are all free."""
    return free_base([offset + node for offset in (0, 10000) for node in range(3)], 20000, 22000)


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, str]]:
    """ESPORTS_* variables of a private run folder (short: under /tmp) and free ports, cluster mode."""
    run_dir = Path(tempfile.mkdtemp(prefix="esr-", dir="/tmp"))
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ESPORTS_")}
    env = inherited | {
        "ESPORTS_STACK__RUN_DIR": str(run_dir),
        "ESPORTS_REDIS__PORT": str(_cluster_port()),
        "ESPORTS_REDIS__CLUSTER": "true",
    }
    try:
        yield env
    finally:
        with suppress(Exception):
            esports(env, "infra", "down", "redis", timeout_s=UP_TIMEOUT_S)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def cluster(env: dict[str, str]) -> Settings:
    """The cluster, running (`up` is idempotent: each test starts from a running cluster)."""
    esports(env, "infra", "up", "redis", timeout_s=UP_TIMEOUT_S)
    return settings_of(env)


def _ports(settings: Settings) -> list[int]:
    return [settings.redis.port + n for n in range(3)]


def _node_ids(settings: Settings) -> list[str]:
    ids = []
    for port in _ports(settings):
        with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
            ids.append(str(node.cluster("MYID")))
    return ids


def _local_keys(settings: Settings, prefix: str) -> list[set[str]]:
    """The keys starting with `prefix` that each node itself holds (SCAN of one node is its own keys)."""
    held = []
    for port in _ports(settings):
        with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
            held.append(set(node.scan_iter(match=f"{prefix}*")))
    return held


def _write(settings: Settings, values: dict[str, str]) -> None:
    async def write() -> None:
        client = make_client(settings.redis, name="test-stack-redis-cluster")
        try:
            for key, value in values.items():
                await client.set(key, value)
        finally:
            await client.aclose()

    asyncio.run(write())


def _read(settings: Settings, keys: list[str]) -> list[str | None]:
    async def read() -> list[str | None]:
        client = make_client(settings.redis, name="test-stack-redis-cluster")
        try:
            values = [await client.get(key) for key in keys]
            return [None if value is None else str(value) for value in values]
        finally:
            await client.aclose()

    return asyncio.run(read())


def _creates(settings: Settings) -> int:
    return processes.log_path(settings, "redis").read_text(errors="replace").count(CREATED)


def _esports_failing(env: dict[str, str], *command: str) -> str:
    """The output of an `esports` command that must fail."""
    with pytest.raises(RuntimeError) as failed:
        esports(env, *command, timeout_s=UP_TIMEOUT_S)
    return str(failed.value)


def _stop_node(pid: int) -> None:
    """SIGTERM one node and wait until it is gone (as if it had crashed or been stopped by hand)."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while processes.proc_stat(pid) is not None:
        assert time.monotonic() < deadline, f"redis node {pid} still running 10 s after SIGTERM"
        time.sleep(0.05)


def _keys(count: int = 30) -> dict[str, str]:
    prefix = f"stack-test:{uuid.uuid4().hex[:8]}:"
    return {f"{prefix}{n}": f"value {n}" for n in range(count)}


def test_up_forms_a_cluster_of_three_whose_keys_land_on_every_node(
    env: dict[str, str], cluster: Settings
) -> None:
    assert "Redis 7" in (shown := esports(env, "infra", "status", "redis")) and "cluster of 3" in shown
    assert sorted(stack_redis.running(cluster)) == ["redis-1", "redis-2", "redis-3"]
    values = _keys()
    prefix = next(iter(values)).rsplit(":", 1)[0]

    _write(cluster, values)

    assert _read(cluster, list(values)) == list(values.values())
    held = _local_keys(cluster, prefix)
    assert all(held), f"some node holds none of the keys: {[len(keys) for keys in held]}"
    assert set().union(*held) == set(values) and sum(map(len, held)) == len(values)
    assert _creates(cluster) == 1


def test_down_then_up_rejoins_the_same_cluster_with_its_keys(env: dict[str, str], cluster: Settings) -> None:
    values = _keys()
    _write(cluster, values)
    ids, pids = _node_ids(cluster), stack_redis.running(cluster)

    esports(env, "infra", "down", "redis", timeout_s=UP_TIMEOUT_S)

    assert not [pid for pid in pids.values() if processes.proc_stat(pid) is not None]
    assert not list((cluster.stack.run_dir / "pids").glob("redis*.pid"))
    assert not [p.number for p in stack_redis.ports(cluster) if processes.port_in_use(p.number)]

    esports(env, "infra", "up", "redis", timeout_s=UP_TIMEOUT_S)

    assert _node_ids(cluster) == ids
    assert _creates(cluster) == 1
    assert _read(cluster, list(values)) == list(values.values())  # from each node's AOF


def test_up_starts_the_missing_node_of_a_partly_running_cluster(
    env: dict[str, str], cluster: Settings
) -> None:
    before = stack_redis.running(cluster)
    _stop_node(before["redis-2"])
    assert "redis-2 not running" in _esports_failing(env, "infra", "status", "redis")

    esports(env, "infra", "up", "redis", timeout_s=UP_TIMEOUT_S)

    after = stack_redis.running(cluster)
    assert after["redis-1"] == before["redis-1"] and after["redis-3"] == before["redis-3"]
    assert after["redis-2"] != before["redis-2"]
    assert "cluster of 3" in esports(env, "infra", "status", "redis")


def test_up_with_standalone_settings_refuses_the_running_cluster(
    env: dict[str, str], cluster: Settings
) -> None:
    pids = stack_redis.running(cluster)

    output = _esports_failing(env | {"ESPORTS_REDIS__CLUSTER": "false"}, "infra", "up", "redis")

    assert "runs as a cluster (redis-1, redis-2, redis-3)" in output and "ESPORTS_REDIS__CLUSTER" in output
    assert stack_redis.running(cluster) == pids
