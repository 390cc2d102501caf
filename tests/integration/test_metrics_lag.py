"""``kafka_consumer_lag`` against the real broker: a consumer N records behind shows N for its partition,
and an edge node's /metrics shows its reader's lag beside its histograms."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid

import pytest

from events.codec import EventCodec
from events.topics import Topic
from events.users import UserRegistered
from infra.kafka import EventConsumer, EventPublisher, LoggedDeadLetters, TopicNames
from infra.metrics import ConsumerLag, render, service_registry
from infra.settings import Settings
from tests.integration.test_edge_support import edge_settings, running_node
from tests.unit.event_samples import sample_event

pytestmark = pytest.mark.integration

RECORDS = 10


async def publish_users(settings: Settings, codec: EventCodec, partition: int, count: int) -> str:
    topic = TopicNames(settings.kafka.topic_prefix).physical(Topic.USERS)
    async with EventPublisher(settings.kafka, codec, producer="tests") as publisher:
        for _ in range(count):
            event = sample_event(UserRegistered)
            await publisher.publish_raw(
                topic, codec.encode(event), headers=codec.headers(event), partition=partition
            )
    return topic


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def lag_line(text: str, group: str, topic: str, partition: int) -> str | None:
    start = f'kafka_consumer_lag{{group="{group}",partition="{partition}",topic="{topic}"}} '
    return next((line for line in text.splitlines() if line.startswith(start)), None)


async def test_a_consumer_n_records_behind_shows_n(namespace: Settings, codec: EventCodec) -> None:
    topic = await publish_users(namespace, codec, partition=0, count=RECORDS)
    group = f"test-metrics-lag-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        namespace.kafka,
        codec,
        topics=[Topic.USERS],
        group_id=group,
        dead_letters=LoggedDeadLetters("test"),
        from_beginning=True,
        max_records=4,
    )
    lag = ConsumerLag()
    registry = service_registry(lag)
    lag.register(consumer)
    handed_out = 0
    async with consumer:
        async for batch in consumer.batches(timeout_ms=500):
            handed_out += len(batch)
            if batch:
                break
        text = render(registry)[0].decode()
    behind = RECORDS - handed_out
    assert 0 < handed_out <= 4 and behind >= RECORDS - 4
    assert (
        lag_line(text, group, topic, 0)
        == f'kafka_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} {behind}.0'
    )


async def test_an_edge_node_shows_its_readers_lag(namespace: Settings, codec: EventCodec) -> None:
    settings = edge_settings(namespace)
    async with running_node(settings, codec) as node:
        url = f"http://127.0.0.1:{node.port}/metrics"
        deadline = time.monotonic() + 15
        while True:
            text = await asyncio.to_thread(scrape, url)
            lags = [line for line in text.splitlines() if line.startswith('kafka_consumer_lag{group="",')]
            if lags or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert lags, text
    assert all(f'node="{node.node_id}"' in line and line.endswith(" 0.0") for line in lags), lags
    assert f'esports_edge_delivery_latency_seconds_bucket{{le="+Inf",node="{node.node_id}"}}' in text
