"""Poll events (``polls``) and the derived tallies (``polls.tallies``), keyed by ``stream_id``; votes
(``polls.votes``), keyed by the voter so one poll's votes spread over every partition.

There is no timer-driven close event: ``closes_at`` in ``PollOpened`` lets the tally processor
publish the final tally itself, so a single package writes ``polls``.

The poll limits below are the one definition every side imports: the edge (``/poll`` typed in chat)
and the REST API refuse a poll outside them, and the poll agent ignores a PollOpened whose number of
options is outside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = [
    "ALL_OPEN",
    "MAX_OPTION_CHARS",
    "MAX_QUESTION_CHARS",
    "POLL_MAX_OPTIONS",
    "POLL_MAX_S",
    "POLL_MIN_OPTIONS",
    "POLL_MIN_S",
    "PollClosed",
    "PollOpened",
    "PollTallyUpdated",
    "PollVoteCast",
    "PollVoted",
    "PollVotingClosed",
]

POLL_MIN_OPTIONS, POLL_MAX_OPTIONS = 2, 5
POLL_MIN_S, POLL_MAX_S = 10, 3600  # how long a poll with a deadline runs (without one: until closed)
MAX_QUESTION_CHARS, MAX_OPTION_CHARS = 200, 80
# PollClosed.poll_id of `/endpoll` without an id: every poll of the stream open at that point of the log.
ALL_OPEN = "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class PollOpened(Event):
    """A moderator opened a poll on a stream."""

    poll_id: str
    stream_id: str
    question: str
    options: tuple[str, ...]
    opened_by: str
    closes_at: datetime | None = None  # None = open until PollClosed


@dataclass(frozen=True, slots=True, kw_only=True)
class PollVoteCast(Event):
    """A viewer voted; a later vote by the same user replaces the earlier one. Written by earlier
    edges; re-keyed by voter onto ``polls.votes`` as :class:`PollVoted` by the vote workers."""

    poll_id: str
    stream_id: str
    user_id: str
    option: int  # index into PollOpened.options


@dataclass(frozen=True, slots=True, kw_only=True)
class PollVoted(Event):
    """A viewer voted (on ``polls.votes``, keyed by ``user_id``: a voter's votes stay in one partition,
    in order); a later vote by the same user replaces the earlier one. Replaces PollVoteCast, which
    was keyed by stream (one poll, one partition)."""

    poll_id: str
    stream_id: str
    user_id: str
    option: int  # index into PollOpened.options


@dataclass(frozen=True, slots=True, kw_only=True)
class PollVotingClosed(Event):
    """The poll agent closed a poll (a PollClosed it accepted, or the deadline): written to *every*
    partition of ``polls.votes``, it marks where that partition's votes for the poll end. The votes
    before it (and cast before ``closes_at``, if any) are the final tally's."""

    poll_id: str
    stream_id: str
    user_id: str  # the record key: a partition's marker carries a key that hashes to that partition
    closed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PollClosed(Event):
    """A moderator closed a poll before its ``closes_at``."""

    poll_id: str  # or ALL_OPEN: every open poll of the stream
    stream_id: str
    closed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PollTallyUpdated(Event):
    """The full tally of a poll (replace, not increment); ``final`` once the poll has closed."""

    poll_id: str
    stream_id: str
    counts: tuple[int, ...]  # one per option, in PollOpened.options order
    total: int
    final: bool = False
