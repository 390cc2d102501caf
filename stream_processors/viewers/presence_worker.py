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

Viewing sessions (kept for good, for analytics): each report also publishes the sessions that started
and ended (:class:`~events.viewers.ViewingSessionStarted`, :class:`~events.viewers.ViewingSessionEnded`)
to ``viewers.sessions``, keyed by session and co-partitioned with ``viewers.presence``. A worker taking
partition *p* over reads ``viewers.sessions`` partition *p* back (:data:`SESSIONS_READ_BACK_MS`) and
reopens the sessions started and not ended there, so their start is kept; one whose end its previous
owner decided but did not publish (it died within a report) ends at the re-read's start. Event ids are
derived from (stream, session, start): a session event published twice is one event to its readers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from mode import Service

from events.base import Event
from events.codec import EventCodec
from events.topics import Topic
from events.viewers import (
    ViewerBeat,
    ViewerHeartbeat,
    ViewerPresenceBatch,
    ViewingSessionEnded,
    ViewingSessionStarted,
    presence_batches,
)
from infra.kafka import client_options, partition_of_key
from infra.settings import KafkaSettings, Settings
from stream_processors.partition_worker import PartitionWorker, Record, Report
from stream_processors.read_back import read_back
from stream_processors.runtime import WholeTopicReader, retrying
from stream_processors.topology import (
    LEGACY_HEARTBEATS,
    MATCH_PARTIALS,
    PRESENCE_GROUP,
    PRESENCE_SOURCE,
    VIEWER_PARTIALS,
)
from stream_processors.viewers.counts import epoch_ms, from_epoch_ms
from stream_processors.viewers.presence import (
    MATCH,
    STREAM,
    Audience,
    OpenSession,
    PartialReport,
    PartitionPresence,
)

__all__ = ["REPORT_EVERY_S", "MatchDirectory", "PresenceWorker", "session_events"]

log = logging.getLogger(__name__)


PRODUCER = "stream_processors.presence"
REPORT_EVERY_S = 0.5  # partial counts published this often (on change); counts move within ~1 s
REBUILD_SLACK_MS = 5_000  # a taken-over partition is re-read from this long before the window
SESSIONS_READ_BACK_MS = 24 * 60 * 60 * 1000  # sessions open longer than a day restart at a takeover
MAX_REREAD_MS = 60 * 60 * 1000  # a partition unread for longer is re-read from this far back only
SESSIONS = uuid.UUID("5b0c8d1e-4f7a-4f55-9d0e-2f8f5d1c7a11")  # namespace of the session events' ids


