"""The lifecycle decision, exhaustively: every (state, cause) pair, redelivery, out-of-order causes.

``streams`` and ``ingest`` are different topics, read interleaved in no time order: a connect can be
read before its stream's creation (it is remembered, and decided at the creation).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.base import Event
from events.codec import EventCodec
from events.ids import IdSpace
from events.ingest import IngestConnected, IngestDisconnected, IngestProtocol, SegmentPublished
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
from schemas import SCHEMAS_DIR
from stream_processors.lifecycle.decisions import (
    CAUSES,
    RECENT_CAUSES,
    PendingConnect,
    StreamLifecycle,
    StreamState,
    decide,
    decision_id,
    stream_id_of,
)
from tests.unit.event_samples import sample_event

T0 = datetime(2025, 6, 1, 18, 0, tzinfo=UTC)
SID = "stream-1"
SESSION = "session-live"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def created(**kw: Any) -> StreamCreated:
    return StreamCreated(
        stream_id=SID, channel_id="chan-1", owner_id="u-1", title="final", match_id="m-1", **kw
    )


def scheduled(**kw: Any) -> StreamScheduled:
    return StreamScheduled(stream_id=SID, channel_id="chan-1", scheduled_start=at(60), **kw)


def updated(**kw: Any) -> StreamUpdated:
    return StreamUpdated(stream_id=SID, updated_by="u-1", **kw)


def end_requested(**kw: Any) -> StreamEndRequested:
    fields: dict[str, Any] = {"reason": StreamEndReason.ENDED_BY_OWNER, "occurred_at": at(90), **kw}
    return StreamEndRequested(stream_id=SID, channel_id="chan-1", requested_by="u-1", **fields)


def connected(session: str = SESSION, **kw: Any) -> IngestConnected:
    fields: dict[str, Any] = {"occurred_at": at(30), **kw}
    return IngestConnected(
        stream_id=SID, session_id=session, protocol=IngestProtocol.RTMP, node="n1", **fields
    )


def disconnected(session: str = SESSION, **kw: Any) -> IngestDisconnected:
    fields: dict[str, Any] = {"occurred_at": at(75), **kw}
    return IngestDisconnected(stream_id=SID, session_id=session, **fields)


UNKNOWN = StreamLifecycle(stream_id=SID)
CREATED = StreamLifecycle(stream_id=SID, state=StreamState.CREATED, channel_id="chan-1", match_id="m-1")
SCHEDULED = replace(CREATED, state=StreamState.SCHEDULED)
LIVE = replace(CREATED, state=StreamState.LIVE, session_id=SESSION, live_since=at(30))
ENDED = replace(LIVE, state=StreamState.ENDED, ended_at=at(75), ended_cause=str(uuid.UUID(int=99)))
STATES = {s.state: s for s in (UNKNOWN, CREATED, SCHEDULED, LIVE, ENDED)}

CAUSE_FACTORIES: dict[str, Callable[[], Event]] = {
    "StreamCreated": created,
    "StreamUpdated": lambda: updated(title="new"),
    "StreamScheduled": scheduled,
    "StreamEndRequested": end_requested,
    "IngestConnected": connected,
    "IngestDisconnected": disconnected,
}

NOTHING = None  # no decision
# (state, cause) -> (state after, kind of decision or None)
EXPECTED: dict[tuple[StreamState, str], tuple[StreamState, type[Event] | None]] = {
    (StreamState.UNKNOWN, "StreamCreated"): (StreamState.CREATED, NOTHING),
    (StreamState.UNKNOWN, "StreamUpdated"): (StreamState.UNKNOWN, NOTHING),
    (StreamState.UNKNOWN, "StreamScheduled"): (StreamState.SCHEDULED, NOTHING),
    (StreamState.UNKNOWN, "StreamEndRequested"): (StreamState.UNKNOWN, StreamTransitionRejected),
    # read before the creation: remembered, decided when the stream becomes known (see PENDING_EXPECTED)
    (StreamState.UNKNOWN, "IngestConnected"): (StreamState.UNKNOWN, NOTHING),
    (StreamState.UNKNOWN, "IngestDisconnected"): (StreamState.UNKNOWN, NOTHING),
    (StreamState.CREATED, "StreamCreated"): (StreamState.CREATED, NOTHING),
    (StreamState.CREATED, "StreamUpdated"): (StreamState.CREATED, NOTHING),
    (StreamState.CREATED, "StreamScheduled"): (StreamState.SCHEDULED, NOTHING),
    (StreamState.CREATED, "StreamEndRequested"): (StreamState.CREATED, StreamTransitionRejected),
    (StreamState.CREATED, "IngestConnected"): (StreamState.LIVE, StreamWentLive),
    (StreamState.CREATED, "IngestDisconnected"): (StreamState.CREATED, NOTHING),
    (StreamState.SCHEDULED, "StreamCreated"): (StreamState.SCHEDULED, NOTHING),
    (StreamState.SCHEDULED, "StreamUpdated"): (StreamState.SCHEDULED, NOTHING),
    (StreamState.SCHEDULED, "StreamScheduled"): (StreamState.SCHEDULED, NOTHING),
    (StreamState.SCHEDULED, "StreamEndRequested"): (StreamState.SCHEDULED, StreamTransitionRejected),
    (StreamState.SCHEDULED, "IngestConnected"): (StreamState.LIVE, StreamWentLive),
    (StreamState.SCHEDULED, "IngestDisconnected"): (StreamState.SCHEDULED, NOTHING),
    (StreamState.LIVE, "StreamCreated"): (StreamState.LIVE, NOTHING),
    (StreamState.LIVE, "StreamUpdated"): (StreamState.LIVE, NOTHING),
    (StreamState.LIVE, "StreamScheduled"): (StreamState.LIVE, NOTHING),
    (StreamState.LIVE, "StreamEndRequested"): (StreamState.ENDED, StreamEnded),
    (StreamState.LIVE, "IngestConnected"): (StreamState.LIVE, NOTHING),
    (StreamState.LIVE, "IngestDisconnected"): (StreamState.ENDED, StreamEnded),
    (StreamState.ENDED, "StreamCreated"): (StreamState.ENDED, NOTHING),
    (StreamState.ENDED, "StreamUpdated"): (StreamState.ENDED, NOTHING),
    (StreamState.ENDED, "StreamScheduled"): (StreamState.ENDED, NOTHING),
    (StreamState.ENDED, "StreamEndRequested"): (StreamState.ENDED, StreamTransitionRejected),
    # the session that went live, redelivered: nothing (a new session is refused, see below)
    (StreamState.ENDED, "IngestConnected"): (StreamState.ENDED, NOTHING),
    (StreamState.ENDED, "IngestDisconnected"): (StreamState.ENDED, NOTHING),
}
PAIRS = sorted(EXPECTED, key=lambda p: (list(StreamState).index(p[0]), p[1]))


def test_the_table_covers_every_state_and_cause() -> None:
    assert {(s, c) for s in StreamState for c in CAUSE_FACTORIES} == set(EXPECTED)
    assert {cls.__name__ for cls in CAUSES} == set(CAUSE_FACTORIES)


@pytest.mark.parametrize(("state", "cause_name"), PAIRS, ids=lambda v: str(v))
def test_every_state_and_cause(state: StreamState, cause_name: str) -> None:
    cause = CAUSE_FACTORIES[cause_name]()
    new, decisions = decide(STATES[state], cause)
    want_state, want_kind = EXPECTED[(state, cause_name)]
    assert new.state is want_state
    assert [type(d) for d in decisions] == ([want_kind] if want_kind else [])
    for decision in decisions:
        assert decision.causation_id == str(cause.event_id)
        assert decision.event_id == uuid.uuid5(
            IdSpace.LIFECYCLE.value, f"{cause.event_id}:{type(decision).__name__}"
        )
        assert decision.occurred_at == cause.occurred_at
        assert decision.stream_id == SID


@pytest.mark.parametrize(("state", "cause_name"), PAIRS, ids=lambda v: str(v))
def test_a_redelivered_cause_after_its_effect_was_stored_changes_nothing(
    state: StreamState, cause_name: str
) -> None:
    cause = CAUSE_FACTORIES[cause_name]()
    once, _decisions = decide(STATES[state], cause)
    twice, again = decide(once, cause)
    assert (twice, again) == (once, [])


@pytest.mark.parametrize(("state", "cause_name"), PAIRS, ids=lambda v: str(v))
def test_a_cause_decided_again_before_its_effect_was_stored_yields_identical_events(
    state: StreamState, cause_name: str
) -> None:
    cause = CAUSE_FACTORIES[cause_name]()
    assert decide(STATES[state], cause) == decide(STATES[state], cause)


def test_going_live_carries_the_stream_facts() -> None:
    cause = connected(trace_id="abc")
    live, [went] = decide(CREATED, cause)
    assert isinstance(went, StreamWentLive)
    assert (went.channel_id, went.match_id, went.role) == ("chan-1", "m-1", StreamRole.MAIN)
    assert (went.started_at, went.ingest_session_id, went.trace_id) == (at(30), SESSION, "abc")
    assert (live.session_id, live.live_since) == (SESSION, at(30))


def test_ending_measures_the_broadcast_and_keeps_the_reason() -> None:
    ended, [by_owner] = decide(LIVE, end_requested(occurred_at=at(90)))
    assert isinstance(by_owner, StreamEnded)
    assert by_owner.reason is StreamEndReason.ENDED_BY_OWNER
    assert (by_owner.ended_at, by_owner.duration_ms) == (at(90), 60 * 60 * 1000)
    assert ended.ended_at == at(90)
    _, [stopped] = decide(LIVE, disconnected())
    assert isinstance(stopped, StreamEnded)
    assert stopped.reason is StreamEndReason.PUBLISHER_STOPPED


def test_rejections_say_what_was_attempted_and_why() -> None:
    _, [unknown] = decide(UNKNOWN, end_requested())
    _, [never_live] = decide(SCHEDULED, end_requested())
    _, [new_session] = decide(ENDED, connected(session="another"))
    assert isinstance(unknown, StreamTransitionRejected)
    assert (unknown.attempted, unknown.current_state, unknown.channel_id) == ("end", "unknown", "")
    assert isinstance(never_live, StreamTransitionRejected)
    assert (never_live.attempted, never_live.current_state) == ("end", "scheduled")
    assert isinstance(new_session, StreamTransitionRejected)
    assert (new_session.attempted, new_session.current_state) == ("go_live", "ended")


def test_the_end_request_that_ended_a_stream_is_never_refused_later() -> None:
    request = end_requested()
    ended, _ = decide(LIVE, request)
    forgetful = replace(ended, recent_causes=())  # long after: out of the recent window
    assert decide(forgetful, request) == (forgetful, [])
    _, [refused] = decide(forgetful, end_requested())  # another request is refused
    assert isinstance(refused, StreamTransitionRejected)


def test_a_reconnect_moves_the_session_and_a_late_disconnect_of_the_old_one_is_ignored() -> None:
    reconnected, none = decide(LIVE, connected(session="second", occurred_at=at(40)))
    assert none == [] and reconnected.session_id == "second" and reconnected.live_since == at(30)
    still, nothing = decide(reconnected, disconnected(session=SESSION))
    assert still.state is StreamState.LIVE and nothing == []
    ended, [end] = decide(still, disconnected(session="second"))
    assert ended.state is StreamState.ENDED and isinstance(end, StreamEnded)


def test_creation_redelivered_after_going_live_does_not_reset_the_stream() -> None:
    creation = created()
    state, _ = decide(UNKNOWN, creation)
    state, _ = decide(state, connected())
    state = replace(state, recent_causes=())
    assert decide(state, creation)[0].state is StreamState.LIVE


EARLY = connected()  # one connect, read before its stream's creation
PENDING = replace(
    UNKNOWN,
    pending_cause=PendingConnect(
        event_id=str(EARLY.event_id), occurred_at=at(30), trace_id="", session_id=SESSION
    ),
    pending_session=SESSION,
)
# unknown with a pending connect: cause -> (state after, kind of decision or None)
PENDING_EXPECTED: dict[str, tuple[StreamState, type[Event] | None]] = {
    "StreamCreated": (StreamState.LIVE, StreamWentLive),
    "StreamUpdated": (StreamState.UNKNOWN, NOTHING),
    "StreamScheduled": (StreamState.LIVE, StreamWentLive),
    "StreamEndRequested": (StreamState.UNKNOWN, StreamTransitionRejected),
    "IngestConnected": (StreamState.UNKNOWN, NOTHING),
    "IngestDisconnected": (StreamState.UNKNOWN, NOTHING),
}


@pytest.mark.parametrize("cause_name", sorted(PENDING_EXPECTED))
def test_every_cause_with_a_connect_pending(cause_name: str) -> None:
    assert set(PENDING_EXPECTED) == set(CAUSE_FACTORIES)
    cause = CAUSE_FACTORIES[cause_name]()
    new, decisions = decide(PENDING, cause)
    want_state, want_kind = PENDING_EXPECTED[cause_name]
    assert new.state is want_state
    assert [type(d) for d in decisions] == ([want_kind] if want_kind else [])
    for decision in decisions:
        # going live is decided on the pending connect, anything else on the cause itself
        decided_on = EARLY if isinstance(decision, StreamWentLive) else cause
        assert decision.causation_id == str(decided_on.event_id)
        assert decision.event_id == uuid.uuid5(
            IdSpace.LIFECYCLE.value, f"{decided_on.event_id}:{type(decision).__name__}"
        )
        assert decision.occurred_at == decided_on.occurred_at
    assert decide(new, cause) == (new, [])  # redelivered after its effect was stored
    assert decide(PENDING, cause) == (new, decisions)  # or before: the identical events


def test_a_connect_before_the_creation_is_remembered_without_a_decision() -> None:
    state, decisions = decide(UNKNOWN, EARLY)
    assert decisions == []
    assert (state.state, state.pending_session, state.recent_causes) == (
        StreamState.UNKNOWN,
        SESSION,
        (str(EARLY.event_id),),
    )
    assert state.pending_cause == PENDING.pending_cause


def test_a_connect_before_the_creation_goes_live_with_the_connect_as_cause() -> None:
    early = connected(trace_id="abc")
    pending, _ = decide(UNKNOWN, early)
    live, [went] = decide(pending, created())
    in_order, [went_in_order] = decide(CREATED, early)
    assert went == went_in_order  # the identical event: same id, time, trace and facts
    assert isinstance(went, StreamWentLive)
    assert went.causation_id == str(early.event_id)
    assert went.event_id == uuid.uuid5(IdSpace.LIFECYCLE.value, f"{early.event_id}:StreamWentLive")
    assert (went.occurred_at, went.started_at, went.trace_id) == (at(30), at(30), "abc")
    assert (went.channel_id, went.match_id, went.ingest_session_id) == ("chan-1", "m-1", SESSION)
    assert replace(live, recent_causes=()) == replace(in_order, recent_causes=())
    assert (live.pending_cause, live.pending_session) == (None, "")
    # the connect redelivered now, even out of the recent window, changes nothing
    assert decide(live, early) == (live, [])
    assert decide(replace(live, recent_causes=()), early)[1] == []


def test_a_connect_and_its_disconnect_before_the_creation_decide_nothing() -> None:
    state, none = decide(UNKNOWN, connected())
    state, nothing = decide(state, disconnected())
    assert none == nothing == [] and state.state is StreamState.UNKNOWN
    known, decisions = decide(state, created())
    assert decisions == [] and known.state is StreamState.CREATED
    assert (known.pending_cause, known.pending_session, known.session_id) == (None, "", "")
    scheduled_first, decisions = decide(state, scheduled())
    assert decisions == [] and scheduled_first.state is StreamState.SCHEDULED


def test_a_pending_connect_redelivered_is_not_decided_twice() -> None:
    state, _ = decide(UNKNOWN, EARLY)
    assert decide(state, EARLY) == (state, [])
    forgetful = replace(state, recent_causes=())  # out of the recent window: the pending cause knows it
    assert decide(forgetful, EARLY) == (forgetful, [])
    closed, _ = decide(state, disconnected())
    assert decide(replace(closed, recent_causes=()), EARLY)[0].pending_session == ""  # stays closed
    live, [went] = decide(state, created())
    assert isinstance(went, StreamWentLive)
    assert decide(live, EARLY) == (live, [])


def test_a_creation_arriving_twice_decides_once() -> None:
    creation = created()
    pending, _ = decide(UNKNOWN, EARLY)
    live, [went] = decide(pending, creation)
    assert decide(pending, creation) == (live, [went])  # again before the effect was stored: identical
    assert decide(live, creation) == (live, [])  # again after it
    assert decide(replace(live, recent_causes=()), creation)[1] == []
    assert decide(live, created())[1] == []  # another creation of the same stream


def test_a_reconnect_before_the_creation_goes_live_on_the_first_connect_with_the_newest_session() -> None:
    state, _ = decide(UNKNOWN, EARLY)
    state, none = decide(state, connected(session="second", occurred_at=at(40)))
    assert none == [] and state.pending_session == "second"
    live, [went] = decide(state, created())
    assert isinstance(went, StreamWentLive)
    assert (went.causation_id, went.ingest_session_id, went.started_at) == (
        str(EARLY.event_id),
        SESSION,
        at(30),
    )
    assert (live.session_id, live.live_since) == ("second", at(30))
    assert decide(live, disconnected(session=SESSION)) == (live, [])  # the replaced session
    ended, [end] = decide(live, disconnected(session="second"))
    assert ended.state is StreamState.ENDED and isinstance(end, StreamEnded)


def test_a_new_session_after_an_early_one_left_goes_live_on_the_new_connect() -> None:
    state, _ = decide(UNKNOWN, EARLY)
    state, _ = decide(state, disconnected())
    again = connected(session="second", occurred_at=at(50))
    state, _ = decide(state, again)
    live, [went] = decide(state, created())
    assert isinstance(went, StreamWentLive)
    assert (went.causation_id, went.ingest_session_id) == (str(again.event_id), "second")
    assert (live.session_id, live.live_since) == ("second", at(50))


def test_a_stray_disconnect_before_the_creation_is_not_remembered() -> None:
    assert decide(UNKNOWN, disconnected()) == (UNKNOWN, [])
    assert decide(PENDING, disconnected(session="another")) == (PENDING, [])


@pytest.mark.parametrize("connect_at", [0, 1, 2])
def test_every_interleaving_of_the_two_topics_goes_live_once_identically(connect_at: int) -> None:
    streams: list[Event] = [created(), updated(title="renamed")]
    causes = [*streams[:connect_at], EARLY, *streams[connect_at:]]
    state, decided = UNKNOWN, []
    for cause in causes:
        state, decisions = decide(state, cause)
        decided.extend(decisions)
    assert decided == decide(CREATED, EARLY)[1]
    assert state.state is StreamState.LIVE


def test_a_cause_that_changes_nothing_is_not_remembered() -> None:
    assert decide(CREATED, disconnected()) == (CREATED, [])
    assert decide(ENDED, created()) == (ENDED, [])


def test_a_whole_life_replayed_in_order_twice_decides_each_thing_once() -> None:
    causes: list[Event] = [created(), scheduled(), scheduled(), connected(), disconnected(), end_requested()]
    state, decided = UNKNOWN, []
    for cause in [*causes, *causes]:
        state, decisions = decide(state, cause)
        decided.extend(decisions)
    assert [type(d) for d in decided] == [StreamWentLive, StreamEnded, StreamTransitionRejected]
    assert state.state is StreamState.ENDED


def test_the_recent_cause_window_is_bounded() -> None:
    state = CREATED
    for i in range(RECENT_CAUSES + 10):
        state, _d = decide(state, scheduled(match_id=f"m-{i}"))
    assert len(state.recent_causes) == RECENT_CAUSES


def test_updates_change_the_match_and_role_until_the_stream_ends() -> None:
    state, _ = decide(CREATED, updated(match_id="m-2", role=StreamRole.POV))
    assert (state.match_id, state.role) == ("m-2", StreamRole.POV)
    state, _ = decide(state, updated(title="only the title"))
    assert (state.match_id, state.role) == ("m-2", StreamRole.POV)
    assert decide(ENDED, updated(match_id="m-3"))[0].match_id == "m-1"


def test_telemetry_is_not_a_cause() -> None:
    segment = sample_event(SegmentPublished, stream_id=SID)
    assert stream_id_of(segment) is None
    assert decide(LIVE, segment) == (LIVE, [])
    assert stream_id_of(connected()) == SID


@pytest.mark.parametrize(
    "state",
    [*STATES.values(), PENDING, replace(PENDING, pending_session="")],
    ids=[*(s.value for s in STATES), "pending", "pending-left"],
)
def test_the_state_survives_its_json_form(state: StreamLifecycle) -> None:
    with_causes = replace(state, recent_causes=("a", "b"))
    assert StreamLifecycle.from_json(json.loads(json.dumps(with_causes.to_json()))) == with_causes


def test_a_state_stored_before_the_pending_fields_existed_still_reads() -> None:
    for state in STATES.values():
        stored = state.to_json()
        del stored["pending_cause"], stored["pending_session"]
        assert StreamLifecycle.from_json(stored) == state


def test_decision_ids_depend_on_the_cause_and_the_kind_only() -> None:
    cause = connected()
    assert decision_id(cause, StreamWentLive) == decision_id(cause, StreamWentLive)
    assert decision_id(cause, StreamWentLive) != decision_id(cause, StreamTransitionRejected)
    assert decision_id(cause, StreamWentLive) != decision_id(connected(), StreamWentLive)


def test_every_decision_encodes_with_its_schema() -> None:
    codec = EventCodec.load(SCHEMAS_DIR)
    decisions = [
        *decide(CREATED, connected())[1],
        *decide(LIVE, disconnected())[1],
        *decide(UNKNOWN, end_requested())[1],
    ]
    assert [codec.decode(codec.encode(d)) for d in decisions] == decisions
