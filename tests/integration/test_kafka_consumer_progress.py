"""How far an EventConsumer has read, against the real broker: its lag per partition (what the metrics
scrape) and a catch-up with the end offsets of one moment (what every whole-topic reader waits for)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from events.codec import EventCodec
from events.topics import Topic
from events.users import UserRegistered
from infra.kafka import ConsumedEvent, EventConsumer, EventPublisher, LoggedDeadLetters, TopicNames
from infra.settings import Settings
from tests.unit.event_samples import sample_event

pytestmark = pytest.mark.integration


async def publish(settings: Settings, codec: EventCodec, per_partition: dict[int, int]) -> None:
    """``count`` users on each given partition of ``users``."""
    topic = TopicNames(settings.kafka.topic_prefix).physical(Topic.USERS)
    async with EventPublisher(settings.kafka, codec, producer="tests") as publisher:
        for partition, count in per_partition.items():
            for _ in range(count):
                event = sample_event(UserRegistered)
                value, headers = codec.encode(event), codec.headers(event)
                await publisher.publish_raw(topic, value, headers=headers, partition=partition)


def reader(settings: Settings, codec: EventCodec, group_id: str | None, max_records: int) -> EventConsumer:
    return EventConsumer(
        settings.kafka,
        codec,
        topics=[Topic.USERS],
        group_id=group_id,
        dead_letters=LoggedDeadLetters("test"),
        from_beginning=True,
        max_records=max_records,
    )


async def test_lags_count_the_records_behind_the_end(namespace: Settings, codec: EventCodec) -> None:
    await publish(namespace, codec, {0: 10})
    topic = TopicNames(namespace.kafka.topic_prefix).physical(Topic.USERS)
    group = f"test-lag-{uuid.uuid4().hex[:8]}"
    consumer = reader(namespace, codec, group, max_records=4)
    assert consumer.group_id == group
    got: list[ConsumedEvent] = []
    lags: list[tuple[int, int]] = []  # (records handed out, lag of partition 0) after each batch
    async with consumer:
        assert consumer.lags() == {}  # nothing fetched yet: no highwater known
        async for batch in consumer.batches(timeout_ms=500):
            got.extend(batch)
            if batch:
                lags.append((len(got), consumer.lags()[(topic, 0)]))
            if len(got) >= 10:
                break
        assert set(consumer.lags()) <= {(topic, p) for p in range(3)}
        assert all(lag == 0 for lag in consumer.lags().values())
    assert len(got) == 10 and len(lags) >= 3  # at most 4 records a batch
    assert all(lag == 10 - handed_out for handed_out, lag in lags)


async def test_a_reader_reaches_the_end_offsets_of_a_moment(namespace: Settings, codec: EventCodec) -> None:
    await publish(namespace, codec, {0: 12, 1: 5})
    consumer = reader(namespace, codec, None, max_records=3)
    got: list[ConsumedEvent] = []

    async def follow() -> None:
        async for batch in consumer.batches(timeout_ms=200):
            got.extend(batch)
            await asyncio.sleep(0.01)  # a caller that takes its time with every batch

    async with consumer:
        mark = await consumer.catch_up()
        assert sorted((tp.partition, end) for tp, end in mark.ends.items()) == [(0, 12), (1, 5), (2, 0)]
        following = asyncio.create_task(follow())
        try:
            await asyncio.wait_for(consumer.reach(mark), 15)
            assert len(got) == 17  # every record below the ends, taken by the caller
            await publish(namespace, codec, {2: 2})
            later = await consumer.catch_up()
            await asyncio.wait_for(consumer.reach(later), 15)
            assert len(got) == 19
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)


async def test_a_wait_for_the_end_fails_when_the_reader_stops(namespace: Settings, codec: EventCodec) -> None:
    await publish(namespace, codec, {0: 3})
    consumer = reader(namespace, codec, None, max_records=3)
    await consumer.start()
    mark = await consumer.catch_up()  # nobody reads: it is never reached
    waiting = asyncio.create_task(consumer.reach(mark))
    await asyncio.sleep(0.05)
    await consumer.stop()
    with pytest.raises(RuntimeError, match="stopped before catching up"):
        await asyncio.wait_for(waiting, 5)