def session_events(
    started: list[OpenSession], ended: list[tuple[OpenSession, int]]
) -> list[ViewingSessionStarted | ViewingSessionEnded]:
    """The events of sessions started and ended, with ids derived from (stream, session, start)."""

    def event_id(s: OpenSession, what: str) -> uuid.UUID:
        return uuid.uuid5(SESSIONS, f"{s.stream_id}|{s.session_id}|{s.started_ms}|{what}")

    events: list[ViewingSessionStarted | ViewingSessionEnded] = [
        ViewingSessionStarted(
            event_id=event_id(s, "started"),
            occurred_at=from_epoch_ms(s.started_ms),
            producer=PRODUCER,
            session_id=s.session_id,
            stream_id=s.stream_id,
            started_at=from_epoch_ms(s.started_ms),
            edge_id=s.edge_id,
            user_id=s.user_id,
            match_id=s.match_id,
            referrer=s.referrer,
        )
        for s in started
    ]
    events.extend(
        ViewingSessionEnded(
            event_id=event_id(s, "ended"),
            occurred_at=from_epoch_ms(last_ms),
            producer=PRODUCER,
            session_id=s.session_id,
            stream_id=s.stream_id,
            started_at=from_epoch_ms(s.started_ms),
            ended_at=from_epoch_ms(last_ms),
            watch_ms=last_ms - s.started_ms,
            edge_id=s.edge_id,
            user_id=s.user_id,
            match_id=s.match_id,
            referrer=s.referrer,
        )
        for s, last_ms in ended
    )
    return events


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
        self._sessions = physical(Topic.VIEWERS_SESSIONS)
        self._session_events: list[ViewingSessionStarted | ViewingSessionEnded] = []
        self._reopened: dict[int, int] = {}  # partition -> the re-read's start: end the unseen when ready
        self._publishing_sessions = asyncio.Lock()
        self._rebuild_start: dict[int, int] = {}  # partition -> where its last takeover re-read from (ms)
        # partition -> the sessions to reopen in it (read back while it is being taken over)
        self._reopen: dict[int, tuple[list[OpenSession], dict[tuple[str, str], int]]] = {}

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
                state.observe(
                    beat.stream_id,
                    beat.session_id,
                    at_ms,
                    match_of.get(beat.stream_id),
                    user_id=beat.user_id,
                    edge_id=event.edge_id,
                    referrer=beat.referrer,
                )
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
        behind = {p for (topic, p), lag in self.lags().items() if topic == self._source and lag > 0}
        for partition, presence in self.owned.items():
            if not self.ready(partition):
                continue
            # Behind the log's end, the partition's time is its latest heartbeat, not the wall clock:
            # a session still watching must not end because the worker is late reading its beats.
            presence.expire(presence.clock_ms if partition in behind else now_ms)
            if (reread_from := self._reopened.pop(partition, None)) is not None:
                presence.end_unseen(reread_from)
            if presence.started or presence.ended:
                self._session_events.extend(session_events(presence.started, presence.ended))
                presence.started, presence.ended = [], []
            if partition in complete:
                counts = self._complete_counts[partition] = presence.counts()
            else:
                counts = presence.changes()
            reports.extend(self._reports(partition, presence.clock_ms, counts, partition in complete))
        return reports

    async def _report(self) -> None:
        async with self._publishing_sessions:
            await super()._report()
            sessions, self._session_events = self._session_events, []
            if sessions:
                publisher = self._publishing.publisher
                await retrying(
                    "publishing viewing sessions", lambda: publisher.publish_many(sessions), self._metrics
                )

    async def releasing(self, revoked: set[Any]) -> None:
        async with self._publishing_sessions:  # the next owner reads back every session published
            pass

    async def rebuild_starts(self, consumer: Any, assigned: set[Any]) -> dict[Any, int]:
        """The last window, or from a window before where the previous owner stopped reading (its
        commit) when that is earlier: the heartbeats of sessions that ended while nobody read the
        partition are read, so they end with their last heartbeat (at most :data:`MAX_REREAD_MS` back)."""
        starts = await super().rebuild_starts(consumer, assigned)
        floor = int(time.time() * 1000) - MAX_REREAD_MS
        stopped = await self._stopped_reading_at(
            [tp for tp in assigned if tp.topic == self._source], consumer
        )
        for tp, at_ms in stopped.items():
            starts[tp] = max(floor, min(starts[tp], at_ms - self._window_ms - REBUILD_SLACK_MS))
        self._rebuild_start = {tp.partition: at for tp, at in starts.items() if tp.topic == self._source}
        if self._rebuild_start:
            since = min(self._rebuild_start.values()) - SESSIONS_READ_BACK_MS
            opened, ended = await self._open_sessions(set(self._rebuild_start), since)
            self._reopen = {p: (opened.get(p, []), ended.get(p, {})) for p in self._rebuild_start}
            log.info("presence: %s open sessions to reopen", sum(len(v) for v in opened.values()))
        return starts

    async def _stopped_reading_at(self, tps: list[Any], consumer: Any) -> dict[Any, int]:
        """The time of the last record each partition's previous owner read (before its commit)."""
        last = {tp: committed - 1 for tp in tps if (committed := await consumer.committed(tp))}
        if not last:
            return {}
        reader = AIOKafkaConsumer(
            **client_options(self._kafka, "presence-stopped"),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await reader.start()
        found: dict[Any, int] = {}
        try:
            reader.assign(list(last))
            for tp, offset in last.items():
                reader.seek(tp, offset)
            deadline = time.monotonic() + 10
            while len(found) < len(last) and time.monotonic() < deadline:
                for tp, records in (await reader.getmany(timeout_ms=500, max_records=1)).items():
                    if records and tp not in found:
                        found[tp] = records[0].timestamp
                        reader.pause(tp)
        finally:
            await reader.stop()
        return found

    def state_for(self, partition: int) -> PartitionPresence:
        """A taken partition's presence, with the sessions its earlier owners left open reopened (read
        back in :meth:`rebuild_starts`, before the partition is sought, so before any of its beats)."""
        state = self.new_state()
        opened, ended = self._reopen.pop(partition, ([], {}))
        state.reopen(opened, ended)
        self._reopened[partition] = self._rebuild_start.get(partition, self.rebuild_from_ms())
        return state

    async def _open_sessions(
        self, partitions: set[int], since_ms: int
    ) -> tuple[dict[int, list[OpenSession]], dict[int, dict[tuple[str, str], int]]]:
        """The sessions started and not ended on ``partitions`` of ``viewers.sessions`` since ``since_ms``,
        and the last heartbeat of each (stream, session) that ended there."""
        opened: dict[int, dict[tuple[str, str, int], OpenSession]] = defaultdict(dict)
        ended: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)

        async def fold(partition: int, records: Sequence[Record]) -> None:
            for record in records:
                event = await self.decode(record)
                if isinstance(event, ViewingSessionStarted | ViewingSessionEnded):
                    started_ms = epoch_ms(event.started_at)
                    key = (event.stream_id, event.session_id, started_ms)
                    if isinstance(event, ViewingSessionEnded):
                        opened[partition].pop(key, None)
                        last = ended[partition]
                        pair, at = (event.stream_id, event.session_id), epoch_ms(event.ended_at)
                        last[pair] = max(at, last.get(pair, at))
                    else:
                        opened[partition][key] = OpenSession(
                            event.stream_id,
                            event.session_id,
                            started_ms,
                            event.edge_id,
                            event.user_id,
                            event.match_id,
                            event.referrer,
                        )

        await read_back(self._kafka, "presence-sessions", self._sessions, partitions, fold, from_ms=since_ms)
        return {p: list(sessions.values()) for p, sessions in opened.items()}, dict(ended)

    def given_up(self, revoked: set[Any]) -> None:
        super().given_up(revoked)
        for tp in revoked:
            self._reopened.pop(tp.partition, None)

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
