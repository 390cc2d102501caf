"""The node's metrics for ``/metrics`` and ``/health``: plain counters bumped inline on the event loop,
latency histograms, and the lag of the node's Kafka reader; every series labelled with the node."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infra.metrics import LATENCY_BUCKETS, ConsumerLag, render, service_registry

LIVE_WINDOW_S = 60.0  # an event older than this when written to clients was backfilled, not delivered live
# attribute -> (Prometheus name, kind, help); a counter's name gets `_total` from the client library
_SERIES = {
    "connections": ("esports_edge_connections", "gauge", "Open websocket connections."),
    "connections_total": (
        "esports_edge_connections_accepted",
        "counter",
        "Websocket connections accepted since start.",
    ),
    "subscriptions": (
        "esports_edge_subscriptions",
        "gauge",
        "Stream subscriptions held by open connections.",
    ),
    "deliveries": (
        "esports_edge_deliveries",
        "counter",
        "Messages written to subscribers (one per subscriber per message).",
    ),
    "drops": ("esports_edge_drops", "counter", "Connections dropped as slow consumers (close 1013)."),
    "consumed": ("esports_edge_consumed", "counter", "Events read from Kafka by the node's reader."),
    "published": (
        "esports_edge_published",
        "counter",
        "Events published to Kafka (chat, moderation, votes), heartbeats one per beat.",
    ),
    "client_errors": ("esports_edge_client_errors", "counter", "Client frames answered with an error."),
    "rate_limited": (
        "esports_edge_rate_limited",
        "counter",
        "Client frames refused by the per-connection rate limit.",
    ),
    "refused_handshakes": (
        "esports_edge_refused_handshakes",
        "counter",
        "Handshakes refused (origin, token, per-IP cap, draining).",
    ),
    "reloads": (
        "esports_edge_reloads",
        "counter",
        "Resumes the history window no longer covered (notice reload).",
    ),
    "paused": (
        "esports_edge_paused",
        "gauge",
        "1 while sending is paused (Kafka unreachable: writes refused), else 0.",
    ),
    "pauses": ("esports_edge_pauses", "counter", "Times sending was paused since start."),
}


@dataclass(slots=True)
class Metrics:
    """The node's counters (plain ints: one thread, no locks), histograms and reader lag."""

    connections: int = 0
    connections_total: int = 0
    subscriptions: int = 0
    deliveries: int = 0
    drops: int = 0
    consumed: int = 0
    published: int = 0
    client_errors: int = 0
    rate_limited: int = 0
    refused_handshakes: int = 0
    reloads: int = 0
    paused: int = 0
    pauses: int = 0
    registry: CollectorRegistry = field(init=False, repr=False, compare=False)
    lag: ConsumerLag = field(init=False, repr=False, compare=False)  # the node's reader registers here
    delivery_latency: Histogram = field(init=False, repr=False, compare=False)
    command_duration: Histogram = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.lag = ConsumerLag()
        self.registry = service_registry(_Counters(self), self.lag)
        self.delivery_latency = Histogram(
            "esports_edge_delivery_latency_seconds",
            "From an event's record timestamp (its publish) to its write to this node's subscribers.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.command_duration = Histogram(
            "esports_edge_command_duration_seconds",
            "Time to handle a client frame, by command (chat, vote and mod wait for Kafka's ack).",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def as_dict(self) -> dict[str, int]:
        """The counters (for /health)."""
        return {name: getattr(self, name) for name in _SERIES}

    def delivered(self, timestamps_ms: Iterable[int]) -> None:
        """Events with these record timestamps were just written to their subscribers. Records older
        than :data:`LIVE_WINDOW_S` are a warm start's backfill, not a live delivery: not observed."""
        now_ms = time.time() * 1000
        for timestamp_ms in timestamps_ms:
            age_s = max(0.0, now_ms - timestamp_ms) / 1000
            if age_s <= LIVE_WINDOW_S:
                self.delivery_latency.observe(age_s)

    def prometheus(self, node_id: str, worker: int | None = None) -> str:
        """The text exposition of every series, labelled ``node=node_id`` (and ``worker``, the
        process's index, on a node of several worker processes)."""
        labels = {"node": node_id} if worker is None else {"node": node_id, "worker": str(worker)}
        body, _content_type = render(_Labelled(self.registry, labels))
        return body.decode()


class _Counters(Collector):
    """The counters and gauges, read from the plain ints at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for attribute, (name, kind, help_text) in _SERIES.items():
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, help_text, value=getattr(self._metrics, attribute))


class _Labelled(Collector):
    """Another collector's series with constant labels added (the client library has no such option)."""

    def __init__(self, inner: Collector, labels: dict[str, str]) -> None:
        self._inner = inner
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [s._replace(labels={**self._labels, **s.labels}) for s in family.samples]
            yield labelled
