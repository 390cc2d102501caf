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

**Silence.** An ingest node reports each live session's health every few seconds
(``IngestHealthReported``); a node that dies without a disconnect just stops. The stream remembers the
last sign of life of the session that serves it (its connect, then its reports: a report of any other
session, say of a node that was replaced, keeps nothing alive), and with ``silence`` given it ends
(``ingest_timeout``) once an ``ingest`` event or the timer's clock is more than ``silence`` past that
sign: in :func:`decide` when the next event of the stream's ingest partition is that late, in
:func:`expire` when nothing arrives. The decision derives from the last sign of life only (id, time,
trace), so whichever path takes it, and however often, it is the identical event; its ``ended_at``
is that last sign of life. A publisher that reconnects to another node within the silence continues
the stream: the new session's ``IngestConnected`` takes it over (no new decision) and the silence
follows that session from then on. Reports are no causes (not remembered in ``recent_causes``, never
decided on): a redelivered one finds its moment already in the state.

Faust is at-least-once, so every cause may arrive twice (before or after its effect was stored).
Two rules make that harmless:

- a decision is a function of its cause only: its ``event_id`` is derived from the cause's id and
  the decision's kind (:func:`decision_id`), ``occurred_at`` is the cause's and ``causation_id`` the
  cause's id, so re-deciding re-publishes the *identical* event;
- a cause whose effect is already in the state decides nothing: recent cause ids are remembered, a
  reconnect of the live session or a disconnect of a replaced session changes nothing, and the
  end request that ended the stream is remembered for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from events import ids
from events.base import Event
from events.ingest import IngestConnected, IngestDisconnected, IngestHealthReported
from events.streams import (
    StreamCreated,
    StreamEnded,
    StreamEndReason,
    StreamEndRequested,
    StreamScheduled,
    StreamTransitionRejected,
    StreamUpdated,
    StreamWentLive,
)
from stream_processors.lifecycle.state import PendingConnect, SignOfLife, StreamLifecycle, StreamState

__all__ = [
    "CAUSES",
    "PRODUCER",
    "Decision",
    "PendingConnect",
    "SignOfLife",
    "StreamLifecycle",
    "StreamState",
    "decide",
    "decision_id",
    "expire",
    "stream_id_of",
]

PRODUCER = "stream_processors.lifecycle"
RECENT_CAUSES = 32  # redeliveries come from the last commit interval: a few events per stream

Decision = StreamWentLive | StreamEnded | StreamTransitionRejected


def decision_id(cause: Event | PendingConnect | SignOfLife, kind: type[Event]) -> uuid.UUID:
    """The deterministic id of the ``kind`` decision taken on ``cause``."""
    return ids.decision_id(ids.IdSpace.LIFECYCLE, str(cause.event_id), kind.event_type())


def stream_id_of(event: Event) -> str | None:
    """The stream a lifecycle cause or health report is about; None for events the lifecycle ignores
    (other telemetry)."""
    wanted = isinstance(event, CAUSES) or isinstance(event, IngestHealthReported)
    return getattr(event, "stream_id", None) if wanted else None


def decide(
    state: StreamLifecycle, cause: Event, silence: timedelta | None = None
) -> tuple[StreamLifecycle, list[Decision]]:
    """The next state and the decisions to publish for ``cause`` (an event on ``streams``/``ingest``).

    With ``silence``, a live stream whose serving session was last heard of more than ``silence``
    before ``cause`` ends first (see the module docstring); None leaves the silence rule out.
    """
    if isinstance(cause, IngestHealthReported):
        silent, ended = _end_if_silent(state, cause, silence)
        heard, nothing = _on_health(silent, cause)
        return heard, [*ended, *nothing]
    cause_id = str(cause.event_id)
    handler = _HANDLERS.get(type(cause))
    if handler is None or cause_id in state.recent_causes:
        return state, []
    silent, ended = _end_if_silent(state, cause, silence)
    new_state, decisions = handler(silent, cause)
    decisions = [*ended, *decisions]
    if new_state == state and not decisions:
        return state, []  # nothing to remember: a redelivery would change nothing either
    recent = (*new_state.recent_causes, cause_id)[-RECENT_CAUSES:]
    return replace(new_state, recent_causes=recent), decisions


def expire(
    state: StreamLifecycle, now: datetime, silence: timedelta
) -> tuple[StreamLifecycle, list[Decision]]:
    """The silence rule when no event comes: the stream at the timer's clock ``now``."""
    heard = state.heard
    if state.state is not StreamState.LIVE or heard is None or now - heard.occurred_at <= silence:
        return state, []  # (a state stored before ``heard`` existed waits for its next report)
    return _end(state, heard, StreamEndReason.INGEST_TIMEOUT)


Outcome = tuple[StreamLifecycle, list[Decision]]


def _end_if_silent(state: StreamLifecycle, cause: Event, silence: timedelta | None) -> Outcome:
    """The silence rule at an ``ingest`` event's time. Only there: that topic's partition holds the
    stream's reports in the order they were sent, whereas ``streams`` is read interleaved with it,
    ahead or behind, so the time of its causes says nothing about what the ingest sent meanwhile."""
    if silence is None or not isinstance(cause, INGEST_EVENTS):
        return state, []
    return expire(state, cause.occurred_at, silence)


