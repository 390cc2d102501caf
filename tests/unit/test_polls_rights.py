"""Who may open and close polls (the poll agent is the authority), and `/endpoll` closing every open poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.polls import ALL_OPEN, PollClosed, PollOpened, PollVoteCast
from events.streams import StreamCreated
from events.users import ModeratorAppointed, ModeratorRemoved, UserRegistered, UserRole
from stream_processors.moderation.roster import ChatRoster
from stream_processors.polls.board import PollBoard, allowed, fold, merge, own, settle, vote_refused
from stream_processors.polls.votes import VoteReport

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def roster() -> ChatRoster:
    """``boss`` is an admin, ``mia`` moderates channel c1, ``max`` moderates another channel."""
    r = ChatRoster()
    r.apply(UserRegistered(user_id="boss", username="boss", display_name="Boss", role=UserRole.ADMIN))
    r.apply(ModeratorAppointed(channel_id="c1", user_id="mia", appointed_by="owner"))
    r.apply(ModeratorAppointed(channel_id="c2", user_id="max", appointed_by="owner2"))
    return r


def stream_board() -> PollBoard:
    created = StreamCreated(stream_id="s1", channel_id="c1", owner_id="owner", title="Final")
    return own(PollBoard(stream_id="s1"), created)


def opened(poll: str, by: str, at_s: float = 0.0) -> PollOpened:
    return PollOpened(
        poll_id=poll,
        stream_id="s1",
        question="Who wins?",
        options=("a", "b"),
        opened_by=by,
        occurred_at=T0 + timedelta(seconds=at_s),
    )


def closed(poll: str, by: str, at_s: float) -> PollClosed:
    return PollClosed(poll_id=poll, stream_id="s1", closed_by=by, occurred_at=T0 + timedelta(seconds=at_s))


def vote(poll: str, user: str, option: int, at_s: float = 1.0) -> PollVoteCast:
    return PollVoteCast(
        poll_id=poll, stream_id="s1", user_id=user, option=option, occurred_at=T0 + timedelta(seconds=at_s)
    )


def test_owner_channel_moderator_and_admin_may_others_may_not() -> None:
    board, r = stream_board(), roster()
    assert [allowed(board, user, r) for user in ("owner", "mia", "boss")] == [True, True, True]
    assert [allowed(board, user, r) for user in ("max", "viewer", "")] == [False, False, False]
    r.apply(ModeratorRemoved(channel_id="c1", user_id="mia", removed_by="owner"))
    assert not allowed(board, "mia", r)


def test_before_stream_created_is_read_only_admins_may() -> None:
    unknown, r = PollBoard(stream_id="s1"), roster()
    assert allowed(unknown, "boss", r)
    assert not allowed(unknown, "owner", r) and not allowed(unknown, "mia", r)


def test_a_viewers_poll_opens_nothing_and_is_counted() -> None:
    board, ignored = fold(stream_board(), [opened("p1", "viewer")], roster=roster())
    assert board.polls == {} and ignored == {"not_allowed": 1}
    assert vote_refused(board, vote("p1", "u1", 0)) == "unknown_poll"
    assert settle(board, 0)[1] == []  # no tally, not even the initial one


def test_an_allowed_open_gets_its_zero_tally_at_once() -> None:
    board, ignored = fold(stream_board(), [opened("p1", "mia")], roster=roster())
    assert ignored == {}
    _, tallies, _ = settle(board, 0)
    assert [(t.poll_id, t.counts, t.total, t.final) for t in tallies] == [("p1", (0, 0), 0, False)]


def test_a_viewers_close_changes_nothing() -> None:
    board, ignored = fold(stream_board(), [opened("p1", "owner"), closed("p1", "viewer", 2)], roster=roster())
    assert ignored == {"not_allowed": 1} and not board.polls["p1"].closing_at_ms
    board, ignored = fold(board, [closed(ALL_OPEN, "max", 3)], roster=roster())
    assert ignored == {"not_allowed": 1} and not board.polls["p1"].closing_at_ms


def test_endpoll_closes_every_open_poll_with_its_time_as_the_final_tally_time() -> None:
    board, _ = fold(stream_board(), [opened("p1", "owner"), opened("p2", "mia", 0.5)], roster=roster())
    board, ignored = fold(board, [closed(ALL_OPEN, "mia", 5)], roster=roster())
    assert ignored == {} and all(p.closing for p in board.polls.values())
    board, _, markers = settle(board, 0)
    assert sorted(markers) == ["p1", "p2"]  # end-of-votes markers for both
    finals = VoteReport(0, 1, {}, {"p1": (0, 1), "p2": (1, 1)}, {"p1": "s1", "p2": "s1"})
    board, tallies, markers = settle(merge(board, finals), 0)
    done = {t.poll_id: t for t in tallies if t.final}
    assert done["p1"].counts == (0, 1) and done["p2"].counts == (1, 1) and markers == []
    assert {t.occurred_at for t in done.values()} == {T0 + timedelta(seconds=5)}
    # nothing left open: a second /endpoll is ignored, and says so
    _, ignored = fold(board, [closed(ALL_OPEN, "owner", 6)], roster=roster())
    assert ignored == {"no_open_poll": 1}


def test_the_board_keeps_channel_and_owner_across_a_restart() -> None:
    board = stream_board()
    assert PollBoard.from_json(board.to_json()) == board
    assert (board.channel_id, board.owner_id) == ("c1", "owner")
    assert PollBoard.from_json({"stream_id": "s1"}).owner_id is None  # a board stored before rights
