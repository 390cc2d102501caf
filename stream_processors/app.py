"""The Faust app of the stream processors: built from Settings by :func:`create_app`, never from the
environment (Faust's own settings would otherwise read ``os.environ``). This is the composition root:
it imports every agent family; they import the runtime below them (:mod:`stream_processors.runtime`:
the decision publisher, the processor base, the guarded consumer, batched agents), never this module.

Agents:

- ``lifecycle``: consumes ``streams`` and ``ingest`` (co-partitioned by stream_id), keeps one
  :class:`~stream_processors.lifecycle.decisions.StreamLifecycle` per stream in the ``lifecycle`` table and
  publishes the decisions of :func:`~stream_processors.lifecycle.decisions.decide` to ``streams.lifecycle``;
  a timer ends the live streams whose ingest stopped reporting for ``ingest.silence_end_s``.
- ``moderation`` (:mod:`stream_processors.moderation.agent`): consumes ``chat.submitted`` (chat
  commands), ``chat.moderation``, ``streams`` and ``ingest``, keeps one chat state per stream in the
  ``moderation`` table and publishes the decisions of
  :func:`~stream_processors.moderation.routing.decide_stream` to ``chat.messages`` and its markers to
  ``chat.sent``, where the chat workers (:mod:`stream_processors.moderation.chat_worker`, beside this
  app in their own consumer group) decide the viewers' messages per sender.
- ``viewer_counts`` and ``match_audience`` (:mod:`stream_processors.viewers.counts_agent`): merge the
  partial counts per (stream, presence partition) and (match, presence partition) that the presence
  worker (:mod:`stream_processors.viewers.presence_worker`, beside this app in its own consumer
  group, reading the heartbeats of ``viewers.presence`` partitioned by session) publishes to internal
  topics; keep each audience's merged state in the ``viewers`` / ``match_viewers`` tables and publish
  ``ViewerCountChanged`` to ``viewers.counts`` and ``MatchAudienceChanged`` to ``viewers.match_counts``
  (at most once a second per audience, on change; a viewer of several streams of a match once).
- ``polls`` (:mod:`stream_processors.polls.agent`): consumes ``polls`` (and ``streams`` for each
  stream's owner: with the moderation roster it decides who may open/close polls), keeps each
  stream's polls and votes in the ``polls`` table and publishes ``PollTallyUpdated`` to
  ``polls.tallies`` (at most every 250 ms per poll, on change, and a final tally on close), with a
  timer closing polls at the deadline.
- ``notifications`` (:mod:`stream_processors.notifications.agent`): consumes ``streams``,
  ``streams.lifecycle`` and ``tournaments``, with follows and channel names read whole from ``users``
  and ``channels``, and publishes one ``NotificationIssued`` per follower to ``notifications`` when a
  channel goes live or a tournament's match starts (never twice for one cause).

Records are read raw and decoded with the project's codec; what cannot be decoded goes to the
dead-letter topic. Decisions are published with :class:`infra.kafka.EventPublisher` (idempotent,
``acks=all``), not with Faust's producer, which is idempotent only in its exactly-once mode.
Faust's web server answers ``/health`` and ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faust

from events.codec import EventCodec
from infra.kafka import TopicNames
from infra.kafka.names import security_options
from infra.metrics import render
from infra.settings import KafkaSettings, Settings
from stream_processors.lifecycle.agent import register_lifecycle
from stream_processors.metrics import AppLag, ProcessingSensor, ProcessorMetrics
from stream_processors.moderation.agent import chat_limits, register_moderation
from stream_processors.moderation.roster import ChatRoster
from stream_processors.notifications.agent import register_notifications
from stream_processors.partition_worker import PartitionWorker
from stream_processors.polls.agent import register_polls
from stream_processors.runtime import (
    DecisionPublisher,
    ProcessorApp,
    report_skips,
)
from stream_processors.topology import FAMILIES, app_id
from stream_processors.viewers.counts_agent import register_match_audience, register_viewer_counts

__all__ = ["create_app", "faust_options"]


def faust_options(settings: Settings, partitions: int) -> dict[str, Any]:
    """Every Faust setting the platform sets, from Settings only."""
    kafka = settings.kafka
    return {
        "env": {},  # Faust reads os.environ (BROKER_URL, WEB_PORT, ...) unless told not to
        "broker": [f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        "broker_client_id": f"{kafka.client_id}-processors",
        **broker_security(kafka),
        "autodiscover": False,
        "store": "memory://",  # recovered from the changelog at start; rocksdb is a later option
        # No standby replicas. With one (Faust's default), a worker left alone after its peer was killed
        # got a changelog partition both as active and as standby in one assignment; recovery sought the
        # active from -1 but left the partition paused as a standby, never read it and hung (a poll's
        # final tally never came). Without standbys a new owner replays the (compacted) changelog, as
        # every worker does at start.
        "table_standby_replicas": 0,
        "datadir": str(settings.processors.data_dir),
        "topic_allow_declare": False,  # see stream_processors.topology
        "topic_disable_leader": True,  # no __assignor-__leader topic: nothing here needs a leader
        "topic_partitions": partitions,
        "topic_replication_factor": kafka.replication,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",  # a new group must see every cause there is
        "producer_acks": -1,  # the changelog producer: acks=all
        "web_bind": settings.processors.web_host,
        "web_host": settings.processors.web_host,
        "web_port": settings.processors.web_port,
        # Faust's default 60 s session makes a crashed worker's partitions wait a minute for a new
        # owner; the heartbeat must stay well under a third of the session.
        "broker_session_timeout": settings.processors.session_timeout_s,
        "broker_heartbeat_interval": settings.processors.session_timeout_s / 5,
        "web_enabled": True,
        # Every agent acks only after publishing and storing, and every state is replace-by-key, so a
        # record in flight at shutdown or rebalance is simply redelivered. Waiting for it instead hung
        # shutdown for good when several agents share a topic (five read `streams`): a record left in
        # one agent's stream buffer when the fetcher stopped was never acked. The batching agents
        # process what they hold before Faust commits (stream_processors.batching.Batcher).
        "stream_wait_empty": False,
    }


def broker_security(kafka: KafkaSettings) -> dict[str, Any]:
    """Faust's TLS/SASL settings, the same as every other client's (``infra.kafka.security_options``)."""
    options = security_options(kafka)
    if not options:
        return {}
    if options["security_protocol"] == "SSL":
        return {"broker_credentials": faust.SSLCredentials(options["ssl_context"])}
    credentials = faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        ssl_context=options["ssl_context"],
        mechanism=options["sasl_mechanism"],
    )
    return {"broker_credentials": credentials}


def create_app(
    settings: Settings,
    *,
    partitions: int,
    codec: EventCodec,
    publishing: DecisionPublisher,
    metrics: ProcessorMetrics,
    roster: Any = None,
    family: str | None = None,
    partition_workers: Sequence[PartitionWorker[Any]] = (),
) -> faust.App:
    """The configured Faust app with its agents, tables and web pages: every family's (one app,
    one consumer group), or only ``family``'s, in that family's own app (its own group).

    ``roster`` (a started-before-the-app :class:`~stream_processors.moderation.agent.RosterReader`)
    is needed by the moderation agent (left out without one) and tells the polls agent who moderates.
    ``partition_workers`` (the hot paths' consumer groups beside the app) are shown on ``/health``.
    """
    app = ProcessorApp(app_id(settings.kafka, family), **faust_options(settings, partitions))
    names = TopicNames(settings.kafka.topic_prefix)
    runs = set(FAMILIES if family is None else (family,))
    args = (codec, publishing, metrics)
    if "lifecycle" in runs:
        register_lifecycle(app, names, partitions, args, settings.kafka, settings.ingest.silence_end_s)
    if "moderation" in runs and roster is not None:
        limits = chat_limits(settings.chat)
        register_moderation(app, names, partitions, args, roster, limits, settings.kafka)
    if "viewers" in runs:
        register_viewer_counts(app, names, partitions, args)
        register_match_audience(app, names, partitions, args)
    if "polls" in runs:
        # Who may open/close polls: the moderation agent's roster (without one, channel owners only).
        register_polls(app, names, partitions, args, roster.roster if roster else ChatRoster())
    if "notifications" in runs:
        register_notifications(app, names, partitions, args, settings.kafka)
    _add_pages(app, settings, publishing, metrics, partition_workers)
    report_skips(app, metrics)
    app.sensors.add(ProcessingSensor(metrics, family or "all"))
    metrics.lag.register(AppLag(app))
    for worker in partition_workers:  # the hot paths' groups beside the app's
        metrics.lag.register(worker)
    return app


def _add_pages(
    app: faust.App,
    settings: Settings,
    publishing: DecisionPublisher,
    m: ProcessorMetrics,
    partition_workers: Sequence[PartitionWorker[Any]],
) -> None:
    @app.page("/health")
    async def health(view: Any, request: Any) -> Any:
        """Liveness and readiness, with the Kafka side's state."""
        kafka = {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "publisher": "up" if publishing.up else "down",
            "publishing": "retrying" if m.publishing_blocked else "ok",
            "assigned_partitions": len(app.consumer.assignment()),
            "rebalancing": bool(app.rebalancing),
            # the hot paths' groups: the partitions each owns, and those still being re-read
            "partition_workers": {
                w.role: {"owned": sorted(w.owned), "ready": sorted(p for p in w.owned if w.ready(p))}
                for w in partition_workers
            },
        }
        ok = publishing.up and not m.publishing_blocked
        return view.json({"status": "ok" if ok else "degraded", "kafka": kafka}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        """Prometheus text exposition of the worker's counters, histograms and consumer lag."""
        body, content_type = render(m.registry)
        return view.bytes(body, headers={"Content-Type": content_type})
