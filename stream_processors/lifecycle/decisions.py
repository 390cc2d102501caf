"""The stream lifecycle as a pure decision: ``decide(state, cause) -> (new_state, decisions)``.

No ``await``, no clients: the agent in :mod:`stream_processors.app` does the I/O around it.

States: ``unknown`` (never heard of) -> ``created`` -> ``scheduled`` -> ``live`` -> ``ended``;
``created -> live``; ``scheduled -> scheduled`` (reschedule); ``live -> ended``; ``ended`` is final.
A stream that never went live cannot be ended (the request is refused).

``streams`` and ``ingest`` are two topics: Faust interleaves their records, not in time order, so an
``IngestConnected`` can be read before the ``StreamCreated`` of its stream (a worker catching up after a
restart, a rebalance or lag). Ingest workers only get a ``stream_id`` from the API, which creates the
stream first, so a connect for an unknown stream is an early arrival, not a refusal: it is remembered
(``unknown`` with a :class:`PendingConnect`) and decides nothing; the creation (or scheduling) then
decides ``StreamWentLive`` *on the connect* (same ``event_id``, ``occurred_at`` and cause as if it had
been decided at the connect). If that session disconnected before the creation, nothing went live and
the creation decides nothing. A connect for an ended stream is still refused.

Faust is at-least-once, so every cause may arrive twice (before or after its effect was stored).
Two rules make that harmless:

- a decision is a function of its cause only: ``event_id = uuid5(NAMESPACE, f"{cause}:{kind}")``,
  ``occurred_at`` is the cause's, so re-deciding re-publishes the *identical* event;
- a cause whose effect is already in the state decides nothing: recent cause ids are remembered, a
  reconnect of the live session or a disconnect of a replaced session changes nothing, and the
  end request that ended the stream is remembered for good.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from events.base import Event
from events.ingest import IngestConnected, IngestDisconnected
from events.streams import (
    StreamCreated,
    StreamEnded,
    StreamEndReason,
    StreamEndRequested,
    StreamRole,
    StreamScheduled,
    StreamTransitionRejected,
    StreamUpdated,
    StreamWentLive,
)

__all__ = [
    "CAUSES",
    "NAMESPACE",
    "PRODUCER",
    "Decision",
    "PendingConnect",
    "StreamLifecycle",
    "StreamState",
    "decide",
    "decision_id",
    "stream_id_of",
]

# Fixed forever: changing it would give a redelivered cause a different decision id.
NAMESPACE = uuid.UUID("6f1c3b2e-8d4a-5e7f-9a10-3c5b7d9e1f20")
PRODUCER = "stream_processors.lifecycle"
RECENT_CAUSES = 32  # redeliveries come from the last commit interval: a few events per stream

Decision = StreamWentLive | StreamEnded | StreamTransitionRejected


class StreamState(enum.StrEnum):
    """Where a stream is in its life, as the lifecycle agent (the authority) sees it."""

    UNKNOWN = "unknown"
    CREATED = "created"
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingConnect:
    """An ``IngestConnected`` read before its stream's creation: what deciding on it later needs."""

    event_id: str
    occurred_at: datetime
    trace_id: str
    session_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at.isoformat(),
            "trace_id": self.trace_id,
            "session_id": self.session_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingConnect:
        return cls(
            event_id=data["event_id"],
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            trace_id=data.get("trace_id", ""),
            session_id=data["session_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamLifecycle:
    """One stream's lifecycle state: the Faust table's value, keyed by ``stream_id``."""

    stream_id: str
    state: StreamState = StreamState.UNKNOWN
    channel_id: str = ""
    match_id: str | None = None
    role: StreamRole = StreamRole.MAIN
    session_id: str = ""  # the ingest session that is (or was last) live
    live_since: datetime | None = None
    ended_at: datetime | None = None
    ended_cause: str = ""  # event_id of the cause that ended it (a redelivered end request is not refused)
    recent_causes: tuple[str, ...] = ()  # event ids already decided, newest last, bounded
    # ``unknown`` only: the first connect read before the creation, and the session connected now
    # ("" once it disconnected: the creation then decides nothing)
    pending_cause: PendingConnect | None = None
    pending_session: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the table's changelog value)."""
        return {
            "stream_id": self.stream_id,
            "state": self.state.value,
            "channel_id": self.channel_id,
            "match_id": self.match_id,
            "role": self.role.value,
            "session_id": self.session_id,
            "live_since": _iso(self.live_since),
            "ended_at": _iso(self.ended_at),
            "ended_cause": self.ended_cause,
            "recent_causes": list(self.recent_causes),
            "pending_cause": None if self.pending_cause is None else self.pending_cause.to_json(),
            "pending_session": self.pending_session,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamLifecycle:
        """The inverse of :meth:`to_json` (also reads values stored before a field existed)."""
        pending = data.get("pending_cause")
        return cls(
            stream_id=data["stream_id"],
            state=StreamState(data["state"]),
            channel_id=data.get("channel_id", ""),
            match_id=data.get("match_id"),
            role=StreamRole(data.get("role", StreamRole.MAIN.value)),
            session_id=data.get("session_id", ""),
            live_since=_from_iso(data.get("live_since")),
            ended_at=_from_iso(data.get("ended_at")),
            ended_cause=data.get("ended_cause", ""),
            recent_causes=tuple(data.get("recent_causes", ())),
            pending_cause=None if pending is None else PendingConnect.from_json(pending),
            pending_session=data.get("pending_session", ""),
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def decision_id(cause: Event, kind: type[Event]) -> uuid.UUID:
    """The deterministic id of the ``kind`` decision taken on ``cause``."""
    return uuid.uuid5(NAMESPACE, f"{cause.event_id}:{kind.event_type()}")


def stream_id_of(event: Event) -> str | None:
    """The stream a lifecycle cause is about; None for events the lifecycle ignores (telemetry)."""
    return getattr(event, "stream_id", None) if isinstance(event, CAUSES) else None


def decide(state: StreamLifecycle, cause: Event) -> tuple[StreamLifecycle, list[Decision]]:
    """The next state and the decisions to publish for ``cause`` (an event on ``streams``/``ingest``)."""
    cause_id = str(cause.event_id)
    handler = _HANDLERS.get(type(cause))
    if handler is None or cause_id in state.recent_causes:
        return state, []
    new_state, decisions = handler(state, cause)
    if new_state == state and not decisions:
        return state, []  # nothing to remember: a redelivery would change nothing either
    recent = (*new_state.recent_causes, cause_id)[-RECENT_CAUSES:]
    return replace(new_state, recent_causes=recent), decisions


Outcome = tuple[StreamLifecycle, list[Decision]]


def _on_created(state: StreamLifecycle, e: StreamCreated) -> Outcome:
    if state.state is not StreamState.UNKNOWN:
        return state, []  # a redelivered creation must not reset a stream that moved on
    created = StreamState.CREATED
    known = replace(state, state=created, channel_id=e.channel_id, match_id=e.match_id, role=e.role)
    return _go_live_if_pending(known)


def _go_live_if_pending(known: StreamLifecycle) -> Outcome:
    """The stream just became known: a connect read before it now takes effect, as if in order."""
    pending, session = known.pending_cause, known.pending_session
    known = replace(known, pending_cause=None, pending_session="")
    if pending is None or not session:
        return known, []  # no early connect, or its session already left: nothing went live
    live = replace(known, state=StreamState.LIVE, session_id=session, live_since=pending.occurred_at)
    return live, [_went_live(live, pending)]


def _on_updated(state: StreamLifecycle, e: StreamUpdated) -> Outcome:
    if state.state in (StreamState.UNKNOWN, StreamState.ENDED):
        return state, []
    match_id = state.match_id if e.match_id is None else e.match_id
    return replace(state, match_id=match_id, role=e.role or state.role), []


def _on_scheduled(state: StreamLifecycle, e: StreamScheduled) -> Outcome:
    if state.state in (StreamState.LIVE, StreamState.ENDED):
        return state, []  # too late to schedule; the API refuses it with 409 already
    match_id = state.match_id if e.match_id is None else e.match_id
    channel_id = state.channel_id or e.channel_id
    scheduled = replace(state, state=StreamState.SCHEDULED, channel_id=channel_id, match_id=match_id)
    return _go_live_if_pending(scheduled)


def _on_connected(state: StreamLifecycle, e: IngestConnected) -> Outcome:
    if state.state in (StreamState.CREATED, StreamState.SCHEDULED):
        live = replace(state, state=StreamState.LIVE, session_id=e.session_id, live_since=e.occurred_at)
        return live, [_went_live(live, _pending(e))]
    if state.state is StreamState.LIVE:
        return replace(state, session_id=e.session_id), []  # a reconnect: the newest session counts
    if state.state is StreamState.UNKNOWN:
        return _connected_early(state, e), []
    if e.session_id == state.session_id:
        return state, []  # the session that went live, redelivered
    return state, [_rejected(state, e, "go_live", "the stream has ended")]


def _connected_early(state: StreamLifecycle, e: IngestConnected) -> StreamLifecycle:
    """A connect read before the creation: remembered, decided when the stream becomes known."""
    pending = state.pending_cause
    if pending is not None and pending.event_id == str(e.event_id):
        return state  # the pending connect, redelivered (even after its session left)
    if pending is not None and state.pending_session:
        # a reconnect before the creation: it will go live on the first connect, with this session
        return replace(state, pending_session=e.session_id)
    return replace(state, pending_cause=_pending(e), pending_session=e.session_id)


def _pending(e: IngestConnected) -> PendingConnect:
    return PendingConnect(
        event_id=str(e.event_id), occurred_at=e.occurred_at, trace_id=e.trace_id, session_id=e.session_id
    )


def _on_disconnected(state: StreamLifecycle, e: IngestDisconnected) -> Outcome:
    if state.state is StreamState.UNKNOWN and state.pending_session and e.session_id == state.pending_session:
        return replace(state, pending_session=""), []  # left before its stream was known: never live
    if state.state is not StreamState.LIVE or e.session_id != state.session_id:
        return state, []  # not live, or a replaced session closing late
    return _end(state, e, StreamEndReason.PUBLISHER_STOPPED)


def _on_end_requested(state: StreamLifecycle, e: StreamEndRequested) -> Outcome:
    if state.state is StreamState.LIVE:
        return _end(state, e, e.reason)
    if state.ended_cause == str(e.event_id):
        return state, []
    reason = {
        StreamState.ENDED: "the stream has already ended",
        StreamState.UNKNOWN: "no such stream",
    }.get(state.state, "the stream never went live")
    return state, [_rejected(state, e, "end", reason)]


def _end(state: StreamLifecycle, cause: Event, reason: StreamEndReason) -> Outcome:
    cause_id, at = str(cause.event_id), cause.occurred_at
    ended = replace(state, state=StreamState.ENDED, ended_at=at, ended_cause=cause_id)
    return ended, [_ended(ended, cause, reason)]


def _head(cause: Event | PendingConnect, kind: type[Event]) -> dict[str, Any]:
    """The envelope of a decision: derived from the cause only, so redelivery yields the same event."""
    return {
        "event_id": uuid.uuid5(NAMESPACE, f"{cause.event_id}:{kind.event_type()}"),
        "occurred_at": cause.occurred_at,
        "producer": PRODUCER,
        "trace_id": cause.trace_id,
    }


def _went_live(state: StreamLifecycle, cause: PendingConnect) -> StreamWentLive:
    """Going live on a connect, decided at the connect or, if it came first, at the creation."""
    return StreamWentLive(
        **_head(cause, StreamWentLive),
        stream_id=state.stream_id,
        channel_id=state.channel_id,
        started_at=cause.occurred_at,
        ingest_session_id=cause.session_id,
        match_id=state.match_id,
        role=state.role,
        cause_event_id=cause.event_id,
    )


def _ended(state: StreamLifecycle, cause: Event, reason: StreamEndReason) -> StreamEnded:
    since = state.live_since or cause.occurred_at
    return StreamEnded(
        **_head(cause, StreamEnded),
        stream_id=state.stream_id,
        channel_id=state.channel_id,
        ended_at=cause.occurred_at,
        reason=reason,
        duration_ms=max(0, int((cause.occurred_at - since).total_seconds() * 1000)),
        cause_event_id=str(cause.event_id),
    )


def _rejected(state: StreamLifecycle, cause: Event, attempted: str, reason: str) -> StreamTransitionRejected:
    return StreamTransitionRejected(
        **_head(cause, StreamTransitionRejected),
        stream_id=state.stream_id,
        channel_id=state.channel_id,
        attempted=attempted,
        current_state=state.state.value,
        reason=reason,
        cause_event_id=str(cause.event_id),
    )


_HANDLERS: dict[type[Event], Callable[[StreamLifecycle, Any], Outcome]] = {
    StreamCreated: _on_created,
    StreamUpdated: _on_updated,
    StreamScheduled: _on_scheduled,
    StreamEndRequested: _on_end_requested,
    IngestConnected: _on_connected,
    IngestDisconnected: _on_disconnected,
}
CAUSES: tuple[type[Event], ...] = tuple(_HANDLERS)
