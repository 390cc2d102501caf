"""The API's Schema Registry read endpoints, checked with Confluent's own client and deserializer.

An ordinary Kafka consumer (confluent-kafka, librdkafka) reads a topic our publisher wrote and decodes
every record through the API acting as its schema registry, with no code of this project involved.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from events.codec import EventCodec, event_to_json
from events.topics import all_event_types, topic_for
from infra.kafka import EventPublisher, TopicNames
from infra.settings import Settings
from tests.integration.test_api_support import running_api
from tests.ports import free_port
from tests.unit.event_samples import sample_event

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry_url(settings: Settings) -> Iterator[str]:
    port = free_port()
    with running_api(port):
        yield f"http://127.0.0.1:{port}"


def test_registry_endpoints_answer_like_a_schema_registry(registry_url: str, codec: EventCodec) -> None:
    subjects = httpx.get(f"{registry_url}/subjects").json()
    assert subjects == codec.subjects()
    subject = codec.subject_for("StreamWentLive")
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").json() == [1, 2, 3]
    latest = httpx.get(f"{registry_url}/subjects/{subject}/versions/latest")
    assert latest.headers["content-type"].startswith("application/vnd.schemaregistry.v1+json")
    assert latest.json()["version"] == 3 and latest.json()["id"] == codec.schema_id(subject, 3)
    assert httpx.get(f"{registry_url}/subjects/nope/versions").json()["error_code"] == 40401
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions/9").json()["error_code"] == 40402
    assert httpx.get(f"{registry_url}/schemas/ids/999999").json()["error_code"] == 40403


async def test_confluent_deserializer_decodes_every_event_type_through_the_api(
    namespace: Settings, codec: EventCodec, registry_url: str
) -> None:
    events = [sample_event(cls) for cls in all_event_types()]
    async with EventPublisher(namespace.kafka, codec, producer="tests") as publisher:
        await publisher.publish_many(events)
    names = TopicNames(namespace.kafka.topic_prefix)
    consumer = Consumer(
        {
            "bootstrap.servers": namespace.kafka.bootstrap_servers,
            "group.id": f"{namespace.kafka.topic_prefix}confluent-reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(sorted({names.physical(topic_for(e).name) for e in events}))
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    decoded: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + 60
    try:
        while len(decoded) < len(events) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            record = deserialize(message.value(), SerializationContext(message.topic(), MessageField.VALUE))
            decoded[str(record["event_id"])] = record
    finally:
        consumer.close()
    assert len(decoded) == len(events)
    for event in events:
        ours = event_to_json(event)
        theirs = decoded[str(event.event_id)]
        # Same field names and the same plain values (strings, numbers) as our own decoding.
        assert set(theirs) == set(ours) - {"event_type"}
        assert theirs["producer"] == ours["producer"] and theirs["trace_id"] == ours["trace_id"]
