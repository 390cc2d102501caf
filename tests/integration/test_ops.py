"""Ops with Kafka's own tools: after a scripted session drains through the real Faust worker and the
projector service, ``infra/kafka-tool consumer-groups --describe --all-groups`` (the project's
wrapper around the broker's jars) lists the agents' group and every projector's group, each
partition with lag 0."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from events.chat import ChatMessageSubmitted
from events.codec import EventCodec
from events.viewers import ViewerHeartbeat
from infra.kafka import EventPublisher, TopicAdmin, TopicNames
from infra.settings import REPO_ROOT, Settings
from projections.projector import group_id
from projections.service import build_stores
from stream_processors.topology import PRESENCE_GROUP, app_id, internal_topics
from tests.integration.projections_support import read_model, redis_space, running_service, unique_schema
from tests.integration.test_lifecycle import WorkerProcess
from tests.integration.test_rebuild_support import STREAMS, match_session, wait_applied
from tests.unit.event_samples import sample_event

pytestmark = pytest.mark.integration

KAFKA_TOOL = REPO_ROOT / "infra" / "kafka-tool"
DRAIN_TIMEOUT_S = 120.0
Lags = dict[str, list[tuple[str, str, str, str]]]  # group -> (topic:partition, current, end, lag)


def describe_all_groups(bootstrap: str, prefix: str) -> Lags:
    """The groups of this test's namespace as ``kafka-consumer-groups --describe --all-groups`` shows them."""
    done = subprocess.run(
        [str(KAFKA_TOOL), "consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--all-groups"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    groups: Lags = defaultdict(list)
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0].startswith(prefix) and fields[2].isdigit():
            group, topic, partition, current, end, lag = fields[:6]
            groups[group].append((f"{topic}:{partition}", current, end, lag))
    return dict(groups)


def lagging(groups: Lags) -> dict[str, list[tuple[str, str, str, str]]]:
    """Partitions not drained: a lag other than 0 ("-" is fine only where the log is empty).

    Faust's table changelogs are left out: they are assigned to the agents' group for recovery and
    standby replicas, which read them by seeking, never committing, so their lag is always "-".
    """
    return {
        group: bad
        for group, rows in groups.items()
        if (
            bad := [
                row
                for row in rows
                if not row[0].rsplit(":", 1)[0].endswith("-changelog")
                and not (row[3] == "0" or (row[3] == "-" and row[2] == "0"))
            ]
        )
    }


def agent_causes() -> list[ChatMessageSubmitted | ViewerHeartbeat]:
    """Work for the moderation and viewer-count agents on the session's streams."""
    chat = [
        sample_event(
            ChatMessageSubmitted,
            stream_id=stream,
            message_id=f"ops-{stream}-{n}",
            user_id=f"fan-{n}",
            text=f"hi {n}",
        )
        for stream in STREAMS
        for n in range(10)
    ]
    beats = [
        sample_event(ViewerHeartbeat, stream_id=stream, session_id=f"sess-{n}")
        for stream in STREAMS
        for n in range(10)
    ]
    return [*chat, *beats]  # type: ignore[list-item]


async def test_consumer_groups_of_agents_and_projectors_drain_to_lag_0(
    namespace: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    prefix = namespace.kafka.topic_prefix
    schema = unique_schema()
    worker = WorkerProcess(namespace, tmp_path / "faust", tmp_path / "worker.log")
    worker.start()
    try:
        async with (
            EventPublisher(namespace.kafka, codec, producer="tests.ops") as publisher,
            read_model(namespace, schema) as pool,
            redis_space(namespace) as (client, redis_prefix),
            running_service(namespace, schema, redis_prefix),
        ):
            await worker.wait_healthy(60)
            positions = await publisher.publish_many([*match_session(), *agent_causes()])
            await wait_applied(pool, client, schema=schema, prefix=redis_prefix, positions=positions)
            projectors = {
                group_id(namespace.kafka, s.name)
                for s in build_stores(pool, client, schema="x", redis_prefix="")
            }
            presence = TopicNames(prefix).physical(PRESENCE_GROUP)  # the viewers' own group
            wanted = {app_id(namespace.kafka), presence, *projectors}
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while True:
                groups = await asyncio.to_thread(
                    describe_all_groups, namespace.kafka.bootstrap_servers, prefix
                )
                if wanted <= set(groups) and not lagging(groups):
                    break
                assert time.monotonic() < deadline, (
                    f"missing {wanted - set(groups)}, lagging {lagging(groups)}\n{worker.log_tail()}"
                )
                await asyncio.sleep(1)
    finally:
        worker.kill()
        names = TopicNames(prefix)
        async with TopicAdmin(namespace.kafka) as admin:
            await admin.delete([names.physical(t.name) for t in internal_topics(1)])
    described = {group: len(rows) for group, rows in groups.items()}
    print(f"\ngroups with lag 0 on every partition: {described}")
    assert all(groups[g] for g in wanted)
