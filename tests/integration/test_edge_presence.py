"""An edge node's heartbeats on ``viewers.presence``, against the real Kafka (3 partitions a topic).

Thirty clients watch one stream and send a heartbeat each, twice; each time every session must come
back exactly once, in a ViewerPresenceBatch on the partition its session hashes to (the one its
shard_key, the record's key, hashes to), with at most one record per partition per flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from edge_ws.commands import PRODUCER
from edge_ws.node import EdgeNode
from events.codec import EventCodec
from events.viewers import ViewerPresenceBatch
from infra.kafka import ConsumedEvent, DeadLetters, EventConsumer, TopicNames, partition_of_key
from infra.settings import Settings
from tests.integration.test_edge import token
from tests.integration.test_edge_support import Client, edge_settings, running_node

pytestmark = pytest.mark.integration

CLIENTS = 30
FLUSH_S = 0.5


@contextlib.asynccontextmanager
async def presence_log(node: EdgeNode, codec: EventCodec) -> AsyncIterator[EventConsumer]:
    """``viewers.presence`` read from its beginning, outside any consumer group."""
    settings = node.settings
    consumer = EventConsumer(
        settings.kafka,
        codec,
        topics=["viewers.presence"],
        group_id=None,
        dead_letters=DeadLetters(
            node.publisher, TopicNames(settings.kafka.topic_prefix).physical("deadletter")
        ),
        from_beginning=True,
    )
    async with consumer:
        yield consumer


async def next_beats(
    presence: EventConsumer, wanted: int, settle_s: float, timeout_s: float = 20.0
) -> list[ConsumedEvent]:
    """The next records until ``wanted`` beats have come, then whatever more comes within ``settle_s``."""
    records: list[ConsumedEvent] = []
    deadline, settled = time.monotonic() + timeout_s, None
    async for batch in presence.batches(timeout_ms=100):
        records += batch
        now = time.monotonic()
        if settled is None and sum(len(_batch(r).beats) for r in records) >= wanted:
            settled = now + settle_s
        if now > deadline or (settled is not None and now > settled):
            return records
    raise AssertionError("unreachable")


def _batch(record: ConsumedEvent) -> ViewerPresenceBatch:
    assert isinstance(record.event, ViewerPresenceBatch)
    return record.event


def assert_partitioned(records: list[ConsumedEvent], partitions: int, node: EdgeNode) -> None:
    """Each record keyed by its shard_key, on its sessions' partition; one record per partition per
    flush (a flush's records share the moment its beats were seen)."""
    flushes: dict[datetime, list[int]] = defaultdict(list)
    for record in records:
        batch = _batch(record)
        assert record.key == batch.shard_key.encode()
        assert batch.shard_key in {b.session_id for b in batch.beats}
        homes = {partition_of_key(b.session_id.encode(), partitions) for b in batch.beats}
        assert homes == {record.position.partition}, (batch.shard_key, homes, record.position)
        assert (batch.edge_id, batch.producer) == (node.node_id, PRODUCER)
        flushes[batch.occurred_at].append(record.position.partition)
    assert all(len(set(ps)) == len(ps) for ps in flushes.values()), flushes


async def test_heartbeats_are_batched_per_session_partition_each_session_once_a_flush(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace, heartbeat_flush_s=FLUSH_S)
    stream = f"s-{uuid.uuid4().hex[:8]}"
    async with running_node(settings, codec) as node, presence_log(node, codec) as presence:
        partitions = await node.publisher.partitions_of(ViewerPresenceBatch)
        assert partitions == 3
        signed_in = {"additional_headers": {"Authorization": f"Bearer {token(settings, 'u-7')}"}}
        clients = [await Client.open(node.port, **(signed_in if i == 7 else {})) for i in range(CLIENTS)]
        await asyncio.gather(*(c.subscribe(stream) for c in clients))
        users = {s.session_id: s.identity.user_id if s.identity else None for s in node.sessions}
        assert len(users) == CLIENTS and list(users.values()).count("u-7") == 1

        for round_ in (1, 2):  # the second flush after the first: the node forgot none of them
            await asyncio.gather(*(c.send(type="heartbeat", stream=stream) for c in clients))
            records = await next_beats(presence, CLIENTS, settle_s=3 * FLUSH_S)
            beats = [(b.stream_id, b.session_id, b.user_id) for r in records for b in _batch(r).beats]
            assert Counter(beats) == Counter((stream, s, u) for s, u in users.items()), round_
            assert_partitioned(records, partitions, node)
            assert {r.position.partition for r in records} == {
                partition_of_key(s.encode(), partitions) for s in users
            }
        assert node.metrics.published == 2 * CLIENTS  # heartbeats, not records

        for client in clients:
            await client.close()
