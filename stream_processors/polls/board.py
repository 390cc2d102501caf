"""Poll tallies as a pure decision: ``fold`` poll events into a stream's board, ``merge`` the vote
partitions' partial tallies, ``settle`` the tallies.

No ``await``, no clients: :mod:`stream_processors.polls.agent` does the I/O around it.

Votes are not read here. They are keyed by voter on ``polls.votes`` and tallied per partition by the
vote workers (:mod:`stream_processors.polls.votes`), which report a *partial tally* per poll and
partition. A stream's :class:`PollBoard` holds its polls; an open poll keeps the latest partial tally
of each vote partition (``parts``), and its counts are their sum: exact, as a voter's votes are all
on one partition. A tally is replaced, never incremented, so a report read twice changes nothing.

Rights: the edge publishes ``/poll`` and ``/endpoll`` typed in chat without knowing who may (it has no
database), so this module is the authority. A PollOpened or PollClosed counts only when its actor is
the stream's channel owner (the board learns channel and owner from ``StreamCreated``, see
:func:`own`), a moderator of that channel or a platform admin (the moderation agent's
:class:`~stream_processors.moderation.roster.ChatRoster`); otherwise it is ignored as
``not_allowed`` (:func:`allowed`). A PollClosed whose ``poll_id`` is :data:`~events.polls.ALL_OPEN`
closes every open poll of the stream (``/endpoll``: the edge does not know which are open).

Closing a poll is a position in every vote partition's log: a PollClosed accepted here, or the
deadline (the wall clock :data:`CLOSE_GRACE_MS` past ``closes_at``: votes cast in time but still in
flight), puts the poll in *closing*, and ``settle`` returns it so the agent writes an end-of-votes
marker (:class:`~events.polls.PollVotingClosed`) to each partition. Each vote partition reports its
*final* partial tally (the votes before its marker, cast before ``closes_at``); when every partition's
final is in, the poll is closed with their sum, whatever moment each partition read its marker at.
``settle`` decides:

- a running :class:`PollTallyUpdated` when an open poll's counts differ from the last one emitted and
  at least :data:`MIN_INTERVAL_MS` has passed since it; its id is derived from
  ``"stream:poll:seq"`` (:func:`tally_id`) with the poll's tally sequence number, so re-deciding it
  after a crash gives the same event id;
- one final tally (``final=True``, id ``"stream:poll:final"``, ``occurred_at`` = when the poll closed:
  the accepted PollClosed's ``occurred_at``, or ``closes_at``). A closed poll keeps its final counts,
  so a redelivered PollOpened does not reopen it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from events.base import Event
from events.ids import IdSpace, decision_id
from events.polls import (
    ALL_OPEN,
    POLL_MAX_OPTIONS,
    POLL_MIN_OPTIONS,
    PollClosed,
    PollOpened,
    PollTallyUpdated,
    PollVoteCast,
)
from events.streams import StreamCreated
from stream_processors.moderation.roster import ChatRoster
from stream_processors.polls.votes import VoteReport

__all__ = [
    "CLOSE_GRACE_MS",
    "MAX_CLOSED",
    "MIN_INTERVAL_MS",
    "PRODUCER",
    "Poll",
    "PollBoard",
    "actor_of",
    "allowed",
    "epoch_ms",
    "fold",
    "merge",
    "own",
    "settle",
    "tally_id",
    "vote_refused",
]

PRODUCER = "stream_processors.polls"
MIN_INTERVAL_MS = 250  # at most one running tally every 250 ms per poll
CLOSE_GRACE_MS = 2_000  # a poll's votes end this long after closes_at (votes cast in time, in flight)
MAX_CLOSED = 50  # closed polls remembered per stream (oldest forgotten first)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """``moment`` (tz-aware) as integer milliseconds since the epoch (exact: no float on the way)."""
    return (moment - _EPOCH) // _MS


def from_epoch_ms(ms: int) -> datetime:
    """The inverse of :func:`epoch_ms` for millisecond times (a final tally's time is its close's)."""
    return _EPOCH + ms * _MS


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll:
    """One poll of a stream: open, closing (its end-of-votes markers written) or closed."""

    poll_id: str
    options: int  # how many options
    closes_at_ms: int | None = None
    parts: dict[int, tuple[int, ...]] = field(default_factory=dict)  # vote partition -> running partial
    finals: dict[int, tuple[int, ...]] = field(default_factory=dict)  # vote partition -> final partial
    partitions: int = 0  # how many vote partitions report (0: none yet)
    closing_at_ms: int = 0  # 0 = open; else when it closed (its markers are due or written)
    closed_at_ms: int = 0  # 0 = not closed (every final in)
    final_counts: tuple[int, ...] = ()  # kept once closed (the partials are dropped then)
    seq: int = 0  # running tallies emitted
    emitted: tuple[int, ...] | None = None  # counts of the last running tally
    emitted_at_ms: int = 0
    final_emitted: bool = False
    # Votes counted here before votes were keyed by voter (the first layout), to be republished onto
    # ``polls.votes`` once, so an open poll keeps them across the upgrade: voter -> option.
    legacy_votes: dict[str, int] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.closed_at_ms != 0

    @property
    def closing(self) -> bool:
        return self.closing_at_ms != 0 and not self.closed

    @property
    def counts(self) -> tuple[int, ...]:
        """One count per option: the sum of the partitions' partials (the final counts once closed)."""
        if self.closed:
            return self.final_counts
        return _summed(self.parts.values(), self.options)

    def to_json(self) -> dict[str, Any]:
        return {
            "poll_id": self.poll_id,
            "options": self.options,
            "closes_at_ms": self.closes_at_ms,
            "parts": {str(p): list(t) for p, t in self.parts.items()},
            "finals": {str(p): list(t) for p, t in self.finals.items()},
            "partitions": self.partitions,
            "closing_at_ms": self.closing_at_ms,
            "closed_at_ms": self.closed_at_ms,
            "final_counts": list(self.final_counts),
            "seq": self.seq,
            "emitted": None if self.emitted is None else list(self.emitted),
            "emitted_at_ms": self.emitted_at_ms,
            "final_emitted": self.final_emitted,
            "legacy_votes": self.legacy_votes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Poll:
        """The inverse of :meth:`to_json`; also reads the first layout, whose ``votes`` (voter ->
        [option, offset]) of an open poll become its :attr:`legacy_votes`."""
        emitted = data.get("emitted")
        closes_at = data.get("closes_at_ms")
        closed_at = int(data.get("closed_at_ms", 0))
        return cls(
            poll_id=data["poll_id"],
            options=int(data["options"]),
            closes_at_ms=None if closes_at is None else int(closes_at),
            parts={int(p): tuple(int(c) for c in t) for p, t in data.get("parts", {}).items()},
            finals={int(p): tuple(int(c) for c in t) for p, t in data.get("finals", {}).items()},
            partitions=int(data.get("partitions", 0)),
            closing_at_ms=int(data.get("closing_at_ms", closed_at)),
            closed_at_ms=closed_at,
            final_counts=tuple(int(c) for c in data.get("final_counts", ())),
            seq=int(data.get("seq", 0)),
            emitted=None if emitted is None else tuple(int(c) for c in emitted),
            emitted_at_ms=int(data.get("emitted_at_ms", 0)),
            final_emitted=bool(data.get("final_emitted", False)),
            legacy_votes={
                **({} if closed_at else {str(u): int(v[0]) for u, v in data.get("votes", {}).items()}),
                **{str(u): int(o) for u, o in data.get("legacy_votes", {}).items()},
            },
        )


def _summed(tallies: Iterable[tuple[int, ...]], options: int) -> tuple[int, ...]:
    counts = [0] * options
    for tally in tallies:
        for option, count in enumerate(tally[:options]):
            counts[option] += count
    return tuple(counts)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollBoard:
    """One stream's polls: the Faust table's value, keyed by ``stream_id``."""

    stream_id: str
    channel_id: str | None = None  # from StreamCreated: whose moderators may run polls
    owner_id: str | None = None  # from StreamCreated: the channel owner
    polls: dict[str, Poll] = field(default_factory=dict)
    clock_ms: int = 0  # the latest time seen (events and ticks); never goes back; for the rate limit

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the table's changelog value)."""
        return {
            "stream_id": self.stream_id,
            "channel_id": self.channel_id,
            "owner_id": self.owner_id,
            "polls": {pid: poll.to_json() for pid, poll in self.polls.items()},
            "clock_ms": self.clock_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PollBoard:
        """The inverse of :meth:`to_json` (the first layout's watermark and offset are not needed)."""
        return cls(
            stream_id=data["stream_id"],
            channel_id=data.get("channel_id"),
            owner_id=data.get("owner_id"),
            polls={str(pid): Poll.from_json(p) for pid, p in data.get("polls", {}).items()},
            clock_ms=int(data.get("clock_ms", 0)),
        )


def own(board: PollBoard, created: StreamCreated) -> PollBoard:
    """``board`` knowing its stream's channel and owner (who, besides admins, may run polls)."""
    if (board.channel_id, board.owner_id) == (created.channel_id, created.owner_id):
        return board
    return replace(board, channel_id=created.channel_id, owner_id=created.owner_id)


def allowed(board: PollBoard, user_id: str, roster: ChatRoster) -> bool:
    """May ``user_id`` open or close polls on the board's stream? Owner, channel moderator or admin."""
    if roster.is_admin(user_id):
        return True
    if board.channel_id is None:
        return False  # StreamCreated not read (yet): only admins
    return user_id == board.owner_id or roster.is_moderator(board.channel_id, user_id)


def actor_of(event: Event) -> str | None:
    """Who opened or closed a poll (None for other events)."""
    if isinstance(event, PollOpened):
        return event.opened_by
    if isinstance(event, PollClosed):
        return event.closed_by
    return None


def fold(board: PollBoard, events: Iterable[Event], *, roster: ChatRoster) -> tuple[PollBoard, Counter[str]]:
    """``board`` with the poll events of ``polls`` applied in log order, and why some were ignored
    (reason -> count). ``roster`` decides who may open and close polls (see :func:`allowed`).
    Votes on ``polls`` (PollVoteCast, written by earlier edges) are not counted here: the vote
    workers re-key them onto ``polls.votes``."""
    polls = dict(board.polls)
    ignored = Counter[str]()
    clock = board.clock_ms
    for event in events:
        if getattr(event, "stream_id", None) != board.stream_id or isinstance(event, PollVoteCast):
            continue
        clock = max(clock, epoch_ms(event.occurred_at))
        reason: str | None
        actor = actor_of(event)
        if actor is not None and not allowed(board, actor, roster):
            reason = "not_allowed"
        elif isinstance(event, PollOpened):
            reason = _open(polls, event)
        elif isinstance(event, PollClosed) and event.poll_id == ALL_OPEN:
            reason = _close_all(polls, epoch_ms(event.occurred_at))
        elif isinstance(event, PollClosed):
            reason = _close(polls, event.poll_id, epoch_ms(event.occurred_at))
        else:
            reason = "not_a_poll_event"
        if reason is not None:
            ignored[reason] += 1
    if polls == board.polls and clock == board.clock_ms:
        return board, ignored
    return replace(board, polls=_bounded(polls), clock_ms=clock), ignored


def vote_refused(board: PollBoard, vote: PollVoteCast) -> str | None:
    """Why a vote read from ``polls`` (keyed by stream, in order with the polls' opens and closes)
    does not count, or None when it is re-keyed onto ``polls.votes`` to be counted there."""
    poll = board.polls.get(vote.poll_id)
    if poll is None:
        return "unknown_poll"
    if poll.closing_at_ms:
        return "closed_poll"
    if poll.closes_at_ms is not None and epoch_ms(vote.occurred_at) >= poll.closes_at_ms:
        return "late_vote"
    if not 0 <= vote.option < poll.options:
        return "bad_option"
    return None


def merge(board: PollBoard, report: VoteReport) -> PollBoard:
    """``board`` with one vote partition's partial tallies of its polls: a running one replaces that
    partition's earlier one (an open poll), a final one is that partition's last word (a closing poll,
    or one about to be: the finals of a redelivered close may arrive first)."""
    polls = dict(board.polls)
    for poll_id, stream_id in report.streams.items():
        poll = polls.get(poll_id)
        if stream_id != board.stream_id or poll is None or poll.closed:
            continue
        running, final = report.running.get(poll_id), report.finals.get(poll_id)
        parts = poll.parts if running is None or poll.closing else {**poll.parts, report.partition: running}
        finals = poll.finals if final is None else {**poll.finals, report.partition: final}
        polls[poll_id] = replace(poll, parts=parts, finals=finals, partitions=report.partitions)
    if polls == board.polls:
        return board
    return replace(board, polls=polls)


def _open(polls: dict[str, Poll], e: PollOpened) -> str | None:
    if e.poll_id in polls:
        return "duplicate_poll"  # redelivered (or a reused id): the poll keeps its tallies
    if not POLL_MIN_OPTIONS <= len(e.options) <= POLL_MAX_OPTIONS:
        return "invalid_poll"
    closes_at = None if e.closes_at is None else epoch_ms(e.closes_at)
    polls[e.poll_id] = Poll(poll_id=e.poll_id, options=len(e.options), closes_at_ms=closes_at)
    return None


def _close(polls: dict[str, Poll], poll_id: str, at_ms: int) -> str | None:
    poll = polls.get(poll_id)
    if poll is None:
        return "unknown_poll"
    if poll.closing_at_ms:
        return "closed_poll"
    polls[poll_id] = replace(poll, closing_at_ms=max(at_ms, 1))
    return None


def _close_all(polls: dict[str, Poll], at_ms: int) -> str | None:
    open_ids = [poll_id for poll_id, poll in polls.items() if not poll.closing_at_ms]
    for poll_id in open_ids:
        _close(polls, poll_id, at_ms)
    return None if open_ids else "no_open_poll"


def _bounded(polls: dict[str, Poll]) -> dict[str, Poll]:
    closed = [p for p in polls.values() if p.closed and p.final_emitted]
    if len(closed) <= MAX_CLOSED:
        return polls
    forget = {p.poll_id for p in sorted(closed, key=lambda p: p.closed_at_ms)[: len(closed) - MAX_CLOSED]}
    return {pid: p for pid, p in polls.items() if pid not in forget}


def settle(board: PollBoard, now_ms: int) -> tuple[PollBoard, list[PollTallyUpdated], list[str]]:
    """Close polls whose deadline passed, decide due tallies, and say which polls just started
    closing (their end-of-votes markers are due). ``now_ms`` is the wall clock (0 right after a fold).

    Markers are asked for on every settle while a poll is closing without all its finals: writing
    them again is harmless (a partition reads its first), and it survives a crash between deciding
    to close and writing them.
    """
    clock = max(board.clock_ms, now_ms)
    polls = dict(board.polls)
    tallies: list[PollTallyUpdated] = []
    markers: list[str] = []
    for poll_id, poll in board.polls.items():
        if (
            not poll.closing_at_ms
            and poll.closes_at_ms is not None
            and now_ms >= poll.closes_at_ms + CLOSE_GRACE_MS
        ):
            poll = replace(poll, closing_at_ms=poll.closes_at_ms)
        if poll.closing and poll.partitions and len(poll.finals) >= poll.partitions:
            final = _summed(poll.finals.values(), poll.options)
            poll = replace(poll, closed_at_ms=poll.closing_at_ms, final_counts=final, parts={}, finals={})
        if poll.closing:
            markers.append(poll_id)
        elif poll.closed:
            if not poll.final_emitted:
                poll = replace(poll, final_emitted=True)
                tallies.append(_tally(board.stream_id, poll, poll.counts, poll.closed_at_ms, final=True))
        else:
            counts = poll.counts
            due = poll.emitted_at_ms == 0 or clock - poll.emitted_at_ms >= MIN_INTERVAL_MS
            if counts != poll.emitted and due:
                poll = replace(poll, seq=poll.seq + 1, emitted=counts, emitted_at_ms=clock)
                tallies.append(_tally(board.stream_id, poll, counts, clock, final=False))
        polls[poll_id] = poll
    if clock == board.clock_ms and polls == board.polls:
        return board, [], markers
    return replace(board, polls=_bounded(polls), clock_ms=clock), tallies, markers


def tally_id(stream_id: str, poll_id: str, seq: int | None) -> uuid.UUID:
    """The id of a poll's running tally number ``seq``, or of its final tally (``seq=None``)."""
    return decision_id(IdSpace.POLL_TALLY, stream_id, poll_id, "final" if seq is None else seq)


def _tally(
    stream_id: str, poll: Poll, counts: tuple[int, ...], at_ms: int, *, final: bool
) -> PollTallyUpdated:
    return PollTallyUpdated(
        event_id=tally_id(stream_id, poll.poll_id, None if final else poll.seq),
        occurred_at=from_epoch_ms(at_ms),
        producer=PRODUCER,
        poll_id=poll.poll_id,
        stream_id=stream_id,
        counts=counts,
        total=sum(counts),
        final=final,
    )
