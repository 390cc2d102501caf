"""Prometheus exposition: the consumer-lag gauge, and the histograms every service's /metrics shows."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import httpx
from faust.types import TP

from infra.metrics import ConsumerLag, render, service_registry
from infra.settings import IngestSettings
from ingest_workers.control import IngestControl, create_hook_app
from producers.metrics import ApiMetrics
from stream_processors.metrics import AppLag, ProcessingSensor, ProcessorMetrics


class Behind:
    def __init__(self, group_id: str | None, lags: Mapping[tuple[str, int], int]) -> None:
        self._group_id = group_id
        self._lags = lags

    @property
    def group_id(self) -> str | None:
        return self._group_id

    def lags(self) -> Mapping[tuple[str, int], int]:
        return self._lags


class Stopping(Behind):
    def lags(self) -> Mapping[tuple[str, int], int]:
        raise RuntimeError("consumer stopped")


def exposition(lag: ConsumerLag) -> str:
    return render(service_registry(lag))[0].decode()


def test_lag_is_one_gauge_per_group_topic_and_partition() -> None:
    lag = ConsumerLag()
    projector = Behind("projector.pg.catalog", {("users", 1): 5, ("users", 0): 0})
    lag.register(projector)
    lag.register(Behind(None, {("chat.messages", 2): 3}))
    lag.register(Stopping("gone", {("users", 0): 1}))  # left out, the rest still shown
    text = exposition(lag)
    assert "# TYPE kafka_consumer_lag gauge" in text
    assert 'kafka_consumer_lag{group="projector.pg.catalog",partition="1",topic="users"} 5.0' in text
    assert 'kafka_consumer_lag{group="projector.pg.catalog",partition="0",topic="users"} 0.0' in text
    assert 'kafka_consumer_lag{group="",partition="2",topic="chat.messages"} 3.0' in text
    assert 'group="gone"' not in text
    lag.unregister(projector)
    assert "projector.pg.catalog" not in exposition(lag)


def test_processor_histograms_are_observed_when_every_agent_acked() -> None:
    metrics = ProcessorMetrics()
    sensor = ProcessingSensor(metrics, "polls")
    message = SimpleNamespace(time_in=time.monotonic() - 0.003, timestamp=time.time() - 2.0)
    sensor.on_message_out(TP("polls", 0), 7, message)  # type: ignore[arg-type]
    text = render(metrics.registry)[0].decode()
    assert 'esports_processor_event_seconds_bucket{family="polls",le="0.0025",topic="polls"} 0.0' in text
    assert 'esports_processor_event_seconds_bucket{family="polls",le="0.25",topic="polls"} 1.0' in text
    assert 'esports_processor_event_age_seconds_bucket{family="polls",le="1.0",topic="polls"} 0.0' in text
    assert 'esports_processor_event_age_seconds_bucket{family="polls",le="5.0",topic="polls"} 1.0' in text
    assert "esports_poll_votes_total 0.0" in text  # the counters beside them


def test_the_faust_app_lag_is_highwater_minus_the_next_offset_read() -> None:
    read, unread, revoked = TP("streams", 0), TP("streams", 1), TP("streams", 2)
    highwaters: dict[Any, int | None] = {read: 10, unread: None}
    app = SimpleNamespace(
        conf=SimpleNamespace(id="esports-processors-polls"),
        consumer=SimpleNamespace(assignment=lambda: {read, unread}, highwater=highwaters.get),
        monitor=SimpleNamespace(tp_read_offsets={read: 6, revoked: 1}),
    )
    lag = AppLag(app)  # type: ignore[arg-type]
    assert lag.group_id == "esports-processors-polls"
    assert lag.lags() == {("streams", 0): 3}  # offsets 7, 8 and 9 not handed to the agents yet


def test_api_request_durations_are_a_histogram() -> None:
    metrics = ApiMetrics()
    metrics.latency.labels("GET", "/health").observe(0.002)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    assert b'api_request_duration_seconds_bucket{le="0.0025",method="GET",route="/health"} 1.0' in body


async def test_ingest_hooks_are_timed() -> None:
    settings = IngestSettings()
    control = IngestControl(settings, sink=None)  # type: ignore[arg-type]  # no session is started
    app = create_hook_app(settings, control, authorizer=None)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hooks") as client:
        refused = await client.post("/hooks/rtmp/publish", data={"name": "key"})  # not from loopback
        text = (await client.get("/metrics")).text
    assert refused.status_code == 403
    assert 'ingest_hook_duration_seconds_bucket{hook="publish",le="+Inf"} 1.0' in text
    assert 'ingest_hook_duration_seconds_count{hook="publish"} 1.0' in text


def test_edge_delivery_latency_counts_live_deliveries_not_a_warm_starts_backfill() -> None:
    from edge_ws.metrics import LIVE_WINDOW_S, Metrics

    metrics = Metrics()
    now_ms = time.time() * 1000
    metrics.delivered([now_ms - 250, now_ms - (LIVE_WINDOW_S + 60) * 1000])
    text = metrics.prometheus("n1")
    assert 'esports_edge_delivery_latency_seconds_count{node="n1"} 1.0' in text
    assert 'esports_edge_delivery_latency_seconds_bucket{le="0.1",node="n1"} 0.0' in text