def _on_health(state: StreamLifecycle, e: IngestHealthReported) -> Outcome:
    heard = state.heard
    serving = {StreamState.LIVE: state.session_id, StreamState.UNKNOWN: state.pending_session}
    if e.session_id != serving.get(state.state):
        return state, []  # not live, or a session that does not serve the stream (any more)
    if heard is not None and e.occurred_at <= heard.occurred_at:
        return state, []  # redelivered, or older than what was heard already
    return replace(state, heard=_sign(e)), []


def _sign(e: IngestConnected | IngestHealthReported | PendingConnect) -> SignOfLife:
    return SignOfLife(event_id=str(e.event_id), occurred_at=e.occurred_at, trace_id=e.trace_id)


def _on_created(state: StreamLifecycle, e: StreamCreated) -> Outcome:
    if state.state is not StreamState.UNKNOWN:
        return state, []  # a redelivered creation must not reset a stream that moved on
    created = StreamState.CREATED
    known = replace(state, state=created, channel_id=e.channel_id, match_id=e.match_id, role=e.role)
    return _go_live_if_pending(known)


def _go_live_if_pending(known: StreamLifecycle) -> Outcome:
    """The stream just became known: a connect read before it now takes effect, as if in order."""
    pending, session, heard = known.pending_cause, known.pending_session, known.heard
    known = replace(known, pending_cause=None, pending_session="", heard=None)
    if pending is None or not session:
        return replace(known, node=""), []  # no early connect, or it left: nothing went live
    live = replace(
        known,
        state=StreamState.LIVE,
        session_id=session,
        heard=heard or _sign(pending),  # the pending session's newest connect or report
        live_since=pending.occurred_at,
    )
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
        live = replace(_serving(state, e), state=StreamState.LIVE, live_since=e.occurred_at)
        return live, [_went_live(live, _pending(e))]
    if state.state is StreamState.LIVE and e.session_id == state.session_id:
        return state, []  # the live session's connect, redelivered: what was heard since stands
    if state.state is StreamState.LIVE:
        # A reconnect, on this node or another (whose node died, say): the newest session serves
        # the stream from now on, and the silence rule listens to it alone.
        return _serving(state, e), []
    if state.state is StreamState.UNKNOWN:
        return _connected_early(state, e), []
    if e.session_id == state.session_id:
        return state, []  # the session that went live, redelivered
    return state, [_rejected(state, e, "go_live", "the stream has ended")]


def _serving(state: StreamLifecycle, e: IngestConnected) -> StreamLifecycle:
    return replace(state, session_id=e.session_id, node=e.node, heard=_sign(e))


def _connected_early(state: StreamLifecycle, e: IngestConnected) -> StreamLifecycle:
    """A connect read before the creation: remembered, decided when the stream becomes known."""
    pending = state.pending_cause
    if pending is not None and pending.event_id == str(e.event_id):
        return state  # the pending connect, redelivered (even after its session left)
    serving = replace(state, pending_session=e.session_id, node=e.node, heard=_sign(e))
    if pending is not None and state.pending_session:
        # a reconnect before the creation: it will go live on the first connect, with this session
        return serving
    return replace(serving, pending_cause=_pending(e))


def _pending(e: IngestConnected) -> PendingConnect:
    return PendingConnect(
        event_id=str(e.event_id),
        occurred_at=e.occurred_at,
        trace_id=e.trace_id,
        session_id=e.session_id,
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


def _end(state: StreamLifecycle, cause: Event | SignOfLife, reason: StreamEndReason) -> Outcome:
    cause_id, at = str(cause.event_id), cause.occurred_at
    ended = replace(state, state=StreamState.ENDED, ended_at=at, ended_cause=cause_id)
    return ended, [_ended(ended, cause, reason)]


def _head(cause: Event | PendingConnect | SignOfLife, kind: type[Event]) -> dict[str, Any]:
    """The envelope of a decision: derived from the cause only, so redelivery yields the same event."""
    return {
        "event_id": decision_id(cause, kind),
        "occurred_at": cause.occurred_at,
        "producer": PRODUCER,
        "trace_id": cause.trace_id,
        "causation_id": str(cause.event_id),
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
    )


def _ended(state: StreamLifecycle, cause: Event | SignOfLife, reason: StreamEndReason) -> StreamEnded:
    since = state.live_since or cause.occurred_at
    return StreamEnded(
        **_head(cause, StreamEnded),
        stream_id=state.stream_id,
        channel_id=state.channel_id,
        ended_at=cause.occurred_at,
        reason=reason,
        duration_ms=max(0, int((cause.occurred_at - since).total_seconds() * 1000)),
    )


def _rejected(state: StreamLifecycle, cause: Event, attempted: str, reason: str) -> StreamTransitionRejected:
    return StreamTransitionRejected(
        **_head(cause, StreamTransitionRejected),
        stream_id=state.stream_id,
        channel_id=state.channel_id,
        attempted=attempted,
        current_state=state.state.value,
        reason=reason,
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
INGEST_EVENTS = (IngestConnected, IngestDisconnected, IngestHealthReported)
