"""The presence worker: counts the sessions of the ``viewers.presence`` partitions it owns.

A :class:`~stream_processors.partition_worker.PartitionWorker`: beside the Faust app, in its own
consumer group :data:`~stream_processors.topology.PRESENCE_GROUP`, never on Faust's fetcher. It reads
``viewers.presence`` batches (hundreds of heartbeats a record) and keeps a
:class:`~stream_processors.viewers.presence.PartitionPresence` per owned partition; several worker
processes share the partitions as any consumer group does.

Every :data:`REPORT_EVERY_S` it expires sessions at the wall clock and publishes the partial counts
that changed, one :class:`~stream_processors.viewers.presence.PartialReport` per merge partition, to
the internal partials topics the viewer-count and match-audience agents merge
(:mod:`stream_processors.viewers.counts_agent`).

Nothing is stored: a partition's presence is the last window of its log, re-read from ``now -
window - slack`` by a worker that takes the partition over, then reported in full (counts its
previous owner reported and that are gone are zeroed). A heartbeat read twice changes nothing.

The single heartbeats of ``viewers.heartbeats`` (keyed by stream: written before edges batched, or
by an older edge during an upgrade) are re-keyed: grouped by session partition and republished as
batches onto ``viewers.presence`` (a heartbeat republished twice is still one session).

Each stream's match comes from the whole ``streams`` topic (:class:`MatchDirectory`): a session is
counted once per match on its partition, whichever streams of the match it watches.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from mode import Service

from events.base import Event
from events.codec import EventCodec
from events.topics import Topic
from events.viewers import ViewerBeat, ViewerHeartbeat, ViewerPresenceBatch, presence_batches
from infra.kafka import partition_of_key
from infra.settings import KafkaSettings, Settings
from stream_processors.partition_worker import PartitionWorker, Record, Report
from stream_processors.runtime import WholeTopicReader
from stream_processors.topology import (
    LEGACY_HEARTBEATS,
    MATCH_PARTIALS,
    PRESENCE_GROUP,
    PRESENCE_SOURCE,
    VIEWER_PARTIALS,
)
from stream_processors.viewers.counts import epoch_ms, from_epoch_ms
from stream_processors.viewers.presence import MATCH, STREAM, Audience, PartialReport, PartitionPresence

__all__ = ["REPORT_EVERY_S", "MatchDirectory", "PresenceWorker"]


PRODUCER = "stream_processors.presence"
REPORT_EVERY_S = 0.5  # partial counts published this often (on change); counts move within ~1 s
REBUILD_SLACK_MS = 5_000  # a taken-over partition is re-read from this long before the window


class MatchDirectory(WholeTopicReader):
    """Each stream's match, from the whole ``streams`` topic (a None ``match_id`` changes nothing)."""

    def __init__(self, kafka: KafkaSettings, codec: EventCodec, **kwargs: Any) -> None:
        super().__init__(kafka, codec, [Topic.STREAMS], "matches", **kwargs)
        self.match_of: dict[str, str] = {}
        self.joined: list[tuple[str, str]] = []  # (stream, match) learnt since the worker last looked

    def apply(self, event: Event) -> None:
        stream_id, match_id = getattr(event, "stream_id", None), getattr(event, "match_id", None)
        if (
            isinstance(stream_id, str)
            and isinstance(match_id, str)
            and self.match_of.get(stream_id) != match_id
        ):
            self.match_of[stream_id] = match_id
            self.joined.append((stream_id, match_id))

    def summary(self) -> str:
        return f"{len(self.match_of)} streams in matches"


class PresenceWorker(PartitionWorker[PartitionPresence]):
    """Owns some partitions of ``viewers.presence``, counts their sessions, reports partial counts."""

    role = "presence"
    group = PRESENCE_GROUP
    source = PRESENCE_SOURCE
    legacy = LEGACY_HEARTBEATS
    every_s = REPORT_EVERY_S

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self._window_ms = int(settings.processors.viewer_window_s * 1000)
        physical = self.names.physical
        self._partials = {STREAM: physical(VIEWER_PARTIALS), MATCH: physical(MATCH_PARTIALS)}
        self.matches = MatchDirectory(settings.kafka, self._codec)
        self._complete_counts: dict[int, dict[Audience, int]] = {}  # what the last report held in full

    def on_init_dependencies(self) -> list[Service]:
        return [self.matches]  # started (read to the end of `streams`) before this worker

    def new_state(self) -> PartitionPresence:
        return PartitionPresence(self._window_ms)

    def rebuild_from_ms(self) -> int:
        return int(time.time() * 1000) - self._window_ms - REBUILD_SLACK_MS

    async def absorb(self, partition: int, state: PartitionPresence, records: Sequence[Record]) -> None:
        match_of = self.matches.match_of
        beats = 0
        for record in records:
            event = await self.decode(record)
            if not isinstance(event, ViewerPresenceBatch):
                continue
            at_ms = epoch_ms(event.occurred_at)
            for beat in event.beats:
                state.observe(beat.stream_id, beat.session_id, at_ms, match_of.get(beat.stream_id))
            beats += len(event.beats)
        self._metrics.heartbeats += beats

    def rekey(self, events: Sequence[Event]) -> list[Event]:
        """Single heartbeats as batches keyed by session (``viewers.presence``)."""
        groups: dict[tuple[int, str], list[ViewerBeat]] = defaultdict(list)
        for h in events:
            if isinstance(h, ViewerHeartbeat):
                beat = ViewerBeat(stream_id=h.stream_id, session_id=h.session_id, user_id=h.user_id)
                groups[(epoch_ms(h.occurred_at), h.edge_id)].append(beat)
        partitions = self.source_partitions
        return [
            batch
            for (at_ms, edge_id), beats in groups.items()
            for batch in presence_batches(
                beats,
                lambda session: partition_of_key(session.encode(), partitions),
                edge_id=edge_id,
                seen_at=from_epoch_ms(at_ms),
                producer=PRODUCER,
            )
        ]

    def report(self, now_ms: int, complete: set[int]) -> list[Report]:
        reports: list[Report] = []
        self._complete_counts = {}
        joined, self.matches.joined = self.matches.joined, []
        for stream_id, match_id in joined:  # streams that joined a match bring their sessions
            for owned in self.owned.values():
                owned.attach(stream_id, match_id)
        for partition, presence in self.owned.items():
            if not self.ready(partition):
                continue
            presence.expire(now_ms)
            if partition in complete:
                counts = self._complete_counts[partition] = presence.counts()
            else:
                counts = presence.changes()
            reports.extend(self._reports(partition, presence.clock_ms, counts, partition in complete))
        return reports

    def reported(self, complete: set[int]) -> None:
        for partition in complete:  # published: what follows are change reports
            if partition in self.owned:
                self.owned[partition].mark_reported(self._complete_counts[partition])

    def _reports(
        self, partition: int, as_of_ms: int, counts: dict[Audience, int], complete: bool
    ) -> list[Report]:
        """``counts`` split by partials topic and merge partition (every merge partition when complete)."""
        grouped: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
        if complete:
            for kind in self._partials:
                for merge in range(self._merge_partitions):
                    grouped[(kind, merge)] = {}
        for (kind, audience), count in counts.items():
            grouped[(kind, partition_of_key(audience.encode(), self._merge_partitions))][audience] = count
        key = str(partition).encode()  # which presence partition reports (placed by partition, not key)
        return [
            (
                self._partials[kind],
                merge,
                key,
                PartialReport(partition, as_of_ms, audiences, complete).encode(),
            )
            for (kind, merge), audiences in grouped.items()
        ]
