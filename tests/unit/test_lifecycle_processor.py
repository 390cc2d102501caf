"""The lifecycle agent's loop with fakes: publish before store, retry, dead letters, metrics text."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from events.base import Event
from events.codec import EventCodec
from events.ingest import IngestConnected, IngestProtocol, SegmentPublished
from events.streams import StreamCreated, StreamWentLive
from infra.kafka import BrokerUnavailable
from infra.metrics import render
from schemas import SCHEMAS_DIR
from stream_processors import runtime as runtime_module
from stream_processors.lifecycle.agent import LifecycleProcessor
from stream_processors.lifecycle.decisions import StreamLifecycle, StreamState
from stream_processors.metrics import ProcessorMetrics
from tests.unit.event_samples import sample_event

CODEC = EventCodec.load(SCHEMAS_DIR)


class FakePublishing:
    """Stands in for DecisionPublisher: records what is published and what the table held then."""

    def __init__(self, table: dict[bytes, Any], failures: int = 0) -> None:
        self.table = table
        self.failures = failures
        self.published: list[tuple[Event, Any]] = []
        self.dead: list[tuple[str, bytes | None]] = []
        self.publisher = self
        self.dead_letters = self

    async def publish_many(self, events: list[Event]) -> None:
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailable("down")
        self.published.extend((e, dict(self.table)) for e in events)

    async def send(self, record: Any, reason: str, detail: str) -> None:
        self.dead.append((reason, record.value))


def message(value: bytes | None, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        topic="ingest",
        partition=0,
        offset=offset,
        key=b"stream-1",
        value=value,
        headers=[("event_type", b"x")],
        timestamp=1.5,
        timestamp_type=0,
        serialized_key_size=8,
        serialized_value_size=len(value or b""),
    )


def processor(
    failures: int = 0,
) -> tuple[LifecycleProcessor, FakePublishing, dict[bytes, Any], ProcessorMetrics]:
    table: dict[bytes, Any] = {}
    publishing = FakePublishing(table, failures)
    metrics = ProcessorMetrics()
    return LifecycleProcessor(CODEC, publishing, table, metrics), publishing, table, metrics  # type: ignore[arg-type]


def created() -> StreamCreated:
    return StreamCreated(stream_id="stream-1", channel_id="chan-1", owner_id="u", title="t")


def connected() -> IngestConnected:
    return IngestConnected(stream_id="stream-1", session_id="s", protocol=IngestProtocol.RTMP, node="n")


async def test_a_decision_is_published_before_the_state_is_stored() -> None:
    loop, publishing, table, metrics = processor()
    await loop.handle(message(CODEC.encode(created())))
    await loop.handle(message(CODEC.encode(connected()), offset=1))
    [(went, table_then)] = publishing.published
    assert isinstance(went, StreamWentLive)
    assert StreamLifecycle.from_json(table_then[b"stream-1"]).state is StreamState.CREATED
    assert StreamLifecycle.from_json(table[b"stream-1"]).state is StreamState.LIVE
    assert metrics.decisions["StreamWentLive"] == 1 and metrics.events["IngestConnected"] == 1


async def test_a_connect_read_before_the_creation_is_stored_then_decided_at_the_creation() -> None:
    loop, publishing, table, metrics = processor()
    connect = connected()
    await loop.handle(message(CODEC.encode(connect)))
    assert publishing.published == []
    pending = StreamLifecycle.from_json(table[b"stream-1"])
    assert pending.state is StreamState.UNKNOWN and pending.pending_session == "s"
    await loop.handle(message(CODEC.encode(created()), offset=1))
    [(went, _table_then)] = publishing.published
    assert isinstance(went, StreamWentLive) and went.causation_id == str(connect.event_id)
    assert StreamLifecycle.from_json(table[b"stream-1"]).state is StreamState.LIVE
    assert metrics.decisions["StreamWentLive"] == 1


async def test_a_failing_publish_is_retried_until_it_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "RETRY_FIRST_S", 0.001)
    loop, publishing, _table, metrics = processor(failures=3)
    await loop.handle(message(CODEC.encode(created())))
    await loop.handle(message(CODEC.encode(connected()), offset=1))
    assert len(publishing.published) == 1 and metrics.publish_retries == 3
    assert not metrics.publishing_blocked


async def test_undecodable_records_are_dead_lettered_and_telemetry_is_skipped() -> None:
    loop, publishing, table, metrics = processor()
    await loop.handle(message(b"garbage"))
    await loop.handle(message(None))
    await loop.handle(message(CODEC.encode(sample_event(SegmentPublished, stream_id="stream-1"))))
    assert publishing.dead == [("bad_magic_byte", b"garbage"), ("tombstone", None)]
    assert metrics.dead_letters == {"bad_magic_byte": 1, "tombstone": 1}
    assert table == {} and publishing.published == []


def test_metrics_render_as_prometheus_text() -> None:
    metrics = ProcessorMetrics()
    metrics.decisions["StreamWentLive"] += 2
    metrics.dead_letters['we"ird'] += 1
    text = render(metrics.registry)[0].decode()
    assert "# TYPE esports_lifecycle_decisions_total counter" in text
    assert 'esports_lifecycle_decisions_total{kind="StreamWentLive"} 2.0' in text
    assert 'esports_processor_dead_letters_total{reason="we\\"ird"} 1.0' in text
    assert "esports_processor_publish_retries_total 0.0" in text
