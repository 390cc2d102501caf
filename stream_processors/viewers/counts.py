"""Concurrent viewers per stream as a pure decision: merge the partial counts, ``settle`` the count.

No ``await``, no clients: :mod:`stream_processors.viewers.counts_agent` does the I/O around it.

Sessions are counted where their heartbeats land, one partition of ``viewers.presence`` each
(:mod:`stream_processors.viewers.presence`); every partition's worker publishes its *partial* count
of each stream. A stream's :class:`ViewerPresence` keeps the latest partial of each partition
(``partition -> (count, as_of_ms)``); its count is their sum, exact because a session is on one
partition only. A partial older than the one held for its partition (a zombie worker, a
redelivery) changes nothing. ``settle(state, now)`` decides a :class:`ViewerCountChanged` when the
count differs from the last one emitted and at least :data:`MIN_INTERVAL_MS` has passed since it (at
most once a second, only on change); nothing is decided before a first partial arrives.

The clock only moves forward: ``now`` is the later of the partials' times and the agent's tick
(wall clock). The emitted event's id is a function of the stream and the second it was decided in
(:func:`count_id`): two emissions are at least a second apart, so the id names one count of one
stream, and deciding it again after a crash publishes the same event id.

Each decided count also carries the time-weighted average of the decided counts since the first one
(each count weighted by how long it held), kept as two integers in the state (``first_ms`` and the
integral ``viewer_ms``), so a re-decided count carries the same average.

The same merge counts a match's combined audience (:mod:`stream_processors.viewers.match_audience`)
from the partitions' partial match counts (a viewer of two streams of a match is one session there).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from events.ids import IdSpace, decision_id
from events.viewers import ViewerCountChanged

__all__ = [
    "MIN_INTERVAL_MS",
    "PRODUCER",
    "WINDOW_MS",
    "ViewerPresence",
    "count_id",
    "epoch_ms",
    "from_epoch_ms",
    "observe_partial",
    "settle",
    "settle_presence",
]

PRODUCER = "stream_processors.viewer_counts"
WINDOW_MS = 30_000  # a viewer counts for 30 s after a heartbeat (edges send one every 15 s)
MIN_INTERVAL_MS = 1_000  # at most one ViewerCountChanged a second per stream


def epoch_ms(moment: datetime) -> int:
    """``moment`` (tz-aware) as integer milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerPresence:
    """One audience's merged count: a stream's (table ``viewers``, keyed by ``stream_id``) or a
    match's across all its streams (table ``match_viewers``, keyed by ``match_id``)."""

    audience_id: str  # the stream id, or the match id
    parts: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> (count, as_of_ms)
    clock_ms: int = 0  # the latest time seen (partials and ticks); never goes back
    peak: int = 0
    emitted_count: int = 0  # the count of the last event decided (0 before any)
    emitted_at_ms: int = 0  # when it was decided; 0 = never
    first_ms: int = 0  # when the first count was decided: the average runs from here; 0 = never
    viewer_ms: int = 0  # the decided counts integrated over time up to emitted_at_ms (viewer-ms)

    @property
    def count(self) -> int:
        """The sum of the partitions' latest partial counts."""
        return sum(count for count, _ in self.parts.values())

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
            "parts": {str(p): list(part) for p, part in self.parts.items()},
            "clock_ms": self.clock_ms,
            "peak": self.peak,
            "emitted_count": self.emitted_count,
            "emitted_at_ms": self.emitted_at_ms,
            "first_ms": self.first_ms,
            "viewer_ms": self.viewer_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewerPresence:
        """The inverse of :meth:`to_json`. Also reads the earlier layouts (keyed ``stream_id``, with
        ``sessions`` counted here): their sessions are counted again by the partitions from the log
        window, so only the emitted figures carry over."""
        return cls(
            audience_id=str(data.get("audience_id", data.get("stream_id", ""))),
            parts={int(p): (int(c), int(at)) for p, (c, at) in data.get("parts", {}).items()},
            clock_ms=int(data.get("clock_ms", 0)),
            peak=int(data.get("peak", 0)),
            emitted_count=int(data.get("emitted_count", 0)),
            emitted_at_ms=int(data.get("emitted_at_ms", 0)),
            first_ms=int(data.get("first_ms", 0)),
            viewer_ms=int(data.get("viewer_ms", 0)),
        )


def observe_partial(state: ViewerPresence, partition: int, count: int, as_of_ms: int) -> ViewerPresence:
    """``state`` with ``partition``'s partial count as of ``as_of_ms``; an older one than held is ignored."""
    held = state.parts.get(partition)
    if held is not None and held[1] > as_of_ms:
        return state
    if held == (count, as_of_ms) and state.clock_ms >= as_of_ms:
        return state
    return replace(
        state, parts={**state.parts, partition: (count, as_of_ms)}, clock_ms=max(state.clock_ms, as_of_ms)
    )


def settle_presence(state: ViewerPresence, now_ms: int) -> tuple[ViewerPresence, bool]:
    """Move the clock to ``now_ms`` (or the state's later one); True when a count is decided.

    A decided count moves ``emitted_*``, the peak and the running average (the previous count held
    from its decision until now). Nothing is decided before the first partial.
    """
    clock = max(state.clock_ms, now_ms)
    settled = state if clock == state.clock_ms else replace(state, clock_ms=clock)
    count = state.count
    due = state.emitted_at_ms == 0 or clock - state.emitted_at_ms >= MIN_INTERVAL_MS
    if not state.parts or count == state.emitted_count or not due:
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


def settle(state: ViewerPresence, now_ms: int) -> tuple[ViewerPresence, ViewerCountChanged | None]:
    """A stream's :func:`settle_presence`, with the :class:`ViewerCountChanged` it decided."""
    settled, decided = settle_presence(state, now_ms)
    return settled, _changed(settled) if decided else None


def count_id(stream_id: str, at_ms: int, space: IdSpace = IdSpace.VIEWER_COUNT) -> uuid.UUID:
    """The id of the count of ``stream_id`` (or of a match, in its space) decided in the second of
    ``at_ms``."""
    return decision_id(space, stream_id, at_ms // 1000)


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
