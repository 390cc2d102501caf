"""Concurrent viewers per stream as a pure decision: ``observe`` heartbeats, ``settle`` the count.

No ``await``, no clients: :mod:`stream_processors.viewer_counts_agent` does the I/O around it.

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
    "count_id",
    "epoch_ms",
    "observe",
    "settle",
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
    """One stream's viewers: the Faust table's value, keyed by ``stream_id``."""

    stream_id: str
    sessions: dict[str, int] = field(default_factory=dict)  # session_id -> last seen, epoch ms
    clock_ms: int = 0  # the latest time seen (heartbeats and ticks); never goes back
    peak: int = 0
    emitted_count: int = 0  # the count of the last ViewerCountChanged (0 before any)
    emitted_at_ms: int = 0  # when it was decided; 0 = never

    @property
    def count(self) -> int:
        """Sessions seen within the window ending at ``clock_ms`` (expired ones may linger until settled)."""
        horizon = self.clock_ms - WINDOW_MS
        return sum(1 for seen in self.sessions.values() if seen > horizon)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the table's changelog value)."""
        return {
            "stream_id": self.stream_id,
            "sessions": self.sessions,
            "clock_ms": self.clock_ms,
            "peak": self.peak,
            "emitted_count": self.emitted_count,
            "emitted_at_ms": self.emitted_at_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewerPresence:
        """The inverse of :meth:`to_json`."""
        return cls(
            stream_id=data["stream_id"],
            sessions={str(k): int(v) for k, v in data.get("sessions", {}).items()},
            clock_ms=int(data.get("clock_ms", 0)),
            peak=int(data.get("peak", 0)),
            emitted_count=int(data.get("emitted_count", 0)),
            emitted_at_ms=int(data.get("emitted_at_ms", 0)),
        )


def observe(state: ViewerPresence, heartbeats: Iterable[ViewerHeartbeat]) -> ViewerPresence:
    """``state`` with each heartbeat's session seen at its ``occurred_at`` (the later time wins)."""
    sessions = dict(state.sessions)
    clock = state.clock_ms
    for heartbeat in heartbeats:
        if heartbeat.stream_id != state.stream_id:
            continue
        seen = epoch_ms(heartbeat.occurred_at)
        if seen > sessions.get(heartbeat.session_id, -1):
            sessions[heartbeat.session_id] = seen
        clock = max(clock, seen)
    if sessions == state.sessions and clock == state.clock_ms:
        return state
    return replace(state, sessions=_bounded(sessions), clock_ms=clock)


def _bounded(sessions: dict[str, int]) -> dict[str, int]:
    if len(sessions) <= MAX_SESSIONS:
        return sessions
    newest = sorted(sessions.items(), key=lambda item: item[1])[-MAX_SESSIONS:]
    return dict(newest)


def settle(
    state: ViewerPresence, now_ms: int, *, window_ms: int = WINDOW_MS
) -> tuple[ViewerPresence, ViewerCountChanged | None]:
    """Expire sessions at ``now_ms`` (or the state's later clock); decide a count if it is due."""
    clock = max(state.clock_ms, now_ms)
    horizon = clock - window_ms
    sessions = {s: seen for s, seen in state.sessions.items() if seen > horizon}
    if len(sessions) == len(state.sessions):
        sessions = state.sessions
    settled = replace(state, sessions=sessions, clock_ms=clock)
    count = len(sessions)
    due = state.emitted_at_ms == 0 or clock - state.emitted_at_ms >= MIN_INTERVAL_MS
    if count == state.emitted_count or not due:
        return settled, None
    peak = max(state.peak, count)
    emitted = replace(settled, peak=peak, emitted_count=count, emitted_at_ms=clock)
    return emitted, _changed(emitted)


def count_id(stream_id: str, at_ms: int) -> uuid.UUID:
    """The id of the count of ``stream_id`` decided in the second of ``at_ms``."""
    return uuid.uuid5(NAMESPACE, f"{stream_id}:{at_ms // 1000}")


def _changed(state: ViewerPresence) -> ViewerCountChanged:
    return ViewerCountChanged(
        event_id=count_id(state.stream_id, state.emitted_at_ms),
        occurred_at=from_epoch_ms(state.emitted_at_ms),
        producer=PRODUCER,
        stream_id=state.stream_id,
        count=state.emitted_count,
        peak=state.peak,
    )
