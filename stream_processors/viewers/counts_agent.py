"""The viewer-count and match-audience agents: the merge step of the counts, in the Faust app.

Each reads an internal topic of partial counts written by the presence workers
(:mod:`stream_processors.viewers.presence_worker`), keyed by the audience: the stream's on
:data:`~stream_processors.topology.VIEWER_PARTIALS`, the match's on
:data:`~stream_processors.topology.MATCH_PARTIALS`. Each keeps one merged state per audience in its
table (``viewers``, ``match_viewers``) and publishes :class:`~events.viewers.ViewerCountChanged` to
``viewers.counts`` or :class:`~events.viewers.MatchAudienceChanged` to ``viewers.match_counts``
(at most once a second per audience, on change). Batches are processed, then acked
(:class:`~stream_processors.batching.Batcher`); a timer decides what was not due yet.

The partials are few (one per audience and partition when it changes, a few a second), so this
stays cheap however many heartbeats there are: the heartbeats are read by the presence workers, in
their own consumer group, never by Faust.
"""

from __future__ import annotations

from typing import Any

import faust

from events.codec import EventCodec
from infra.kafka import TopicNames
from stream_processors.metrics import ProcessorMetrics
from stream_processors.runtime import DecisionPublisher, register_batched
from stream_processors.topology import MATCH_PARTIALS, MATCH_VIEWER_TABLE, VIEWER_PARTIALS, VIEWER_TABLE
from stream_processors.viewers.counts import settle
from stream_processors.viewers.match_audience import settle_match
from stream_processors.viewers.merge import Decide, MergeProcessor

__all__ = ["BATCH_MAX", "BATCH_WITHIN_S", "TICK_S", "register_match_audience", "register_viewer_counts"]

TICK_S = 0.25  # decides counts that were not due when their partial arrived
BATCH_MAX = 2_000  # partials folded into one state write per audience
BATCH_WITHIN_S = 0.1  # ... or whatever arrived within this long


def _register_merge(
    app: faust.App,
    name: str,
    topic: str,
    table_name: str,
    decide: Decide,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
) -> None:
    codec, publishing, metrics = processor_args
    source = app.topic(topic, partitions=partitions)
    table = app.Table(table_name, key_type=bytes, partitions=partitions)
    processor = MergeProcessor(codec, publishing, table, metrics, partitions, decide)
    register_batched(
        app,
        source,
        name,
        processor,
        batch=(BATCH_MAX, BATCH_WITHIN_S),
        tick_s=TICK_S,
        tick=processor.expire,
        tick_topic=topic,
    )


def register_viewer_counts(app: faust.App, names: TopicNames, partitions: int, processor_args: Any) -> None:
    """Add the ``viewers`` table and the viewer-count agent (merging streams' partials) to ``app``."""
    topic = names.physical(VIEWER_PARTIALS)
    _register_merge(app, "viewer_counts", topic, VIEWER_TABLE, settle, partitions, processor_args)


def register_match_audience(app: faust.App, names: TopicNames, partitions: int, processor_args: Any) -> None:
    """Add the ``match_viewers`` table and the match-audience agent (merging matches' partials) to ``app``."""
    topic = names.physical(MATCH_PARTIALS)
    _register_merge(
        app, "match_audience", topic, MATCH_VIEWER_TABLE, settle_match, partitions, processor_args
    )
