"""The processor worker's metrics for ``/metrics``.

Counters live as plain ints and ``Counter`` s in one object the agents bump inline (one event loop, no
locks) and are read at scrape time. :class:`ProcessingSensor`, a Faust sensor, times every record from
its hand-over to the agents until all of them acked it, and says how old its event was then.
:class:`AppLag` gives the Faust app's consumer group to the ``kafka_consumer_lag`` gauge.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping

import faust
from faust.types import TP, Message
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from infra.metrics import LATENCY_BUCKETS, ConsumerLag, service_registry

__all__ = ["AppLag", "ProcessingSensor", "ProcessorMetrics"]


class ProcessorMetrics:
    """The metrics of one worker process (they restart at zero with it, as Prometheus expects)."""

    def __init__(self) -> None:
        self.events = Counter[str]()  # consumed lifecycle causes, by event type
        self.decisions = Counter[str]()  # published decisions, by kind
        self.dead_letters = Counter[str]()  # undecodable or unprocessable records, by reason
        self.chat_events = Counter[str]()  # consumed moderation causes, by event type
        self.chat_decisions = Counter[str]()  # published moderation decisions, by kind
        self.roster_events = Counter[str]()  # users events folded into the chat roster, by type
        self.heartbeats = 0  # viewer heartbeats folded into presence
        self.viewer_counts = 0  # ViewerCountChanged published
        self.partial_reports = 0  # partial-count reports published by the presence worker
        self.poll_events = Counter[str]()  # consumed poll events, by event type
        self.votes = 0  # votes read by the vote worker
        self.poll_ignored = Counter[str]()  # poll events that changed nothing, by reason
        self.poll_tallies = Counter[str]()  # PollTallyUpdated published, by kind (running, final)
        self.points_requests = Counter[str]()  # points requests read by the ledger worker, by type
        self.points_entries = Counter[str]()  # ledger entries published, by type
        self.points_published = Counter[str]()  # prediction worker and earning output, by type
        self.redelivered_decided = Counter[str]()  # redelivered causes found decided on the output, by agent
        self.skipped = Counter[str]()  # records an offset commit moved past unacknowledged, by agent
        self.publish_retries = 0  # failed publish attempts that were retried
        self.publishing_blocked = False  # a publish is being retried right now (health says so)
        self.lag = ConsumerLag()  # the process's consumer groups register here
        self.registry: CollectorRegistry = service_registry(_Counters(self), self.lag)
        self.event_seconds = Histogram(
            "esports_processor_event_seconds",
            "From a record's hand-over to the agents until every agent reading it acked it "
            "(a batching agent's wait for its batch included), by family and topic.",
            ["family", "topic"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.event_age = Histogram(
            "esports_processor_event_age_seconds",
            "Age of an event when its processing ended (now minus its record timestamp), "
            "by family and topic.",
            ["family", "topic"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


class _Counters(Collector):
    """The counters of :class:`ProcessorMetrics`, read at scrape time."""

    def __init__(self, m: ProcessorMetrics) -> None:
        self._m = m

    def collect(self) -> Iterator[Metric]:
        m = self._m
        yield _counter("esports_lifecycle_events_total", "Lifecycle causes consumed.", "type", m.events)
        yield _counter("esports_lifecycle_decisions_total", "Decisions published.", "kind", m.decisions)
        yield _counter("esports_chat_events_total", "Moderation causes consumed.", "type", m.chat_events)
        yield _counter(
            "esports_chat_decisions_total", "Moderation decisions published.", "kind", m.chat_decisions
        )
        yield _counter(
            "esports_chat_roster_events_total", "Users events in the roster.", "type", m.roster_events
        )
        yield _counter("esports_viewer_heartbeats_total", "Heartbeats counted.", None, {"": m.heartbeats})
        yield _counter("esports_viewer_counts_total", "Viewer counts published.", None, {"": m.viewer_counts})
        yield _counter(
            "esports_viewer_partial_reports_total",
            "Partial-count reports published (per presence partition and merge partition).",
            None,
            {"": m.partial_reports},
        )
        yield _counter("esports_poll_events_total", "Poll events consumed.", "type", m.poll_events)
        yield _counter("esports_poll_votes_total", "Votes tallied.", None, {"": m.votes})
        yield _counter("esports_poll_ignored_total", "Poll events ignored.", "reason", m.poll_ignored)
        yield _counter("esports_poll_tallies_total", "Poll tallies published.", "kind", m.poll_tallies)
        yield _counter(
            "esports_points_requests_total",
            "Points requests read by the ledger worker.",
            "type",
            m.points_requests,
        )
        yield _counter("esports_points_entries_total", "Ledger entries published.", "type", m.points_entries)
        yield _counter(
            "esports_points_published_total",
            "Markers, settlement orders, odds and earnings published by the prediction and earning workers.",
            "type",
            m.points_published,
        )
        yield _counter(
            "esports_processor_dead_letters_total", "Records sent to the DLQ.", "reason", m.dead_letters
        )
        yield _counter(
            "esports_processor_redelivered_decided_total",
            "Redelivered causes whose decision was already published (not decided again).",
            "agent",
            m.redelivered_decided,
        )
        yield _counter(
            "esports_processor_skipped_records_total",
            "Records an offset commit moved past that the agent never acknowledged (lost).",
            "agent",
            m.skipped,
        )
        yield _counter(
            "esports_processor_publish_retries_total", "Retried publishes.", None, {"": m.publish_retries}
        )


def _counter(name: str, help_text: str, label: str | None, values: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(name, help_text, labels=[] if label is None else [label])
    for key, value in sorted(values.items()):
        family.add_metric([] if label is None else [key], value)
    return family


class ProcessingSensor(faust.Sensor):
    """Observes :class:`ProcessorMetrics`' histograms when every agent reading a record acked it."""

    def __init__(self, metrics: ProcessorMetrics, family: str) -> None:
        super().__init__()
        self._metrics = metrics
        self._family = family  # the app's family, or "all" when one app runs every family

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        labels = (self._family, tp.topic)
        if message.time_in is not None:  # set on the way in by Faust's own monitor (monotonic)
            self._metrics.event_seconds.labels(*labels).observe(time.monotonic() - message.time_in)
        if message.timestamp:  # seconds; Faust converted the record's milliseconds
            self._metrics.event_age.labels(*labels).observe(max(0.0, time.time() - message.timestamp))


class AppLag:
    """The Faust app's consumer group as a lag source: per assigned partition, its end as last
    fetched minus the next offset the agents get (partitions not read from since start are left out)."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    @property
    def group_id(self) -> str:
        return str(self._app.conf.id)  # Faust's consumer group is the app's id

    def lags(self) -> dict[tuple[str, int], int]:
        consumer = self._app.consumer
        read = self._app.monitor.tp_read_offsets  # the last offset handed to the agents
        lags = {}
        for tp in consumer.assignment():
            highwater, last_read = consumer.highwater(tp), read.get(tp)
            if highwater is not None and last_read is not None:
                lags[(tp.topic, tp.partition)] = max(0, highwater - last_read - 1)
        return lags
