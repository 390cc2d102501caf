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
    """The votes read from one partition, per poll and voter, with what was reported of them."""

    def __init__(self) -> None:
        # poll -> voter -> [(offset, cast at ms, option)], in log order
        self._votes: dict[str, dict[str, list[tuple[int, int, int]]]] = {}
        self._closed: dict[str, Tally | None] = {}  # poll -> its final partial tally (None: poll unknown)
        self._dirty: set[str] = set()  # polls with votes since the last report
        self._reported: dict[str, Tally] = {}  # the running partial tallies last reported
        self.votes_read = 0

    def vote(self, poll_id: str, user_id: str, option: int, at_ms: int, offset: int) -> bool:
        """A vote read at ``offset``; False when it changes nothing (a closed poll, a redelivery)."""
        if poll_id in self._closed:
            return False
        cast = self._votes.setdefault(poll_id, {}).setdefault(user_id, [])
        if cast and cast[-1][0] >= offset:
            return False
        cast.append((offset, at_ms, option))
        self._dirty.add(poll_id)
        self.votes_read += 1
        return True

    def close(self, poll_id: str) -> None:
        """The marker of ``poll_id`` was read: later votes of this partition do not count."""
        if poll_id not in self._closed:
            self._closed[poll_id] = None
            self._dirty.discard(poll_id)
            self._reported.pop(poll_id, None)

    def finals(self, polls: Mapping[str, PollInfo], *, every: bool = False) -> dict[str, Tally]:
        """The final partial tallies not reported yet (``every``: all of them) of the polls closed on
        this partition, once their PollOpened is known (the poll agent only closes polls it knows, so
        a directory lagging behind catches up)."""
        new: dict[str, Tally] = {}
        for poll_id, final in self._closed.items():
            if final is None and (info := polls.get(poll_id)) is not None:
                final = self._closed[poll_id] = self.tally(poll_id, info)
                self._votes.pop(poll_id, None)
                new[poll_id] = final
        if every:
            return {poll: tally for poll, tally in self._closed.items() if tally is not None}
        return new

    def tally(self, poll_id: str, info: PollInfo) -> Tally:
        """One count per option: each voter's latest valid vote (an option of the poll, cast before
        its deadline), by log order."""
        counts = [0] * info.options
        deadline = info.closes_at_ms
        for cast in self._votes.get(poll_id, {}).values():
            for _, at_ms, option in reversed(cast):
                if 0 <= option < info.options and (deadline is None or at_ms < deadline):
                    counts[option] += 1
                    break
        return tuple(counts)

    def changes(self, polls: Mapping[str, PollInfo]) -> dict[str, Tally]:
        """The running partial tallies that differ from the last reported (known polls only)."""
        changed: dict[str, Tally] = {}
        for poll_id in list(self._dirty):
            info = polls.get(poll_id)
            if info is None:
                continue  # its PollOpened not read yet: reported once it is
            self._dirty.discard(poll_id)
            counts = self.tally(poll_id, info)
            if self._reported.get(poll_id) != counts:
                changed[poll_id] = self._reported[poll_id] = counts
        return changed

    def running(self, polls: Mapping[str, PollInfo]) -> dict[str, Tally]:
        """Every open poll's running partial tally (a complete report, after a take-over)."""
        self._dirty.clear()
        self._reported = {p: self.tally(p, polls[p]) for p in self._votes if p in polls}
        self._dirty.update(p for p in self._votes if p not in polls)
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
