"""Poll events (``polls``) and the derived tallies (``polls.tallies``), keyed by ``stream_id``; votes
(``polls.votes``), keyed by the voter so one poll's votes spread over every partition.

There is no timer-driven close event: ``closes_at`` in ``PollOpened`` lets the tally processor
publish the final tally itself, so a single package writes ``polls``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = ["PollClosed", "PollOpened", "PollTallyUpdated", "PollVoteCast", "PollVoted", "PollVotingClosed"]


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

    poll_id: str
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
