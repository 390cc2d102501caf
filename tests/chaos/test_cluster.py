"""A three-broker local cluster (`esports infra up --brokers 3`) as users run it, checked with Kafka's tools.

1. ``esports topics create`` in cluster mode gives every catalogue topic replication 3 and
   ``min.insync.replicas=2``, as Kafka's own ``kafka-topics --describe`` reports them.
2. acks=all means it: with both followers of a partition stopped (SIGSTOP), a produce with acks=all
   fails rather than succeeds, while acks=1 to the same leader still succeeds; with one follower
   stopped the leader drops it from the ISR and an acks=all produce succeeds again (2 in sync).

The cluster is the chaos package's private platform (tests/chaos/conftest.py), started once for
both this file and the short chaos run; about 50 s on 2 cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from events.topics import CATALOGUE
from infra.kafka import TopicNames
from infra.settings import REPO_ROOT
from tests.chaos.platform import Platform, esports

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(platform: Platform) -> Platform:
    return platform


def describe(platform: Platform, *topic: str, stopped: tuple[int, ...] = ()) -> str:
    """kafka-topics --describe through the brokers that answer: the tool's admin client waits on a
    SIGSTOPped bootstrap node (the kernel accepts its connection) and times out its whole call."""
    kafka = platform.settings.kafka
    answering = [n for n in range(1, kafka.brokers + 1) if n not in stopped]
    servers = ",".join(f"127.0.0.1:{kafka.node_ports(n)[0]}" for n in answering)
    tool = [str(REPO_ROOT / "infra" / "kafka-tool"), "topics", "--bootstrap-server", servers]
    selected = ["--topic", topic[0]] if topic else []
    done = subprocess.run([*tool, "--describe", *selected], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_topics_created_in_cluster_mode_have_replication_3_and_min_insync_2(cluster: Platform) -> None:
    assert cluster.settings.kafka.bootstrap_servers.count(",") == 2  # every node, by default
    esports(cluster.env, "topics", "create")
    summaries = {
        match.group(1): line
        for line in describe(cluster).splitlines()
        if (match := re.match(r"Topic: (\S+)\tTopicId", line))
    }
    names = TopicNames(cluster.settings.kafka.topic_prefix)
    for spec in CATALOGUE:
        summary = summaries[names.physical(spec.name)]
        assert "ReplicationFactor: 3" in summary and "min.insync.replicas=2" in summary, summary


def _placement_or_none(platform: Platform, topic: str) -> tuple[int, list[int], list[int]]:
    """The placement, or (-1, [], []) while the topic is not described yet (just created)."""
    try:
        return _placement(platform, topic)
    except (StopIteration, AssertionError, KeyError):
        return -1, [], []


def _placement(
    platform: Platform, topic: str, stopped: tuple[int, ...] = ()
) -> tuple[int, list[int], list[int]]:
    """(leader, replicas, in-sync replicas) of partition 0 of `topic`, asked of the brokers not `stopped`."""
    lines = describe(platform, topic, stopped=stopped).splitlines()
    line = next(line for line in lines if "Partition: 0" in line)
    fields = dict(re.findall(r"(\w+): (\S*)", line))
    return (
        int(fields["Leader"]),
        [int(n) for n in fields["Replicas"].split(",")],
        [int(n) for n in fields["Isr"].split(",") if n],
    )


@contextlib.asynccontextmanager
async def _producer(platform: Platform, acks: str | int, timeout_s: float) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (started while every broker answers, as a running service's would be)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=platform.settings.kafka.bootstrap_servers,
        acks=acks,
        enable_idempotence=acks == "all",
        request_timeout_ms=int(timeout_s * 1000),
    )
    await producer.start()
    try:
        yield producer
    finally:
        with contextlib.suppress(Exception):  # a stop flushes what is pending: bounded, never hanging
            await asyncio.wait_for(producer.stop(), 5)


async def _send(producer: AIOKafkaProducer, topic: str, timeout_s: float) -> None:
    """One record; raises what aiokafka raises (it retries RequestTimedOut until the batch expires)."""
    await asyncio.wait_for(producer.send_and_wait(topic, b"x", key=b"k", partition=0), timeout_s)


async def test_acks_all_fails_rather_than_succeeds_with_one_replica_in_sync(cluster: Platform) -> None:
    topic = "cluster-probe"
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 3, topic_configs={"min.insync.replicas": "2"})])
    finally:
        await admin.close()
    await _wait_isr(cluster, topic, 3)
    leader, replicas, _ = _placement(cluster, topic)
    followers = [node for node in replicas if node != leader]
    pids = {node: cluster.broker_pid(node) or 0 for node in followers}
    assert all(pids.values()), pids
    async with _producer(cluster, "all", 4) as durable, _producer(cluster, 1, 4) as leader_only:
        await _send(durable, topic, 30)  # the topic works, all three in sync
        await _send(leader_only, topic, 30)

        # Both followers stopped: the leader alone cannot make a write durable; acks=all must fail.
        for pid in pids.values():
            os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises((KafkaError, TimeoutError)):
                await _send(durable, topic, 30)
            await _send(leader_only, topic, 10)  # the leader itself still answers: acks is what failed
        finally:
            for pid in pids.values():
                os.kill(pid, signal.SIGCONT)

    # One follower stopped: after replica.lag.time.max.ms the leader shrinks the ISR to 2 (a quorum of
    # controllers is still up), which min.insync.replicas=2 accepts.
    await _wait_isr(cluster, topic, 3)
    stopped = followers[0]
    async with _producer(cluster, "all", 30) as durable:
        os.kill(pids[stopped], signal.SIGSTOP)
        try:
            await _send(durable, topic, 60)
            _, _, isr = _placement(cluster, topic, stopped=(stopped,))
            assert stopped not in isr and len(isr) == 2, isr
        finally:
            os.kill(pids[stopped], signal.SIGCONT)


async def _wait_isr(platform: Platform, topic: str, size: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_placement_or_none(platform, topic)[2]) != size:
        assert time.monotonic() < deadline, f"the ISR of {topic} is not back to {size}"
        await asyncio.sleep(1)
