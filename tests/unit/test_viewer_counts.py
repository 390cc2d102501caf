"""The viewer counts, pure: sessions per presence partition, partial counts merged exactly per stream
(and per match), at most once a second, only on change, with peak and average."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from infra.kafka import partition_of_key
from stream_processors.viewers.counts import (
    MIN_INTERVAL_MS,
    WINDOW_MS,
    ViewerPresence,
    count_id,
    epoch_ms,
    observe_partial,
    settle,
)
from stream_processors.viewers.presence import MATCH, STREAM, PartialReport, PartitionPresence

T0 = epoch_ms(datetime(2026, 1, 1, tzinfo=UTC))


def at(seconds: float) -> int:
    return T0 + int(seconds * 1000)


def presence() -> PartitionPresence:
    return PartitionPresence(WINDOW_MS)


def test_a_session_counts_once_however_often_and_from_wherever_it_beats() -> None:
    p = presence()
    for at_s in (0, 0, 5, 3):  # redelivered, again later, and an older one late
        p.observe("s1", "a", at(at_s))
    p.observe("s1", "b", at(1))
    assert p.counts() == {(STREAM, "s1"): 2}
    assert p.changes() == {(STREAM, "s1"): 2}
    p.observe("s1", "a", at(6))
    assert p.changes() == {}  # nothing changed since: nothing to report


def test_sessions_expire_after_the_window_exactly() -> None:
    p = presence()
    p.observe("s1", "a", at(0))
    p.observe("s1", "b", at(0.9))  # the same second as a: filed together, expired apart
    p.observe("s1", "c", at(10))
    p.expire(at(30))  # a seen exactly a window ago: gone; b not yet
    assert p.counts() == {(STREAM, "s1"): 2}
    p.expire(at(30.9))
    assert p.counts() == {(STREAM, "s1"): 1}
    p.observe("s1", "c", at(35))  # seen again: moves to a later second
    p.expire(at(40.5))
    assert p.counts() == {(STREAM, "s1"): 1}
    p.expire(at(65.1))
    assert p.counts() == {} and p.sessions == 0


def test_a_heartbeat_already_outside_the_window_counts_nothing() -> None:
    p = presence()
    p.observe("s1", "a", at(100))
    p.observe("s1", "old", at(100) - WINDOW_MS)
    assert p.counts() == {(STREAM, "s1"): 1}


def test_a_viewer_of_two_streams_of_a_match_counts_once_in_the_match() -> None:
    p = presence()
    for stream, session in (("main", "alice"), ("pov", "alice"), ("main", "bob"), ("pov", "carol")):
        p.observe(stream, session, at(0), "m1")
    assert p.counts() == {(STREAM, "main"): 2, (STREAM, "pov"): 2, (MATCH, "m1"): 3}
    p.observe("main", "alice", at(20), "m1")  # alice keeps watching main only
    p.expire(at(30))
    assert p.counts()[(MATCH, "m1")] == 1  # alice: bob and carol are gone
    p.expire(at(50))
    assert p.counts() == {}  # nothing left, and nothing was reported to take back


def test_a_stream_joining_a_match_late_brings_its_sessions() -> None:
    p = presence()
    p.observe("pov", "alice", at(0))
    p.observe("main", "alice", at(0), "m1")
    p.observe("pov", "dave", at(0))
    assert p.counts()[(MATCH, "m1")] == 1
    p.attach("pov", "m1")
    assert p.counts()[(MATCH, "m1")] == 2  # alice once, dave
    p.attach("pov", "m2")  # moved to another match
    assert (p.counts()[(MATCH, "m1")], p.counts()[(MATCH, "m2")]) == (1, 2)


def test_the_sum_of_the_partials_is_a_recount_of_the_sessions() -> None:
    """Random heartbeats (late, repeated, on several streams of two matches) over 4 partitions,
    keyed by session as the edges key them: at every moment the partials add up to a brute-force
    recount of the sessions seen within the window."""
    rng = random.Random(7)
    partitions = [presence() for _ in range(4)]
    match_of = {"s1": "m1", "s2": "m1", "s3": "m2", "s4": None}
    seen: dict[tuple[str, str], int] = {}
    for step in range(3_000):
        now = at(step * 0.05)
        for _ in range(3):
            stream, session = rng.choice(list(match_of)), f"v{rng.randrange(300)}"
            when = now - rng.randrange(0, 4_000)  # batches arrive up to 4 s late
            part = partitions[partition_of_key(session.encode(), len(partitions))]
            part.observe(stream, session, when, match_of[stream])
            seen[(stream, session)] = max(seen.get((stream, session), 0), when)
        if step % 40 == 0:
            for part in partitions:
                part.expire(now)
            horizon = max(p.clock_ms for p in partitions) - WINDOW_MS
            assert all(p.clock_ms == now or p.clock_ms > now for p in partitions)
            present = {key for key, when in seen.items() if when > horizon}
            merged: dict[tuple[str, str], int] = {}
            for part in partitions:
                for audience, count in part.counts().items():
                    merged[audience] = merged.get(audience, 0) + count
            for stream in match_of:
                assert merged.get((STREAM, stream), 0) == sum(1 for s, _ in present if s == stream)
            for match in ("m1", "m2"):
                viewers = {v for s, v in present if match_of[s] == match}
                assert merged.get((MATCH, match), 0) == len(viewers)


def test_a_complete_report_lists_every_audience_and_zeroes_what_was_reported() -> None:
    p = presence()
    p.observe("s1", "a", at(0))
    p.observe("s2", "b", at(20))
    p.mark_reported(p.counts())
    p.expire(at(31))
    assert p.changes() == {(STREAM, "s1"): 0}
    assert p.counts() == {(STREAM, "s2"): 1}


def test_a_report_round_trips_and_bad_ones_are_refused() -> None:
    report = PartialReport(3, at(1), {"s1": 2, "s2": 0}, complete=True)
    assert PartialReport.decode(report.encode()) == report
    for bad in (b"", b"{}", b'{"partition": 1}', b"[1]", None):
        with pytest.raises(ValueError):
            PartialReport.decode(bad)


def merged(*parts: tuple[int, int, int]) -> ViewerPresence:
    state = ViewerPresence(audience_id="s1")
    for partition, count, as_of in parts:
        state = observe_partial(state, partition, count, as_of)
    return state


def test_the_count_is_the_sum_of_each_partitions_latest_partial() -> None:
    state = merged((0, 5, at(0)), (1, 7, at(0)), (0, 6, at(1)), (0, 2, at(0.5)))  # the last is stale
    assert state.count == 13
    state, changed = settle(state, 0)
    assert changed is not None and (changed.count, changed.peak) == (13, 13)
    assert changed.event_id == count_id("s1", at(1))


def test_nothing_is_decided_before_a_first_partial() -> None:
    assert settle(ViewerPresence(audience_id="s1"), at(5)) == (
        ViewerPresence(audience_id="s1", clock_ms=at(5)),
        None,
    )


def test_at_most_once_a_second_and_only_on_change() -> None:
    state, first = settle(merged((0, 1, at(0))), 0)
    assert first is not None and first.count == 1
    state, early = settle(observe_partial(state, 1, 1, at(0.5)), 0)
    assert early is None  # due at 1 s
    state, due = settle(state, at(0) + MIN_INTERVAL_MS)
    assert due is not None and due.count == 2 and due.event_id != first.event_id
    state, same = settle(state, at(5))
    assert same is None


def test_average_is_time_weighted_over_the_decided_counts() -> None:
    state, first = settle(merged((0, 2, at(0))), 0)
    assert first is not None and first.average == 2.0  # the first count: nothing else held yet
    state, second = settle(observe_partial(state, 1, 2, at(10)), 0)  # 2 held for 10 s
    assert second is not None and (second.count, second.average) == (4, 2.0)
    state, third = settle(observe_partial(state, 1, 0, at(40.5)), 0)  # 4 held for 30.5 s
    assert third is not None and third.count == 2
    assert third.average == round((2 * 10_000 + 4 * 30_500) / 40_500, 2)
    assert third.peak == 4


def test_a_redecided_count_carries_the_same_average_and_id() -> None:
    state, _ = settle(merged((0, 1, at(0))), 0)
    before = observe_partial(state, 0, 2, at(5))
    _, once = settle(before, at(5))
    _, again = settle(ViewerPresence.from_json(before.to_json()), at(5))  # after a crash: same input
    assert once == again and once is not None and once.average == 1.0


def test_json_round_trip_and_the_earlier_layouts_still_load() -> None:
    state, _ = settle(merged((0, 3, at(0)), (2, 1, at(0))), 0)
    assert ViewerPresence.from_json(state.to_json()) == state
    old = {"stream_id": "s1", "sessions": {"a": 5}, "clock_ms": 5, "peak": 1, "emitted_count": 1}
    loaded = ViewerPresence.from_json(old | {"emitted_at_ms": 5, "match_id": "m1"})
    assert (loaded.audience_id, loaded.parts, loaded.peak, loaded.average) == ("s1", {}, 1, 1.0)
    assert settle(loaded, at(60))[1] is None  # its sessions are recounted by the partitions first
