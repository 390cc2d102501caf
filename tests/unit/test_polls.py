"""The pure poll tallies: votes per partition (latest valid vote per voter, cut by end-of-votes
markers), partial tallies merged per poll, running tallies, closing and the final tally."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from events.base import Event
from events.polls import PollClosed, PollOpened, PollVoteCast
from infra.kafka import partition_of_key
from stream_processors.moderation.roster import ChatRoster
from stream_processors.polls.board import (
    CLOSE_GRACE_MS,
    MIN_INTERVAL_MS,
    Poll,
    PollBoard,
    epoch_ms,
    fold,
    merge,
    settle,
    tally_id,
    vote_refused,
)
from stream_processors.polls.votes import PartitionVotes, PollInfo, VoteReport

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_MS = epoch_ms(T0)
ROSTER = ChatRoster()  # nobody is an admin or a moderator: "mod" runs polls as the channel owner
EMPTY = PollBoard(stream_id="s1", channel_id="c1", owner_id="mod")
INFO = PollInfo("s1", 3, T0_MS, T0_MS + 60_000)


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


def closed(at_s: float = 10.0, poll: str = "p1") -> PollClosed:
    return PollClosed(poll_id=poll, stream_id="s1", closed_by="mod", occurred_at=T0 + timedelta(seconds=at_s))


def board(*events: Event) -> PollBoard:
    state, _ = fold(EMPTY, events, roster=ROSTER)
    return state


def at(seconds: float) -> int:
    return T0_MS + int(seconds * 1000)


# -- one vote partition ---------------------------------------------------------------------------


def test_the_latest_vote_of_each_voter_counts_by_log_order() -> None:
    votes = PartitionVotes({"p1": INFO})
    votes.vote("p1", "ann", 0, at(1), 10)
    votes.vote("p1", "bob", 1, at(1), 11)
    votes.vote("p1", "ann", 2, at(0.5), 12)  # later in the log, earlier on her clock: still later
    assert votes.tally("p1") == (0, 1, 1)
    assert not votes.vote("p1", "ann", 0, at(1), 10)  # an older record read again changes nothing
    assert not votes.vote("p1", "ann", 2, at(0.5), 12)
    assert votes.tally("p1") == (0, 1, 1)


@pytest.mark.parametrize("known_first", [True, False])
def test_a_bad_option_or_a_late_vote_leaves_the_voters_earlier_vote(known_first: bool) -> None:
    polls: dict[str, PollInfo] = {"p1": INFO} if known_first else {}
    votes = PartitionVotes(polls)
    votes.vote("p1", "ann", 1, at(1), 1)
    votes.vote("p1", "ann", 7, at(2), 2)  # no such option
    votes.vote("p1", "bob", 0, at(1), 3)
    votes.vote("p1", "bob", 2, at(60), 4)  # at the deadline: late
    votes.vote("p1", "cyd", 2, at(61), 5)  # only late votes: not counted
    polls["p1"] = INFO  # read its PollOpened after its votes: they count all the same
    assert votes.tally("p1") == (1, 1, 0)


def test_changes_report_only_what_moved_and_wait_for_the_polls_opening() -> None:
    polls: dict[str, PollInfo] = {}
    votes = PartitionVotes(polls)
    votes.vote("p1", "ann", 1, at(1), 1)
    assert votes.changes() == {} and votes.running() == {}  # its PollOpened not read yet
    polls["p1"] = INFO
    assert votes.changes() == {"p1": (0, 1, 0)}
    votes.vote("p1", "ann", 1, at(2), 2)  # the same choice again
    assert votes.changes() == {}
    assert votes.running() == {"p1": (0, 1, 0)}  # a complete report holds it all


def test_the_marker_cuts_the_partition_and_its_final_is_reported_once() -> None:
    polls: dict[str, PollInfo] = {}
    votes = PartitionVotes(polls)
    votes.vote("p1", "ann", 1, at(1), 1)
    votes.close("p1")
    assert not votes.vote("p1", "bob", 0, at(2), 3)  # after the marker: not this poll's any more
    assert votes.finals() == {}  # its PollOpened not read yet: the final waits for it
    polls["p1"] = INFO
    assert votes.finals() == {"p1": (0, 1, 0)}
    assert votes.finals() == {}
    assert votes.finals(every=True) == {"p1": (0, 1, 0)}
    votes.close("p1")  # a marker written twice
    assert votes.finals(every=True) == {"p1": (0, 1, 0)} and votes.running() == {}


def test_a_report_round_trips_and_bad_ones_are_refused() -> None:
    report = VoteReport(2, 6, {"p1": (1, 2)}, {"p2": (0, 0, 3)}, {"p1": "s1", "p2": "s2"})
    assert VoteReport.decode(report.encode()) == report
    for bad in (b"", b"{}", b'{"partition": 1}', b"[1]", None):
        with pytest.raises(ValueError):
            VoteReport.decode(bad)


# -- the board: merging, running tallies, closing ------------------------------------------------


def report(partition: int, running: dict[str, tuple[int, ...]] | None = None, finals=None, n: int = 2):
    polls = {**(running or {}), **(finals or {})}
    return VoteReport(partition, n, running or {}, finals or {}, dict.fromkeys(polls, "s1"))


def test_the_running_tally_is_the_sum_of_the_latest_partials() -> None:
    state = board(opened())
    state = merge(state, report(0, {"p1": (1, 0, 2)}))
    state = merge(state, report(1, {"p1": (0, 1, 0)}))
    state = merge(state, report(0, {"p1": (2, 0, 2)}))  # partition 0 again: replaces its partial
    assert state.polls["p1"].counts == (2, 1, 2)
    _, tallies, markers = settle(state, 0)
    assert [(t.counts, t.total, t.final) for t in tallies] == [((2, 1, 2), 5, False)] and markers == []


def test_partials_of_another_stream_or_an_unknown_poll_change_nothing() -> None:
    state = board(opened())
    other = VoteReport(0, 2, {"p1": (5, 5, 5)}, {}, {"p1": "s2"})
    assert merge(state, other) == state
    assert merge(state, report(0, {"p9": (1, 1, 1)})) == state


def test_running_tallies_at_most_every_250ms_and_only_on_change() -> None:
    state, first, _ = settle(board(opened()), at(1))
    assert [t.counts for t in first] == [(0, 0, 0)]
    state, early, _ = settle(merge(state, report(0, {"p1": (1, 0, 0)})), at(1.1))
    assert early == []
    state, due, _ = settle(state, at(1) + MIN_INTERVAL_MS)
    assert [t.counts for t in due] == [(1, 0, 0)] and due[0].event_id == tally_id("s1", "p1", 2)
    assert settle(state, at(5))[1] == []


def test_a_close_asks_for_markers_until_every_partitions_final_is_in() -> None:
    state = merge(board(opened()), report(0, {"p1": (1, 0, 0)}))
    state, _, markers = settle(fold(state, [closed(10)], roster=ROSTER)[0], 0)
    assert markers == ["p1"] and state.polls["p1"].closing
    state = merge(state, report(0, {"p1": (9, 9, 9)}))  # a running partial after the close: too late
    state, tallies, markers = settle(merge(state, report(0, finals={"p1": (1, 1, 0)})), 0)
    assert markers == ["p1"] and not any(t.final for t in tallies)  # partition 1's final missing
    state, tallies, markers = settle(merge(state, report(1, finals={"p1": (0, 0, 2)})), 0)
    assert markers == [] and [(t.counts, t.final) for t in tallies] == [((1, 1, 2), True)]
    final = tallies[0]
    assert final.event_id == tally_id("s1", "p1", None) and final.occurred_at == T0 + timedelta(seconds=10)
    assert settle(state, at(100))[1] == []  # once
    assert fold(state, [closed(11)], roster=ROSTER)[1] == {"closed_poll": 1}


def test_the_deadline_closes_by_the_wall_clock_after_the_grace() -> None:
    state = board(opened(closes_s=60))
    assert settle(state, at(60) + CLOSE_GRACE_MS - 1)[2] == []
    state, _, markers = settle(state, at(60) + CLOSE_GRACE_MS)
    assert markers == ["p1"] and state.polls["p1"].closing_at_ms == at(60)
    assert settle(board(opened(closes_s=None)), at(10_000))[2] == []  # no deadline: open until closed


def test_votes_read_from_polls_are_refused_as_before_or_re_keyed() -> None:
    state = board(opened(options=2, closes_s=60))
    vote = PollVoteCast(poll_id="p1", stream_id="s1", user_id="u", option=1, occurred_at=T0)
    assert vote_refused(state, vote) is None
    assert (
        vote_refused(state, PollVoteCast(poll_id="p2", stream_id="s1", user_id="u", option=1))
        == "unknown_poll"
    )
    assert vote_refused(state, vote.__class__(**{**_fields(vote), "option": 2})) == "bad_option"
    late = vote.__class__(**{**_fields(vote), "occurred_at": T0 + timedelta(seconds=60)})
    assert vote_refused(state, late) == "late_vote"
    assert vote_refused(fold(state, [closed(5)], roster=ROSTER)[0], vote) == "closed_poll"


def _fields(event: Event) -> dict[str, object]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}


def test_the_board_round_trips_and_the_first_layout_still_loads() -> None:
    state = merge(fold(board(opened()), [closed(10)], roster=ROSTER)[0], report(0, finals={"p1": (1, 0, 0)}))
    assert PollBoard.from_json(state.to_json()) == state
    old = {
        "stream_id": "s1",
        "polls": {
            "p1": {"poll_id": "p1", "options": 2, "votes": {"u": [1, 7]}, "seq": 3, "emitted": [0, 1]},
            "p2": {
                "poll_id": "p2",
                "options": 2,
                "closed_at_ms": 5,
                "final_counts": [2, 1],
                "final_emitted": True,
            },
        },
        "watermark_ms": 9,
        "offset": 7,
    }
    loaded = PollBoard.from_json(old)
    # an open poll's votes wait to be republished onto polls.votes; a closed one keeps its finals
    assert loaded.polls["p1"] == Poll(poll_id="p1", options=2, seq=3, emitted=(0, 1), legacy_votes={"u": 1})
    assert loaded.polls["p2"].closed and loaded.polls["p2"].counts == (2, 1)


def test_the_final_tally_is_a_recount_whatever_moment_each_partition_reads_its_marker() -> None:
    """Random votes keyed by voter over 4 partitions, changed votes, bad options, late ones; the marker
    lands in each partition at a different point of the run. The merged final equals a recount of
    each partition's log up to its marker (each voter's latest valid vote)."""
    rng = random.Random(11)
    n = 4
    logs: list[list[tuple[str, int, int]]] = [[] for _ in range(n)]  # per partition: (voter, option, at)
    marker_at = [rng.randrange(200, 400) for _ in range(n)]
    votes = [PartitionVotes({"p1": INFO}) for _ in range(n)]
    for step in range(400):
        voter = f"v{rng.randrange(120)}"
        p = partition_of_key(voter.encode(), n)
        option, cast = rng.choice([0, 1, 2, 2, 5]), at(rng.uniform(0, 61))
        if step >= marker_at[p]:
            votes[p].close("p1")  # the marker is read before this vote (a second one changes nothing)
        logs[p].append((voter, option, cast)) if step < marker_at[p] else None
        votes[p].vote("p1", voter, option, cast, step)
    for p in range(n):
        votes[p].close("p1")
    state = board(opened())
    state, _, _ = settle(fold(state, [closed(70)], roster=ROSTER)[0], 0)
    for p in range(n):
        state = merge(state, VoteReport(p, n, {}, votes[p].finals(), {"p1": "s1"}))
    _, tallies, _ = settle(state, 0)
    recount = [0, 0, 0]
    for log in logs:
        latest: dict[str, int] = {}
        for voter, option, cast in log:
            if 0 <= option < 3 and cast < at(60):
                latest[voter] = option
        for option in latest.values():
            recount[option] += 1
    assert [t.counts for t in tallies if t.final] == [tuple(recount)]
