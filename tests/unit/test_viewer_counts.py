"""The pure viewer-count decision: distinct sessions in the window, once a second, only on change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.viewers import ViewerHeartbeat
from stream_processors.viewers.counts import (
    MIN_INTERVAL_MS,
    WINDOW_MS,
    ViewerPresence,
    attach,
    count_id,
    epoch_ms,
    observe,
    settle,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def beat(session: str, at_s: float = 0.0, edge: str = "edge-a") -> ViewerHeartbeat:
    return ViewerHeartbeat(
        stream_id="s1", session_id=session, edge_id=edge, occurred_at=T0 + timedelta(seconds=at_s)
    )


def test_distinct_sessions_counted_once_across_edges_and_redeliveries() -> None:
    state = observe(ViewerPresence(audience_id="s1"), [beat("a"), beat("b"), beat("a", edge="edge-b")])
    state = observe(state, [beat("a"), beat("b")])  # redelivered
    state, changed = settle(state, 0)
    assert changed is not None and (changed.count, changed.peak) == (2, 2)


def test_at_most_once_a_second_and_only_on_change() -> None:
    state, first = settle(observe(ViewerPresence(audience_id="s1"), [beat("a")]), 0)
    assert first is not None and first.count == 1
    state, early = settle(observe(state, [beat("b", 0.5)]), 0)
    assert early is None  # due at 1 s
    state, due = settle(state, epoch_ms(T0) + MIN_INTERVAL_MS)
    assert due is not None and due.count == 2 and due.event_id != first.event_id
    state, same = settle(state, epoch_ms(T0) + 5 * MIN_INTERVAL_MS)
    assert same is None


def test_sessions_expire_after_the_window_and_peak_stays() -> None:
    state, _ = settle(observe(ViewerPresence(audience_id="s1"), [beat("a"), beat("b", 10)]), 0)
    state, changed = settle(state, epoch_ms(T0) + WINDOW_MS + 1)
    assert changed is not None and (changed.count, changed.peak) == (1, 2)
    assert set(state.sessions) == {"b"}


def test_old_heartbeat_does_not_move_a_session_back() -> None:
    state = observe(ViewerPresence(audience_id="s1"), [beat("a", 20)])
    assert observe(state, [beat("a", 0)]) == state


def test_deterministic_id_and_json_round_trip() -> None:
    state, changed = settle(observe(ViewerPresence(audience_id="s1"), [beat("a")]), 0)
    assert changed is not None and changed.event_id == count_id("s1", epoch_ms(T0))
    assert ViewerPresence.from_json(state.to_json()) == state
    assert settle(ViewerPresence.from_json(state.to_json()), 0)[1] is None  # re-decided: nothing new


def at(seconds: float) -> int:
    return epoch_ms(T0) + int(seconds * 1000)


def test_average_is_time_weighted_over_the_decided_counts() -> None:
    state, first = settle(observe(ViewerPresence(audience_id="s1"), [beat("a"), beat("b")]), 0)
    assert first is not None and first.average == 2.0  # the first count: nothing else held yet
    state, second = settle(observe(state, [beat("c", 10), beat("d", 10)]), 0)  # 2 held for 10 s
    assert second is not None and (second.count, second.average) == (4, 2.0)
    state, third = settle(observe(state, [beat("a", 20), beat("b", 20)]), at(40.5))  # c, d expired
    assert third is not None and third.count == 2
    assert third.average == round((2 * 10_000 + 4 * 30_500) / 40_500, 2)  # 4 held for 30.5 s
    assert third.peak == 4


def test_average_of_a_step_series_by_hand() -> None:
    state = observe(ViewerPresence(audience_id="s1"), [beat("a"), beat("b")])
    state, _ = settle(state, at(0))  # 2 from t=0
    state, _ = settle(observe(state, [beat(s, 10) for s in "cdef"]), at(10))  # 6 from t=10
    state, last = settle(state, at(35))  # a, b (seen at 0) expired: 4 from t=35
    assert last is not None and last.count == 4
    assert last.average == round((2 * 10 + 6 * 25) / 35, 2)
    assert ViewerPresence.from_json(state.to_json()).average == last.average


def test_a_redecided_count_carries_the_same_average_and_id() -> None:
    state = observe(ViewerPresence(audience_id="s1"), [beat("a")])
    state, _ = settle(state, at(0))
    before = observe(state, [beat("b", 5)])
    _, once = settle(before, at(5))
    _, again = settle(ViewerPresence.from_json(before.to_json()), at(5))  # after a crash: same input
    assert once == again and once is not None and once.average == 1.0


def test_first_layout_of_the_state_still_loads() -> None:
    old = {"stream_id": "s1", "sessions": {"a": 5}, "clock_ms": 5, "peak": 1, "emitted_count": 1}
    state = ViewerPresence.from_json(old | {"emitted_at_ms": 5})
    assert (state.audience_id, state.match_id, state.first_ms, state.viewer_ms) == ("s1", None, 0, 0)
    assert state.average == 1.0


def test_a_stream_joins_a_match_and_none_keeps_it() -> None:
    state = attach(ViewerPresence(audience_id="s1"), "m1")
    assert state.match_id == "m1"
    assert attach(state, None) is state  # StreamUpdated without match_id: unchanged
    assert attach(state, "m2").match_id == "m2"


def test_heartbeats_of_another_stream_are_not_observed() -> None:
    other = ViewerHeartbeat(stream_id="s2", session_id="x", edge_id="edge-a", occurred_at=T0)
    assert observe(ViewerPresence(audience_id="s1"), [other]) == ViewerPresence(audience_id="s1")
