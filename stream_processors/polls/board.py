"""Poll tallies as a pure decision: ``fold`` poll events into a stream's board, ``settle`` the tallies.

No ``await``, no clients: :mod:`stream_processors.polls.agent` does the I/O around it.

A stream's :class:`PollBoard` holds its polls; each open poll maps every voter to their current
option and the log position (partition offset) of that vote. ``fold`` takes each event with its
offset: a vote *replaces* the voter's earlier one only when its offset is higher, so the latest vote
is the latest in the log (not the latest ``occurred_at``: client clocks disagree, ties are common), a
redelivered vote (offset <= the stored one: at-least-once, restart, rebalance) changes nothing, and a
changed vote moves one count. Counts are always recomputed from the votes, never incremented.

Votes for unknown or closed polls, with a bad option index, or cast at/after ``closes_at`` are
ignored, and ``fold`` says why (the agent counts the reasons in its metrics).

Rights: the edge publishes ``/poll`` and ``/endpoll`` typed in chat without knowing who may (it has no
database), so this module is the authority. A PollOpened or PollClosed counts only when its actor is
the stream's channel owner (the board learns channel and owner from ``StreamCreated``, see
:func:`own`), a moderator of that channel or a platform admin (the moderation agent's
:class:`~stream_processors.moderation.roster.ChatRoster`); otherwise it is ignored as
``not_allowed`` (:func:`allowed`). A PollClosed whose ``poll_id`` is :data:`ALL_OPEN` closes every
open poll of the stream (``/endpoll``: the edge does not know which are open).

Deadlines are decided on *event time*: the board keeps a watermark, the newest ``occurred_at`` of any
record read from its partition (the agent passes the partition's watermark in too). ``settle(board,
now_ms, watermark_ms=..., caught_up=...)`` closes a poll when the watermark reached ``closes_at`` +
:data:`CLOSE_GRACE_MS` (votes cast in time but still in flight), or, when nothing newer arrives at all,
when the wall clock reached ``closes_at`` + :data:`IDLE_GRACE_MS` *and* the agent has read its
partition up to the end (``caught_up``). A lagging worker therefore never closes a poll before reading
the votes cast in time, whatever the wall clock says. ``now_ms`` (wall clock) also advances the
board's clock for the 250 ms limit (it never goes back). ``settle`` decides:

- a running :class:`PollTallyUpdated` when a poll's counts differ from the last one emitted and at
  least :data:`MIN_INTERVAL_MS` has passed since it; its id is ``uuid5(NAMESPACE, "stream:poll:seq")``
  with the poll's tally sequence number, so re-deciding it after a crash gives the same event id;
- one final tally (``final=True``, id ``"stream:poll:final"``, ``occurred_at`` = when the poll closed:
  the accepted PollClosed's ``occurred_at``, or ``closes_at``) when a poll closes, by PollClosed or the
  deadline. A closed poll keeps its final counts (not its votes), so a redelivered PollOpened does not
  reopen it and redelivered votes are ignored.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from events.base import Event
from events.polls import PollClosed, PollOpened, PollTallyUpdated, PollVoteCast
from events.streams import StreamCreated
from stream_processors.moderation.roster import ChatRoster

__all__ = [
    "ALL_OPEN",
    "CLOSE_GRACE_MS",
    "IDLE_GRACE_MS",
    "MAX_CLOSED",
    "MIN_INTERVAL_MS",
    "NAMESPACE",
    "PRODUCER",
    "Poll",
    "PollBoard",
    "actor_of",
    "allowed",
    "epoch_ms",
    "fold",
    "own",
    "settle",
    "tally_id",
]

# Fixed forever: changing it would give a re-decided tally a different event id.
NAMESPACE = uuid.UUID("3d9a7c52-41e8-5b0f-9c6d-2a8e4f1b7c93")
PRODUCER = "stream_processors.polls"
MIN_INTERVAL_MS = 250  # at most one running tally every 250 ms per poll
CLOSE_GRACE_MS = 2_000  # event time: a poll closes once a record this long past closes_at is read
IDLE_GRACE_MS = 30_000  # wall clock, only when caught up: nothing newer arrives on the partition
MIN_OPTIONS, MAX_OPTIONS = 2, 5
MAX_CLOSED = 50  # closed polls remembered per stream (oldest forgotten first)
ALL_OPEN = "*"  # PollClosed.poll_id of `/endpoll`: every poll of the stream open at that point of the log


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
    """One poll of a stream, open or closed."""

    poll_id: str
    options: int  # how many options
    closes_at_ms: int | None = None
    votes: dict[str, tuple[int, int]] = field(default_factory=dict)  # user -> (option, log offset)
    closed_at_ms: int = 0  # 0 = open
    final_counts: tuple[int, ...] = ()  # kept once closed (the votes are dropped then)
    seq: int = 0  # running tallies emitted
    emitted: tuple[int, ...] | None = None  # counts of the last running tally
    emitted_at_ms: int = 0
    final_emitted: bool = False

    @property
    def closed(self) -> bool:
        return self.closed_at_ms != 0

    @property
    def counts(self) -> tuple[int, ...]:
        """One count per option, recomputed from the votes (the final counts once closed)."""
        if self.closed:
            return self.final_counts
        counts = [0] * self.options
        for option, _ in self.votes.values():
            counts[option] += 1
        return tuple(counts)

    def to_json(self) -> dict[str, Any]:
        return {
            "poll_id": self.poll_id,
            "options": self.options,
            "closes_at_ms": self.closes_at_ms,
            "votes": {user: list(vote) for user, vote in self.votes.items()},
            "closed_at_ms": self.closed_at_ms,
            "final_counts": list(self.final_counts),
            "seq": self.seq,
            "emitted": None if self.emitted is None else list(self.emitted),
            "emitted_at_ms": self.emitted_at_ms,
            "final_emitted": self.final_emitted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Poll:
        emitted = data.get("emitted")
        closes_at = data.get("closes_at_ms")
        return cls(
            poll_id=data["poll_id"],
            options=int(data["options"]),
            closes_at_ms=None if closes_at is None else int(closes_at),
            votes={str(u): (int(v[0]), int(v[1])) for u, v in data.get("votes", {}).items()},
            closed_at_ms=int(data.get("closed_at_ms", 0)),
            final_counts=tuple(int(c) for c in data.get("final_counts", ())),
            seq=int(data.get("seq", 0)),
            emitted=None if emitted is None else tuple(int(c) for c in emitted),
            emitted_at_ms=int(data.get("emitted_at_ms", 0)),
            final_emitted=bool(data.get("final_emitted", False)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PollBoard:
    """One stream's polls: the Faust table's value, keyed by ``stream_id``."""

    stream_id: str
    channel_id: str | None = None  # from StreamCreated: whose moderators may run polls
    owner_id: str | None = None  # from StreamCreated: the channel owner
    polls: dict[str, Poll] = field(default_factory=dict)
    clock_ms: int = 0  # the latest time seen (events and ticks); never goes back; for the rate limit
    watermark_ms: int = 0  # event time: the newest occurred_at read on the partition; closes polls
    offset: int = -1  # the highest log offset folded into this board

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the table's changelog value)."""
        return {
            "stream_id": self.stream_id,
            "channel_id": self.channel_id,
            "owner_id": self.owner_id,
            "polls": {pid: poll.to_json() for pid, poll in self.polls.items()},
            "clock_ms": self.clock_ms,
            "watermark_ms": self.watermark_ms,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PollBoard:
        """The inverse of :meth:`to_json`."""
        return cls(
            stream_id=data["stream_id"],
            channel_id=data.get("channel_id"),
            owner_id=data.get("owner_id"),
            polls={str(pid): Poll.from_json(p) for pid, p in data.get("polls", {}).items()},
            clock_ms=int(data.get("clock_ms", 0)),
            watermark_ms=int(data.get("watermark_ms", 0)),
            offset=int(data.get("offset", -1)),
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


def fold(
    board: PollBoard, records: Iterable[tuple[Event, int]], *, roster: ChatRoster
) -> tuple[PollBoard, Counter[str]]:
    """``board`` with the poll events applied in log order, and why some were ignored (reason -> count).

    ``records`` are ``(event, offset)`` pairs: the offset is the record's position in its partition.
    ``roster`` decides who may open and close polls (with the board's owner, see :func:`allowed`).
    """
    polls = dict(board.polls)
    copied: set[str] = set()  # polls whose votes dict is already this fold's own copy
    ignored = Counter[str]()
    watermark, offset = board.watermark_ms, board.offset
    for event, event_offset in records:
        if getattr(event, "stream_id", None) != board.stream_id:
            continue
        watermark = max(watermark, epoch_ms(event.occurred_at))
        offset = max(offset, event_offset)
        reason: str | None
        actor = actor_of(event)
        if isinstance(event, PollVoteCast):
            reason = _vote(polls, copied, event, event_offset)
        elif actor is not None and not allowed(board, actor, roster):
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
    unchanged = (watermark, offset) == (board.watermark_ms, board.offset)
    if unchanged and not copied and polls == board.polls:
        return board, ignored
    clock = max(board.clock_ms, watermark)
    return replace(
        board, polls=_bounded(polls), clock_ms=clock, watermark_ms=watermark, offset=offset
    ), ignored


def _vote(polls: dict[str, Poll], copied: set[str], e: PollVoteCast, offset: int) -> str | None:
    poll = polls.get(e.poll_id)
    if poll is None:
        return "unknown_poll"
    if poll.closed:
        return "closed_poll"
    at = epoch_ms(e.occurred_at)
    if poll.closes_at_ms is not None and at >= poll.closes_at_ms:
        return "late_vote"
    if not 0 <= e.option < poll.options:
        return "bad_option"
    previous = poll.votes.get(e.user_id)
    if previous is not None and previous[1] == offset:
        return None  # the same record redelivered: nothing changes
    if previous is not None and previous[1] > offset:
        return "stale_vote"  # an earlier record redelivered after a later one: the later stays
    if e.poll_id not in copied:
        poll = replace(poll, votes=dict(poll.votes))
        polls[e.poll_id] = poll
        copied.add(e.poll_id)
    poll.votes[e.user_id] = (e.option, offset)
    return None


def _open(polls: dict[str, Poll], e: PollOpened) -> str | None:
    if e.poll_id in polls:
        return "duplicate_poll"  # redelivered (or a reused id): the poll keeps its votes
    if not MIN_OPTIONS <= len(e.options) <= MAX_OPTIONS:
        return "invalid_poll"
    closes_at = None if e.closes_at is None else epoch_ms(e.closes_at)
    polls[e.poll_id] = Poll(poll_id=e.poll_id, options=len(e.options), closes_at_ms=closes_at)
    return None


def _close(polls: dict[str, Poll], poll_id: str, at_ms: int) -> str | None:
    poll = polls.get(poll_id)
    if poll is None:
        return "unknown_poll"
    if poll.closed:
        return "closed_poll"
    polls[poll_id] = replace(poll, closed_at_ms=max(at_ms, 1), final_counts=poll.counts, votes={})
    return None


def _close_all(polls: dict[str, Poll], at_ms: int) -> str | None:
    open_ids = [poll_id for poll_id, poll in polls.items() if not poll.closed]
    for poll_id in open_ids:
        _close(polls, poll_id, at_ms)
    return None if open_ids else "no_open_poll"


def _bounded(polls: dict[str, Poll]) -> dict[str, Poll]:
    closed = [p for p in polls.values() if p.closed and p.final_emitted]
    if len(closed) <= MAX_CLOSED:
        return polls
    forget = {p.poll_id for p in sorted(closed, key=lambda p: p.closed_at_ms)[: len(closed) - MAX_CLOSED]}
    return {pid: p for pid, p in polls.items() if pid not in forget}


def settle(
    board: PollBoard, now_ms: int, *, watermark_ms: int = 0, caught_up: bool = False
) -> tuple[PollBoard, list[PollTallyUpdated]]:
    """Close polls past their deadline and decide due tallies.

    ``watermark_ms`` is the partition's event-time watermark (the board keeps the later of it and its
    own); ``now_ms`` the wall clock (0 when settling right after a fold); ``caught_up`` whether the
    agent has read the board's partition to its end, which the wall-clock fallback requires.
    """
    watermark = max(board.watermark_ms, watermark_ms)
    clock = max(board.clock_ms, now_ms, watermark)
    polls = dict(board.polls)
    tallies: list[PollTallyUpdated] = []
    for poll_id, poll in board.polls.items():
        if not poll.closed and _deadline_passed(poll, watermark, now_ms, caught_up):
            closed_at = poll.closes_at_ms or clock
            poll = replace(poll, closed_at_ms=closed_at, final_counts=poll.counts, votes={})
        if poll.closed:
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
    if (clock, watermark) == (board.clock_ms, board.watermark_ms) and not tallies:
        return board, []
    return replace(board, polls=_bounded(polls), clock_ms=clock, watermark_ms=watermark), tallies


def _deadline_passed(poll: Poll, watermark_ms: int, now_ms: int, caught_up: bool) -> bool:
    """Event time past the deadline and grace, or (idle and caught up) the wall clock far past it."""
    if poll.closes_at_ms is None:
        return False
    if watermark_ms >= poll.closes_at_ms + CLOSE_GRACE_MS:
        return True
    return caught_up and now_ms >= poll.closes_at_ms + IDLE_GRACE_MS


def tally_id(stream_id: str, poll_id: str, seq: int | None) -> uuid.UUID:
    """The id of a poll's running tally number ``seq``, or of its final tally (``seq=None``)."""
    return uuid.uuid5(NAMESPACE, f"{stream_id}:{poll_id}:{'final' if seq is None else seq}")


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
