"""The event backbone against the real broker: round trips, dead letters, the catalogue, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer

from events.base import Event
from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.topics import CATALOGUE, Topic, spec, topic_for
from infra.kafka import ConsumedEvent, DeadLetters, EventConsumer, EventPublisher, TopicNames
from infra.settings import REPO_ROOT, Settings
from tests.unit.event_samples import all_event_types, sample_event

pytestmark = pytest.mark.integration


async def consume(
    settings: Settings, codec: EventCodec, topics: list[str], expected: int, dead: DeadLetters
) -> list[ConsumedEvent]:
    """Read `expected` events from the beginning of `topics` (fails if they do not arrive in time)."""
    got: list[ConsumedEvent] = []
    consumer = EventConsumer(
        settings.kafka, codec, topics=topics, group_id=None, dead_letters=dead, from_beginning=True
    )
    async with consumer:
        empty_fetches = 0
        async for batch in consumer.batches(timeout_ms=500):
            got.extend(batch)
            empty_fetches = 0 if batch else empty_fetches + 1
            if len(got) >= expected or empty_fetches > 30:
                break
    return got


async def test_every_event_type_round_trips_through_the_broker(
    namespace: Settings, codec: EventCodec
) -> None:
    events = [sample_event(cls) for cls in all_event_types()]
    async with EventPublisher(namespace.kafka, codec, producer="tests") as publisher:
        positions = await publisher.publish_many(events)
        dead = DeadLetters(publisher, TopicNames(namespace.kafka.topic_prefix).physical("deadletter"))
        topics = sorted({topic_for(e).name for e in events})
        got = await consume(namespace, codec, topics, len(events), dead)

    by_id = {c.event.event_id: c for c in got}
    assert len(got) == len(events) == len(by_id)
    for event, position in zip(events, positions, strict=True):
        consumed = by_id[event.event_id]
        assert consumed.event == event
        assert consumed.position == position
        assert position.topic == topic_for(event).name
        assert dict(consumed.headers)["event_type"] == event.event_type().encode()
    assert dead.count == 0


def _framed(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


async def test_poison_records_go_to_the_dead_letter_topic_and_nothing_valid_is_lost(
    namespace: Settings, codec: EventCodec
) -> None:
    valid = [sample_event(cls) for cls in all_event_types() if topic_for(cls).name == "streams"]
    good_value = codec.encode(valid[0])
    max_id = max(codec.schema_id(s, v) for s in codec.subjects() for v in codec.versions(s))
    poison = {
        "bad_magic_byte": b"\x01" + good_value[1:],
        "unknown_schema_id": _framed(max_id + 1000, good_value[5:]),
        "truncated": good_value[: len(good_value) // 2],
        "too_short": b"\x00\x00",
        "tombstone": None,
    }
    names = TopicNames(namespace.kafka.topic_prefix)
    streams_topic = names.physical("streams")
    async with EventPublisher(namespace.kafka, codec, producer="tests") as publisher:
        # valid, poison, valid, poison... all on one partition (same key) so order is checkable
        key = b"stream-poison"
        sent: list[Event] = []
        for index, (reason, value) in enumerate(poison.items()):
            event = valid[index % len(valid)]
            await publisher.publish_raw(
                streams_topic, codec.encode(event), key=key, headers=codec.headers(event)
            )
            sent.append(event)
            await publisher.publish_raw(streams_topic, value, key=key, headers=[("note", reason.encode())])
        dead = DeadLetters(publisher, names.physical("deadletter"))
        got = await consume(namespace, codec, ["streams"], len(sent), dead)
        assert [c.event for c in got] == sent
        assert dead.count == len(poison)

    # Dead letters are not events: read them raw to check their headers.
    reader = AIOKafkaConsumer(
        names.physical("deadletter"),
        bootstrap_servers=namespace.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    async with reader:
        records = []
        for _ in range(30):
            if len(records) >= len(poison):
                break
            fetched = await reader.getmany(timeout_ms=1000)
            records.extend(r for rs in fetched.values() for r in rs)
    reasons = Counter(dict(r.headers)["dlq.reason"].decode() for r in records)
    assert reasons == Counter(poison.keys())
    for record in records:
        headers = dict(record.headers)
        assert headers["dlq.topic"] == streams_topic.encode()
        assert headers["note"].decode() == headers["dlq.reason"].decode()  # original headers kept
        assert record.value == poison[headers["dlq.reason"].decode()]


def test_kcat_lists_every_catalogue_topic_with_its_partitions(settings: Settings) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is installed by `make install` (Debian package kcat)"
    out = subprocess.run(
        [kcat, "-b", settings.kafka.bootstrap_servers, "-L", "-J"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    topics = {t["topic"]: len(t["partitions"]) for t in json.loads(out)["topics"]}
    names = TopicNames(settings.kafka.topic_prefix)
    for topic in CATALOGUE:
        expected = topic.partitions or settings.kafka.default_partitions
        assert topics.get(names.physical(topic.name)) == expected, topic.name


def _esports(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


async def test_tail_prints_decoded_events_as_json_lines(namespace: Settings, codec: EventCodec) -> None:
    events = [sample_event(cls) for cls in all_event_types() if topic_for(cls).name == "tournaments"]
    async with EventPublisher(namespace.kafka, codec, producer="tests") as publisher:
        await publisher.publish_many(events)
    env = {"ESPORTS_KAFKA__TOPIC_PREFIX": namespace.kafka.topic_prefix}
    done = _esports("tail", "tournaments", "--from-beginning", "--max", str(len(events)), env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(line["event"]["event_id"] for line in lines) == sorted(str(e.event_id) for e in events)
    assert {line["event"]["event_type"] for line in lines} == {e.event_type() for e in events}


def test_cli_errors_are_clear_and_exit_non_zero() -> None:
    done = _esports("tail", "no-such-topic")
    assert done.returncode == 1
    assert "unknown topic 'no-such-topic'" in done.stderr
    assert _esports("--help").returncode == 0
    assert _esports("frobnicate").returncode == 2


def test_topics_list_shows_the_catalogue(settings: Settings) -> None:
    done = _esports("topics", "list")
    assert done.returncode == 0, done.stdout + done.stderr
    for topic in CATALOGUE:
        assert spec(topic.name).name in done.stdout


def test_created_topics_carry_replication_and_min_insync_replicas(namespace: Settings) -> None:
    """As Kafka's own kafka-topics --describe shows them: the deployment's replication factor and
    min.insync.replicas (replication - 1, at least 1) on every catalogue topic."""
    kafka = namespace.kafka
    topic = TopicNames(kafka.topic_prefix).physical("chat.messages")
    tool = [str(REPO_ROOT / "infra" / "kafka-tool"), "topics", "--bootstrap-server", kafka.bootstrap_servers]
    result = subprocess.run(
        [*tool, "--describe", "--topic", topic], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[0]
    assert f"ReplicationFactor: {kafka.replication}" in summary, summary
    assert f"min.insync.replicas={kafka.min_insync}" in summary and "retention.ms=-1" in summary, summary


async def test_a_large_publish_many_is_batched_here_and_every_position_is_its_events(
    namespace: Settings, codec: EventCodec
) -> None:
    """Batches built by the publisher (small ones, so each partition gets several) hold the records in the
    caller's order; a record larger than a whole batch goes on its own; every position is right."""
    small_batches = namespace.kafka.model_copy(update={"max_batch_size": 4096})
    template = sample_event(ChatMessageAccepted)
    events = [
        dataclasses.replace(
            template,
            event_id=uuid.uuid4(),
            message_id=f"m{i}",
            stream_id=f"stream-{i % 5}",
            text="x" * (6000 if i % 50 == 7 else 40),
        )
        for i in range(300)
    ]
    async with EventPublisher(small_batches, codec, producer="tests") as publisher:
        positions = await publisher.publish_many(events)
        few = await publisher.publish_many(events[:3])  # below OWN_BATCHES_FROM: a record at a time
        dead = DeadLetters(publisher, TopicNames(namespace.kafka.topic_prefix).physical("deadletter"))
        got = await consume(namespace, codec, [Topic.CHAT_MESSAGES], len(events) + 3, dead)

    at = {c.position: c.event for c in got}
    assert len(at) == len(events) + 3
    assert [at[p] for p in positions] == events
    assert [at[p] for p in few] == events[:3]
    per_partition: dict[int, list[int]] = {}
    for position in positions:
        per_partition.setdefault(position.partition, []).append(position.offset)
    assert len(per_partition) > 1
    for offsets in per_partition.values():  # the caller's order within each partition
        assert offsets == sorted(offsets)
