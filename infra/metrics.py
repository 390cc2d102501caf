"""Prometheus, the one way every service exposes ``/metrics``: a registry per service, its text
exposition, the buckets of latency histograms, and the consumer-lag gauge.

Each service builds its own :class:`CollectorRegistry` (never the library's global default: tests
run several services in one process). Counters a hot loop bumps as plain ints stay plain ints and
are read by a custom collector at scrape time; latencies are ``prometheus_client`` histograms.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS", "ConsumerLag", "LagSource", "render", "service_registry"]

log = logging.getLogger(__name__)

# Seconds, from a millisecond store or broadcast to the minute an event may wait behind an outage.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def service_registry(*collectors: Collector) -> CollectorRegistry:
    """A fresh registry for one service, with ``collectors`` (custom ones, read at scrape time)."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def render(registry: Collector) -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics``."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


class LagSource(Protocol):
    """A consumer that knows how far behind it is (``infra.kafka.EventConsumer`` is one)."""

    @property
    def group_id(self) -> str | None: ...

    def lags(self) -> Mapping[tuple[str, int], int]:
        """(physical topic, partition) -> records between the next one handed out and the end."""
        ...


class ConsumerLag(Collector):
    """``kafka_consumer_lag{group,topic,partition}``, asked of every registered consumer at scrape time.

    A consumer without a group (an edge node reads every partition itself) is shown with ``group=""``.
    """

    def __init__(self) -> None:
        self._sources: list[LagSource] = []

    def register(self, source: LagSource) -> None:
        self._sources.append(source)

    def unregister(self, source: LagSource) -> None:
        if source in self._sources:
            self._sources.remove(source)

    def describe(self) -> Iterable[Metric]:
        return [_lag_family()]

    def collect(self) -> Iterator[Metric]:
        family = _lag_family()
        for source in list(self._sources):
            group = source.group_id or ""
            for (topic, partition), behind in sorted(_lags_of(source).items()):
                family.add_metric([group, topic, str(partition)], behind)
        yield family


def _lag_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "kafka_consumer_lag",
        "Records behind the end of the partition (the end as last fetched), per consumer group.",
        labels=["group", "topic", "partition"],
    )


def _lags_of(source: LagSource) -> Mapping[tuple[str, int], int]:
    try:
        return source.lags()
    except Exception as e:  # a consumer stopping or rebalancing right now: left out of this scrape
        log.debug("no lag from group %s this scrape: %r", source.group_id, e)
        return {}
