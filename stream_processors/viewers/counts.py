"""Concurrent viewers per stream as a pure decision: ``observe`` heartbeats, ``settle`` the count.

No ``await``, no clients: :mod:`stream_processors.viewers.counts_agent` does the I/O around it.

A stream's :class:`ViewerPresence` maps each session to the last time it was seen (epoch ms, the
heartbeat's ``occurred_at``). Observing a heartbeat *replaces* that time by the later of the two, so a
redelivered heartbeat (at-least-once, a restart, a rebalance) never counts a viewer twice, and
sessions seen on two edges are one viewer. ``settle(state, now)`` drops sessions not seen within the
window and decides a :class:`ViewerCountChanged` when the count differs from the last one emitted and
at least :data:`MIN_INTERVAL_MS` has passed since it (at most once a second, only on change).

The clock only moves forward: ``now`` is the later of the heartbeats' times and the agent's tick
(wall clock), so a heartbeat replayed after a restart changes nothing and an old one is expired at once.
The emitted event's id is a function of the stream and the second it was decided in
(``uuid5(NAMESPACE, "stream:second")``): two emissions are at least a second apart, so the id names
one count of one stream, and deciding it again after a crash publishes the same event id.

Each decided count also carries the time-weighted average of the decided counts since the first one
(each count weighted by how long it held), kept as two integers in the state (``first_ms`` and the
integral ``viewer_ms``), so a re-decided count carries the same average.

The same presence counts a match's combined audience (:mod:`stream_processors.viewers.match_audience`):
sessions are observed with :func:`observe_seen`, whatever stream of the match they watch, so a viewer
of two streams of a match is one viewer of the match.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from events.viewers import ViewerCountChanged, ViewerHeartbeat

__all__ = [
    "MAX_SESSIONS",
    "MIN_INTERVAL_MS",
    "NAMESPACE",
    "PRODUCER",
    "WINDOW_MS",
    "ViewerPresence",
    "attach",
    "count_id",
    "epoch_ms",
    "from_epoch_ms",
    "observe",
    "observe_seen",
    "settle",
    "settle_presence",
]

# Fixed forever: changing it would give a re-decided count a different event id.
NAMESPACE = uuid.UUID("0b6d8f3a-2c71-5e49-8a1d-7f3e5c9b2a64")
PRODUCER = "stream_processors.viewer_counts"
WINDOW_MS = 30_000  # a viewer counts for 30 s after a heartbeat (edges send one every 15 s)
MIN_INTERVAL_MS = 1_000  # at most one ViewerCountChanged a second per stream
# Bounds one stream's state (and its changelog record, ~40 bytes a session): beyond it the least
# recently seen sessions are dropped first. Streams beyond this need sharded presence (see the note).
MAX_SESSIONS = 20_000


def epoch_ms(moment: datetime) -> int:
    """``moment`` (tz-aware) as integer milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerPresence:
    """One audience's viewers: a stream's (table ``viewers``, keyed by ``stream_id``) or a match's
    across all its streams (table ``match_viewers``, keyed by ``match_id``)."""

    audience_id: str  # the stream id, or the match id
    sessions: dict[str, int] = field(default_factory=dict)  # session_id -> last seen, epoch ms
    clock_ms: int = 0  # the latest time seen (heartbeats and ticks); never goes back
    peak: int = 0
    emitted_count: int = 0  # the count of the last event decided (0 before any)
    emitted_at_ms: int = 0  # when it was decided; 0 = never
    first_ms: int = 0  # when the first count was decided: the average runs from here; 0 = never
    viewer_ms: int = 0  # the decided counts integrated over time up to emitted_at_ms (viewer-ms)
    match_id: str | None = None  # a stream's match (from ``streams``); None for matches themselves

    @property
    def count(self) -> int:
        """Sessions seen within the window ending at ``clock_ms`` (expired ones may linger until settled)."""
        horizon = self.clock_ms - WINDOW_MS
        return sum(1 for seen in self.sessions.values() if seen > horizon)

    @property
    def average(self) -> float:
        """Time-weighted mean of the decided counts from the first to the last (2 decimals)."""
        span = self.emitted_at_ms - self.first_ms
        if self.first_ms == 0 or span <= 0:
            return float(self.emitted_count)
        return round(self.viewer_ms / span, 2)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the table's changelog value)."""
        return {
            "audience_id": self.audience_id,
            "sessions": self.sessions,
            "clock_ms": self.clock_ms,
            "peak": self.peak,
            "emitted_count": self.emitted_count,
            "emitted_at_ms": self.emitted_at_ms,
            "first_ms": self.first_ms,
            "viewer_ms": self.viewer_ms,
            "match_id": self.match_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewerPresence:
        """The inverse of :meth:`to_json` (also reads the first layout, keyed ``stream_id``)."""
        match_id = data.get("match_id")
        return cls(
            audience_id=str(data.get("audience_id", data.get("stream_id", ""))),
            sessions={str(k): int(v) for k, v in data.get("sessions", {}).items()},
            clock_ms=int(data.get("clock_ms", 0)),
            peak=int(data.get("peak", 0)),
            emitted_count=int(data.get("emitted_count", 0)),
            emitted_at_ms=int(data.get("emitted_at_ms", 0)),
            first_ms=int(data.get("first_ms", 0)),
            viewer_ms=int(data.get("viewer_ms", 0)),
            match_id=None if match_id is None else str(match_id),
        )


def observe(state: ViewerPresence, heartbeats: Iterable[ViewerHeartbeat]) -> ViewerPresence:
    """A stream's ``state`` with each of its heartbeats' sessions seen at their ``occurred_at``."""
    return observe_seen(
        state,
        ((h.session_id, epoch_ms(h.occurred_at)) for h in heartbeats if h.stream_id == state.audience_id),
    )


def observe_seen(state: ViewerPresence, seen: Iterable[tuple[str, int]]) -> ViewerPresence:
    """``state`` with each ``(session_id, seen_ms)`` applied: the later time of a session wins."""
    sessions = dict(state.sessions)
    clock = state.clock_ms
    for session_id, at_ms in seen:
        if at_ms > sessions.get(session_id, -1):
            sessions[session_id] = at_ms
        clock = max(clock, at_ms)
    if sessions == state.sessions and clock == state.clock_ms:
        return state
    return replace(state, sessions=_bounded(sessions), clock_ms=clock)


def attach(state: ViewerPresence, match_id: str | None) -> ViewerPresence:
    """A stream's ``state`` belonging to ``match_id`` (None: unchanged, as StreamUpdated means it)."""
    if match_id is None or match_id == state.match_id:
        return state
    return replace(state, match_id=match_id)


def _bounded(sessions: dict[str, int]) -> dict[str, int]:
    if len(sessions) <= MAX_SESSIONS:
        return sessions
    newest = sorted(sessions.items(), key=lambda item: item[1])[-MAX_SESSIONS:]
    return dict(newest)


def settle_presence(
    state: ViewerPresence, now_ms: int, *, window_ms: int = WINDOW_MS
) -> tuple[ViewerPresence, bool]:
    """Expire sessions at ``now_ms`` (or the state's later clock); True when a count is decided.

    A decided count moves ``emitted_*``, the peak and the running average (the previous count held
    from its decision until now).
    """
    clock = max(state.clock_ms, now_ms)
    horizon = clock - window_ms
    sessions = state.sessions  # the same object when none expires (min() is cheap: C, no new dict)
    if sessions and min(sessions.values()) <= horizon:
        sessions = {s: seen for s, seen in sessions.items() if seen > horizon}
    settled = replace(state, sessions=sessions, clock_ms=clock)
    count = len(sessions)
    due = state.emitted_at_ms == 0 or clock - state.emitted_at_ms >= MIN_INTERVAL_MS
    if count == state.emitted_count or not due:
        return settled, False
    held = 0 if state.emitted_at_ms == 0 else state.emitted_count * (clock - state.emitted_at_ms)
    decided = replace(
        settled,
        peak=max(state.peak, count),
        emitted_count=count,
        emitted_at_ms=clock,
        first_ms=state.first_ms or clock,
        viewer_ms=state.viewer_ms + held,
    )
    return decided, True


def settle(
    state: ViewerPresence, now_ms: int, *, window_ms: int = WINDOW_MS
) -> tuple[ViewerPresence, ViewerCountChanged | None]:
    """A stream's :func:`settle_presence`, with the :class:`ViewerCountChanged` it decided."""
    settled, decided = settle_presence(state, now_ms, window_ms=window_ms)
    return settled, _changed(settled) if decided else None


def count_id(stream_id: str, at_ms: int, namespace: uuid.UUID = NAMESPACE) -> uuid.UUID:
    """The id of the count of ``stream_id`` (or of a match, with its namespace) decided in the
    second of ``at_ms``."""
    return uuid.uuid5(namespace, f"{stream_id}:{at_ms // 1000}")


def _changed(state: ViewerPresence) -> ViewerCountChanged:
    return ViewerCountChanged(
        event_id=count_id(state.audience_id, state.emitted_at_ms),
        occurred_at=from_epoch_ms(state.emitted_at_ms),
        producer=PRODUCER,
        stream_id=state.audience_id,
        count=state.emitted_count,
        peak=state.peak,
        average=state.average,
    )
