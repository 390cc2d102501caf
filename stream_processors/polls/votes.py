"""The votes of one partition of ``polls.votes``: pure, no I/O.

Votes are keyed by voter (:class:`~events.polls.PollVoted`), so a voter's votes are all on one
partition, in the order they were cast, and one poll's votes spread over every partition. A
partition keeps each voter's votes per poll and reports a *partial tally* per poll: one count per
option of the voters whose latest valid vote (an option the poll has, cast before its ``closes_at``)
is that option. The poll agent adds the partitions' partial tallies up
(:mod:`stream_processors.polls.board`); no voter is on two partitions, so the sum is exact.

A poll closes at a position of every partition's log: the poll agent writes a
:class:`~events.polls.PollVotingClosed` marker to each. The votes before a partition's marker are its
*final* partial tally; later ones are ignored. The final tally is the sum of every partition's final,
equal to a recount of the log up to the markers, whatever moment each partition reads its marker at.

Nothing is stored: a taken-over partition is re-read from the opening of its oldest open poll, and
reading a vote twice (same offset) changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PartitionVotes", "PollInfo", "VoteReport"]

Tally = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PollInfo:
    """What a partition needs of a poll (from its PollOpened): how many options, and its deadline."""

    stream_id: str
    options: int
    opened_ms: int
    closes_at_ms: int | None = None


class PartitionVotes:
    """The votes read from one partition, per poll and voter, with what was reported of them.

    ``polls`` is the (live) directory of known polls. A known poll's tally is kept up to date vote
    by vote: each voter's last offset and the option counted for them (their latest valid vote).
    Votes of a poll not known yet are kept in log order and counted once its PollOpened is read.
    """

    def __init__(self, polls: Mapping[str, PollInfo]) -> None:
        self._polls = polls
        self._pending: dict[
            str, list[tuple[str, int, int, int]]
        ] = {}  # poll -> [(voter, option, at, offset)]
        self._voters: dict[str, dict[str, tuple[int, int]]] = {}  # poll -> voter -> (offset, counted or -1)
        self._counts: dict[str, list[int]] = {}  # poll -> one count per option
        self._closed: dict[str, Tally | None] = {}  # poll -> its final partial tally (None: not yet known)
        self._dirty: set[str] = set()  # polls with votes since the last report
        self._reported: dict[str, Tally] = {}  # the running partial tallies last reported

    def vote(self, poll_id: str, user_id: str, option: int, at_ms: int, offset: int) -> bool:
        """A vote read at ``offset``; False when it changes nothing (a closed poll, a redelivery)."""
        if poll_id in self._closed:
            return False
        info = self._polls.get(poll_id)
        if info is None:
            self._pending.setdefault(poll_id, []).append((user_id, option, at_ms, offset))
        elif not self._count(poll_id, info, user_id, option, at_ms, offset):
            return False
        self._dirty.add(poll_id)
        return True

    def _count(
        self, poll_id: str, info: PollInfo, user_id: str, option: int, at_ms: int, offset: int
    ) -> bool:
        if poll_id in self._pending:
            self._adopt(poll_id, info)
        voters = self._voters.setdefault(poll_id, {})
        counts = self._counts.setdefault(poll_id, [0] * info.options)
        last = voters.get(user_id)
        if last is not None and last[0] >= offset:
            return False
        counted = -1 if last is None else last[1]
        valid = 0 <= option < info.options and (info.closes_at_ms is None or at_ms < info.closes_at_ms)
        now = option if valid else counted  # an invalid vote leaves the latest valid one counted
        if now != counted:
            if counted >= 0:
                counts[counted] -= 1
            counts[now] += 1
        voters[user_id] = (offset, now)
        return True

    def _adopt(self, poll_id: str, info: PollInfo) -> None:
        """Count a poll's votes read before its PollOpened, in log order."""
        for user_id, option, at_ms, offset in self._pending.pop(poll_id, ()):
            self._count(poll_id, info, user_id, option, at_ms, offset)

    def close(self, poll_id: str) -> None:
        """The marker of ``poll_id`` was read: later votes of this partition do not count."""
        if poll_id not in self._closed:
            self._closed[poll_id] = None
            self._dirty.discard(poll_id)
            self._reported.pop(poll_id, None)

    def finals(self, *, every: bool = False) -> dict[str, Tally]:
        """The final partial tallies not reported yet (``every``: all of them) of the polls closed on
        this partition, once their PollOpened is known (the poll agent only closes polls it knows, so
        a directory lagging behind catches up)."""
        new: dict[str, Tally] = {}
        for poll_id, final in self._closed.items():
            if final is None and poll_id in self._polls:
                final = self._closed[poll_id] = self.tally(poll_id)
                self._voters.pop(poll_id, None)
                self._counts.pop(poll_id, None)
                new[poll_id] = final
        if every:
            return {poll: tally for poll, tally in self._closed.items() if tally is not None}
        return new

    def tally(self, poll_id: str) -> Tally:
        """One count per option of a known poll: each voter's latest valid vote (an option of the
        poll, cast before its deadline), by log order."""
        info = self._polls[poll_id]
        if poll_id in self._pending:
            self._adopt(poll_id, info)
        return tuple(self._counts.get(poll_id, [0] * info.options))

    def changes(self) -> dict[str, Tally]:
        """The running partial tallies that differ from the last reported (known polls only)."""
        changed: dict[str, Tally] = {}
        for poll_id in list(self._dirty):
            if poll_id not in self._polls:
                continue  # its PollOpened not read yet: reported once it is
            self._dirty.discard(poll_id)
            counts = self.tally(poll_id)
            if self._reported.get(poll_id) != counts:
                changed[poll_id] = self._reported[poll_id] = counts
        return changed

    def running(self) -> dict[str, Tally]:
        """Every open known poll's running partial tally (a complete report, after a take-over)."""
        held = [p for p in (*self._voters, *self._pending) if p not in self._closed]
        self._dirty = {p for p in held if p not in self._polls}
        self._reported = {p: self.tally(p) for p in held if p in self._polls}
        return dict(self._reported)


@dataclass(frozen=True, slots=True)
class VoteReport:
    """One vote partition's partial tallies of some polls (JSON, a record of the internal poll
    partials topic, on the merge partition of the polls' streams)."""

    partition: int
    partitions: int  # how many partitions ``polls.votes`` has: finals from all of them close a poll
    running: dict[str, Tally]  # poll -> running partial tally
    finals: dict[str, Tally]  # poll -> final partial tally (votes before the marker)
    streams: dict[str, str]  # poll -> its stream (the merge state's key)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "partition": self.partition,
                "partitions": self.partitions,
                "running": {p: list(t) for p, t in self.running.items()},
                "finals": {p: list(t) for p, t in self.finals.items()},
                "streams": self.streams,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, value: bytes | None) -> VoteReport:
        """The report in ``value``; ValueError when it is not one."""
        try:
            data = json.loads(value or b"")
            return cls(
                partition=int(data["partition"]),
                partitions=int(data["partitions"]),
                running={str(p): tuple(int(c) for c in t) for p, t in data["running"].items()},
                finals={str(p): tuple(int(c) for c in t) for p, t in data["finals"].items()},
                streams={str(p): str(s) for p, s in data["streams"].items()},
            )
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a vote report: {e!r}") from e
