"""Viewing sessions, pure: a session starts at its first heartbeat on its partition, ends when it
expires (with its last heartbeat), and keeps its start across a takeover; the events' ids follow from
(stream, session, start)."""

from __future__ import annotations

from datetime import UTC, datetime

from events.viewers import ViewingSessionEnded, ViewingSessionStarted
from stream_processors.viewers.counts import WINDOW_MS, epoch_ms
from stream_processors.viewers.presence import OpenSession, PartitionPresence
from stream_processors.viewers.presence_worker import session_events

T0 = epoch_ms(datetime(2026, 1, 1, tzinfo=UTC))


def at(seconds: float) -> int:
    return T0 + int(seconds * 1000)


def test_a_session_starts_once_and_ends_with_its_last_heartbeat() -> None:
    p = PartitionPresence(WINDOW_MS)
    for second in (0, 15, 30, 15):  # a late, older heartbeat changes nothing
        p.observe("s1", "a", at(second), "m1", user_id="u1", edge_id="e1")
    p.observe("s2", "a", at(20), edge_id="e1")  # the same session on another stream: its own
    assert p.started == [
        OpenSession("s1", "a", at(0), "e1", "u1", "m1"),
        OpenSession("s2", "a", at(20), "e1"),
    ]
    p.started = []
    p.expire(at(29) + WINDOW_MS)  # s2's last heartbeat (20 s) is out of the window, s1's (30 s) in it
    assert p.ended == [(OpenSession("s2", "a", at(20), "e1"), at(20))]
    p.expire(at(31) + WINDOW_MS)
    assert p.ended[-1] == (OpenSession("s1", "a", at(0), "e1", "u1", "m1"), at(30))
    p.observe("s1", "a", at(100), edge_id="e2")  # back later: a new session of the stream
    assert p.started == [OpenSession("s1", "a", at(100), "e2")]


def test_a_takeover_continues_the_sessions_it_reopens_and_ends_the_unseen() -> None:
    earlier = [OpenSession("s1", "a", at(0), "e1", "u1"), OpenSession("s1", "b", at(5), "e1")]
    p = PartitionPresence(WINDOW_MS)
    p.reopen(earlier)
    p.observe("s1", "a", at(600), edge_id="e2")  # re-read: a is still watching
    p.end_unseen(at(590))  # b was not seen in the re-read: it ended before it
    assert p.started == [] and p.ended == [(earlier[1], at(590))]
    p.ended = []
    p.expire(at(600) + WINDOW_MS + 1)
    assert p.ended == [(earlier[0], at(600))]  # its start kept across the takeover


def test_session_events_carry_the_watch_time_and_ids_from_stream_session_and_start() -> None:
    opened = OpenSession("s1", "a", at(0), "e1", "u1", "m1")
    started, ended = session_events([opened], [(opened, at(90))])
    assert isinstance(started, ViewingSessionStarted) and isinstance(ended, ViewingSessionEnded)
    assert ended.watch_ms == 90_000 and ended.user_id == "u1" and ended.match_id == "m1"
    again = session_events([opened], [(opened, at(90))])
    assert [e.event_id for e in again] == [started.event_id, ended.event_id]  # decided twice: one event
    assert started.event_id != ended.event_id


def test_a_session_gone_for_a_window_and_back_is_two_sessions_even_before_any_expiry() -> None:
    """A takeover re-reading a stretch nobody read (the worker was down) runs no expiry meanwhile."""
    p = PartitionPresence(WINDOW_MS)
    for second in (0, 10, 10 + WINDOW_MS / 1000 - 0.001, 100, 110):
        p.observe("s1", "a", at(second), edge_id="e1")
    first = OpenSession("s1", "a", at(0), "e1")
    second = OpenSession("s1", "a", at(100), "e1")
    assert p.started == [first, second]
    assert p.ended == [(first, at(10 + WINDOW_MS / 1000 - 0.001))]


def test_a_re_read_meeting_the_heartbeats_of_a_session_already_ended_starts_nothing() -> None:
    """The earlier owner ended it (published) shortly before it stopped; the re-read window reaches back
    over its last heartbeats: they belong to the ended session, not to a new one."""
    p = PartitionPresence(WINDOW_MS)
    p.reopen([], {("s1", "a"): at(10)})
    for second in (8, 9, 10):
        p.observe("s1", "a", at(second), edge_id="e1")
    assert p.started == []
    p.expire(at(10) + WINDOW_MS + 1)
    assert p.ended == []  # ended once, by the earlier owner
    p.observe("s1", "a", at(100), edge_id="e1")  # back later: a new session
    assert p.started == [OpenSession("s1", "a", at(100), "e1")]
