"""The pure poll tally: one vote per user, changed votes move, closed polls ignore, deadline, redelivery."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from events.base import Event
from events.polls import PollClosed, PollOpened, PollVoteCast
from stream_processors.moderation.roster import ChatRoster
from stream_processors.polls.board import (
    CLOSE_GRACE_MS,
    IDLE_GRACE_MS,
    MIN_INTERVAL_MS,
    PollBoard,
    epoch_ms,
    fold,
    settle,
    tally_id,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_MS = epoch_ms(T0)
ROSTER = ChatRoster()  # nobody is an admin or a moderator: "mod" runs polls as the channel owner
EMPTY = PollBoard(stream_id="s1", channel_id="c1", owner_id="mod")


def opened(poll: str = "p1", options: int = 3, closes_s: float | None = 60) -> PollOpened:
    return PollOpened(
        poll_id=poll,
        stream_id="s1",
        question="Who wins?",
        options=tuple(f"o{i}" for i in range(options)),
        opened_by="mod",
        closes_at=None if closes_s is None else T0 + timedelta(seconds=closes_s),
        occurred_at=T0,
    )


def vote(user: str, option: int, at_s: float = 1.0, poll: str = "p1") -> PollVoteCast:
    return PollVoteCast(
        poll_id=poll, stream_id="s1", user_id=user, option=option, occurred_at=T0 + timedelta(seconds=at_s)
    )


def closed(at_s: float = 10.0, poll: str = "p1") -> PollClosed:
    return PollClosed(poll_id=poll, stream_id="s1", closed_by="mod", occurred_at=T0 + timedelta(seconds=at_s))


def logged(events: Iterable[Event], first: int = 0) -> list[tuple[Event, int]]:
    """The events as records at consecutive log offsets from ``first``."""
    return [(event, first + i) for i, event in enumerate(events)]


def board(*events: Event) -> PollBoard:
    state, _ = fold(EMPTY, logged(events), roster=ROSTER)
    return state


def test_one_vote_per_user_changed_vote_moves_repeat_changes_nothing() -> None:
    state = board(opened(), vote("a", 0), vote("b", 0), vote("a", 0, 1.0), vote("a", 2, 2.0), vote("c", 1))
    assert state.polls["p1"].counts == (1, 1, 1)
    again, ignored = fold(
        state, [(vote("a", 2, 2.0), 4), (vote("b", 0), 2)], roster=ROSTER
    )  # redelivered records
    assert again.polls == state.polls and not ignored
    later, _ = fold(
        state, [(vote("a", 2, 2.0), 10), (vote("b", 0), 11)], roster=ROSTER
    )  # repeated, later in the log
    assert later.polls["p1"].counts == (1, 1, 1)


def test_older_vote_redelivered_after_a_newer_one_does_not_move_back() -> None:
    state = board(opened(), vote("a", 0, 1.0), vote("a", 1, 2.0))  # offsets 1 and 2
    state, ignored = fold(state, [(vote("a", 0, 1.0), 1)], roster=ROSTER)
    assert state.polls["p1"].counts == (0, 1, 0) and ignored["stale_vote"] == 1


def test_latest_vote_is_decided_by_log_offset_not_occurred_at() -> None:
    # equal occurred_at: the later offset wins, in either order of arrival in a batch
    same = board(opened(), vote("a", 0, 5.0), vote("a", 2, 5.0))
    assert same.polls["p1"].counts == (0, 0, 1) and same.polls["p1"].votes["a"] == (2, 2)
    # a client clock behind: the later record wins although its occurred_at is older
    skewed = board(opened(), vote("a", 1, 5.0), vote("a", 0, 3.0))
    assert skewed.polls["p1"].counts == (1, 0, 0)
    # a redelivered older record with a newer occurred_at changes nothing
    state, ignored = fold(skewed, [(vote("a", 1, 5.0), 1)], roster=ROSTER)
    assert state.polls["p1"].counts == (1, 0, 0) and ignored == {"stale_vote": 1}


def test_unknown_closed_bad_option_and_late_votes_are_ignored() -> None:
    _, ignored = fold(
        EMPTY,
        logged(
            [
                vote("a", 0, poll="nope"),
                opened(),
                vote("a", 3),
                vote("a", -1),
                vote("b", 1, at_s=60),  # at closes_at: late
                closed(10),
                vote("c", 1, 11),
                opened(),  # redelivered open
                opened("p2", options=1),
                opened("p3", options=6),
            ]
        ),
        roster=ROSTER,
    )
    assert ignored == {
        "unknown_poll": 1,
        "bad_option": 2,
        "late_vote": 1,
        "closed_poll": 1,
        "duplicate_poll": 1,
        "invalid_poll": 2,
    }


def test_running_tallies_at_most_every_250ms_and_only_on_change() -> None:
    state, tallies = settle(board(opened()), 0)
    assert [t.counts for t in tallies] == [(0, 0, 0)] and not tallies[0].final
    state, _ = fold(state, [(vote("a", 1, 0.1), 1)], roster=ROSTER)
    state, early = settle(state, 0)
    assert early == []  # due at 250 ms
    state, due = settle(state, T0_MS + MIN_INTERVAL_MS)
    assert [t.counts for t in due] == [(0, 1, 0)] and due[0].total == 1
    assert due[0].event_id == tally_id("s1", "p1", 2) != tallies[0].event_id
    state, same = settle(state, T0_MS + 10 * MIN_INTERVAL_MS)
    assert same == []


def test_final_tally_on_poll_closed_once() -> None:
    state, _ = settle(board(opened(), vote("a", 0), vote("b", 2)), 0)
    state, tallies = settle(fold(state, [(closed(5), 3)], roster=ROSTER)[0], 0)
    assert [(t.counts, t.final) for t in tallies] == [((1, 0, 1), True)]
    assert tallies[0].event_id == tally_id("s1", "p1", None)
    state, ignored = fold(state, logged([closed(5), vote("c", 1, 6)], 4), roster=ROSTER)
    assert ignored == {"closed_poll": 2}
    assert settle(state, T0_MS + 100_000)[1] == []
    assert state.polls["p1"].counts == (1, 0, 1)


def test_deadline_closes_on_event_time_after_grace_with_final_tally() -> None:
    state, _ = settle(board(opened(closes_s=30), vote("a", 1, 29.9)), 0)
    deadline = T0_MS + 30_000
    # the wall clock long past the deadline closes nothing: this worker may be lagging
    state, before = settle(state, deadline + IDLE_GRACE_MS - 1, caught_up=True)
    assert not any(t.final for t in before)
    state, before = settle(state, deadline + 10 * IDLE_GRACE_MS, caught_up=False)
    assert not any(t.final for t in before)
    state, before = settle(state, 0, watermark_ms=deadline + CLOSE_GRACE_MS - 1)
    assert not any(t.final for t in before)
    state, tallies = settle(state, 0, watermark_ms=deadline + CLOSE_GRACE_MS)
    assert [(t.counts, t.final) for t in tallies] == [((0, 1, 0), True)]
    assert settle(state, deadline + 60_000, watermark_ms=deadline + 60_000)[1] == []


def test_a_record_past_the_deadline_read_closes_the_poll() -> None:
    state = board(opened(closes_s=30), vote("a", 1, 29.9), vote("b", 2, 32.5, poll="other"))
    assert settle(state, 0)[0].polls["p1"].closed


def test_deadline_by_wall_clock_only_when_caught_up_and_idle_grace_passed() -> None:
    state, _ = settle(board(opened(closes_s=30), vote("a", 1, 29.9)), 0)
    state, tallies = settle(state, T0_MS + 30_000 + IDLE_GRACE_MS, caught_up=True)
    assert [(t.counts, t.final) for t in tallies] == [((0, 1, 0), True)]


def test_votes_read_after_the_deadline_by_wall_clock_still_count() -> None:
    """A lagging worker: the timer ticks far past the deadline before the votes are read."""
    state, _ = settle(board(opened(closes_s=30)), 0)
    wall = T0_MS + 30_000 + 5 * CLOSE_GRACE_MS  # minutes of lag would do the same
    for _ in range(3):
        state, ticked = settle(state, wall, watermark_ms=T0_MS)
        assert not any(t.final for t in ticked)
    in_time = [vote(f"u{i}", i % 3, 20 + i / 10) for i in range(7)] + [vote("late", 0, 30.0)]
    state, ignored = fold(state, logged(in_time, 1), roster=ROSTER)
    assert ignored == {"late_vote": 1}
    state, tallies = settle(state, wall + 250, watermark_ms=T0_MS + 33_000)
    finals = [t for t in tallies if t.final]
    assert [t.counts for t in finals] == [(3, 2, 2)] and finals[0].total == 7


def test_poll_without_deadline_stays_open_until_closed() -> None:
    state, _ = settle(board(opened(closes_s=None), vote("a", 0)), T0_MS + 10**9)
    assert not state.polls["p1"].closed


def test_redelivery_after_restart_never_double_counts() -> None:
    """Publish-then-store: the worker restarts from the stored board and gets the batch again."""
    events = [opened(), *[vote(f"u{i}", i % 3, 1 + i / 100) for i in range(30)]]
    events += [vote(f"u{i}", (i + 1) % 3, 2 + i / 100) for i in range(10)]  # ten change their vote
    state, first = settle(fold(EMPTY, logged(events), roster=ROSTER)[0], 0)
    restored = PollBoard.from_json(state.to_json())
    assert restored == state
    replayed, again = settle(fold(restored, logged(events), roster=ROSTER)[0], 0)
    assert again == [] and replayed.polls["p1"].counts == state.polls["p1"].counts == (9, 11, 10)
    # a crash before storing: the same batch re-decided from the old board gives the same event
    assert settle(fold(EMPTY, logged(events), roster=ROSTER)[0], 0)[1] == first


def test_closed_polls_are_remembered_without_their_votes() -> None:
    state, _ = settle(board(opened(), vote("a", 0), closed(5)), 0)
    assert state.polls["p1"].votes == {} and state.polls["p1"].counts == (1, 0, 0)
    assert PollBoard.from_json(state.to_json()) == state
