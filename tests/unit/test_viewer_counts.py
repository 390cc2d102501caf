"""The pure viewer-count decision: distinct sessions in the window, once a second, only on change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.viewers import ViewerHeartbeat
from stream_processors.viewer_counts import (
    MIN_INTERVAL_MS,
    WINDOW_MS,
    ViewerPresence,
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
