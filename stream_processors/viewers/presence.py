"""The viewers of one partition of ``viewers.presence``, per stream and per match: pure, no I/O.

Heartbeats are partitioned by session (:class:`~events.viewers.ViewerPresenceBatch`), so every
heartbeat of a session lands on one partition and a partition can count its sessions exactly: a
*partial* count per (stream, partition) and per (match, partition). The merge step
(:mod:`stream_processors.viewers.counts`) adds the partials of a stream's partitions into its
:class:`~events.viewers.ViewerCountChanged`; no session is on two partitions, so the sum is exact.

State is per session, never a whole stream in one value: ``stream -> session -> last seen`` (epoch
ms), with the sessions filed by the second they expire in, so expiring costs what expires, not what
is present. A session counts for a stream while seen within the window ending at the clock (the
later of the heartbeats' times and the wall clock), as :func:`~stream_processors.viewers.counts.settle`
counts. A session counts once for a match while present on any of the match's streams: a viewer of
the main stream and a POV is one viewer of the match.

Nothing here is stored: the state of a partition is the last window of its log, so a worker that
takes a partition over rebuilds it by reading the partition from ``now - window`` (see
:mod:`stream_processors.viewers.presence_worker`). Observing a heartbeat twice changes nothing.

**Viewing sessions**: each (stream, session) seen for the first time is an :class:`OpenSession`
(:attr:`PartitionPresence.started` until taken), and leaves as one when it expires
(:attr:`PartitionPresence.ended`, with its last heartbeat). The worker publishes both; a worker taking
the partition over gives back the sessions published as started and not ended
(:meth:`PartitionPresence.reopen`), so a session's start survives any number of takeovers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MATCH", "STREAM", "OpenSession", "PartialReport", "PartitionPresence"]

STREAM = "stream"
MATCH = "match"

Audience = tuple[str, str]  # (STREAM or MATCH, its id)


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A session watching a stream, from its first heartbeat on."""

    stream_id: str
    session_id: str
    started_ms: int
    edge_id: str = ""
    user_id: str | None = None
    match_id: str | None = None
    referrer: str | None = None


class PartitionPresence:
    """The present sessions of one partition, per stream and per match.

    ``counts()`` gives the partial count of every audience of the partition; ``changes()`` those
    that changed since the last call (what the worker publishes).
    """

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.clock_ms = 0  # the latest time seen (heartbeats and wall clock); never goes back
        self._streams: dict[str, dict[str, int]] = {}  # stream -> session -> last seen (ms)
        self._due: dict[str, dict[int, list[str]]] = {}  # stream -> second seen -> sessions (may be stale)
        self._match_of: dict[str, str] = {}  # stream -> its match (streams with sessions here)
        # match -> session -> on how many of the match's streams the session is present
        self._matches: dict[str, dict[str, int]] = {}
        self._reported: dict[Audience, int] = {}  # the counts the last changes() returned
        self._dirty: set[Audience] = set()
        self._open: dict[tuple[str, str], OpenSession] = {}  # (stream, session) -> since when
        self._ended_at: dict[tuple[str, str], int] = {}  # ended by an earlier owner: its last heartbeat
        self.started: list[OpenSession] = []  # first seen since the worker last took them
        self.ended: list[tuple[OpenSession, int]] = []  # expired since then, with their last heartbeat

    @property
    def sessions(self) -> int:
        """(stream, session) presences held: what the partition's memory grows with."""
        return sum(len(sessions) for sessions in self._streams.values())

    def observe(
        self,
        stream_id: str,
        session_id: str,
        at_ms: int,
        match_id: str | None = None,
        *,
        user_id: str | None = None,
        edge_id: str = "",
        referrer: str | None = None,
    ) -> None:
        """``session_id`` was seen watching ``stream_id`` at ``at_ms`` (a stream of ``match_id``), by
        ``edge_id``, signed in as ``user_id``, come from ``referrer``.

        An older time than the session's is a redelivery or a late batch: it changes nothing, and
        neither does one already outside the window.
        """
        if at_ms > self.clock_ms:
            self.clock_ms = at_ms
        if at_ms <= self.clock_ms - self.window_ms:
            return
        sessions = self._streams.get(stream_id)
        if sessions is None:
            sessions = self._streams[stream_id] = {}
            self._due[stream_id] = {}
            if match_id is not None:
                self._match_of[stream_id] = match_id
        elif match_id is not None and self._match_of.get(stream_id) != match_id:
            self.attach(stream_id, match_id)
        before = sessions.get(session_id)
        if before is not None and before >= at_ms:
            return
        if before is not None and at_ms - before >= self.window_ms:
            # Gone for a window and back (found while re-reading a partition, before any expiry ran):
            # the viewing session that ended at ``before`` is over, a new one starts now.
            if (opened := self._open.pop((stream_id, session_id), None)) is not None:
                self.ended.append((opened, before))
            opened = OpenSession(stream_id, session_id, at_ms, edge_id, user_id, match_id, referrer)
            self._open[(stream_id, session_id)] = opened
            self.started.append(opened)
        sessions[session_id] = at_ms
        self._due[stream_id].setdefault(at_ms // 1000, []).append(session_id)
        if before is None:
            key = (stream_id, session_id)
            if key not in self._open and at_ms > self._ended_at.get(key, -1):  # else reopened, or ended
                opened = OpenSession(stream_id, session_id, at_ms, edge_id, user_id, match_id, referrer)
                self._open[(stream_id, session_id)] = opened
                self.started.append(opened)
            self._dirty.add((STREAM, stream_id))
            if (match := self._match_of.get(stream_id)) is not None:
                self._join(match, session_id)

    def attach(self, stream_id: str, match_id: str) -> None:
        """``stream_id`` belongs to ``match_id`` from now on: its present sessions move to that match."""
        old = self._match_of.get(stream_id)
        if old == match_id:
            return
        self._match_of[stream_id] = match_id
        for session_id in self._streams.get(stream_id, {}):
            if old is not None:
                self._leave(old, session_id)
            self._join(match_id, session_id)

    def expire(self, now_ms: int) -> None:
        """Move the clock to ``now_ms`` (never back) and drop the sessions not seen within the window."""
        if now_ms > self.clock_ms:
            self.clock_ms = now_ms
        horizon = self.clock_ms - self.window_ms  # seen at or before it: gone
        last_second = horizon // 1000
        for stream_id in list(self._streams):
            due = self._due[stream_id]
            if not due or min(due) > last_second:
                continue
            sessions = self._streams[stream_id]
            for second in sorted(s for s in due if s <= last_second):
                waiting = []
                for session_id in due.pop(second):
                    seen = sessions.get(session_id)
                    if seen is None or seen // 1000 != second:
                        continue  # gone already, or seen again later (filed under that second)
                    if seen <= horizon:
                        del sessions[session_id]
                        if (opened := self._open.pop((stream_id, session_id), None)) is not None:
                            self.ended.append((opened, seen))
                        self._dirty.add((STREAM, stream_id))
                        if (match := self._match_of.get(stream_id)) is not None:
                            self._leave(match, session_id)
                    else:
                        waiting.append(session_id)  # this second straddles the horizon
                if waiting:
                    due[second] = waiting
            if not sessions:
                del self._streams[stream_id], self._due[stream_id]
                self._match_of.pop(stream_id, None)

    def reopen(self, sessions: list[OpenSession], ended: dict[tuple[str, str], int] | None = None) -> None:
        """Sessions started (and published) by an earlier owner of the partition and not ended: their
        next heartbeats continue them instead of starting new ones. ``ended``: (stream, session) -> the
        last heartbeat of a session an earlier owner ended, whose heartbeats up to it a re-read meets
        again and must not start a session with."""
        for opened in sessions:
            self._open.setdefault((opened.stream_id, opened.session_id), opened)
        self._ended_at.update(ended or {})

    def end_unseen(self, last_ms: int) -> None:
        """After a takeover's re-read: the reopened sessions not seen in it end, at ``last_ms`` at the
        latest (their last heartbeat is before the re-read; the earlier owner died before ending them)."""
        for key, opened in list(self._open.items()):
            stream_id, session_id = key
            if session_id not in self._streams.get(stream_id, {}):
                del self._open[key]
                self.ended.append((opened, max(opened.started_ms, last_ms)))

    def counts(self) -> dict[Audience, int]:
        """The partial count of every audience with sessions here (and of those just emptied)."""
        counts = {(STREAM, s): len(sessions) for s, sessions in self._streams.items()}
        counts.update({(MATCH, m): len(sessions) for m, sessions in self._matches.items()})
        return {**{a: 0 for a in self._reported}, **counts}

    def changes(self) -> dict[Audience, int]:
        """The audiences whose partial count differs from the last call's, with their counts."""
        changed: dict[Audience, int] = {}
        for audience in self._dirty:
            kind, key = audience
            held = self._streams.get(key) if kind == STREAM else self._matches.get(key)
            count = len(held) if held else 0
            if self._reported.get(audience, 0) != count:
                changed[audience] = count
                if count:
                    self._reported[audience] = count
                else:
                    self._reported.pop(audience, None)
        self._dirty.clear()
        return changed

    def mark_reported(self, counts: Mapping[Audience, int]) -> None:
        """Every count in ``counts`` has been published (a full report, after a take-over)."""
        self._reported = {a: c for a, c in counts.items() if c}
        self._dirty.clear()

    def _join(self, match_id: str, session_id: str) -> None:
        sessions = self._matches.setdefault(match_id, {})
        present = sessions.get(session_id, 0)
        sessions[session_id] = present + 1
        if not present:
            self._dirty.add((MATCH, match_id))

    def _leave(self, match_id: str, session_id: str) -> None:
        sessions = self._matches.get(match_id)
        if sessions is None or session_id not in sessions:
            return
        if sessions[session_id] > 1:
            sessions[session_id] -= 1
            return
        del sessions[session_id]
        self._dirty.add((MATCH, match_id))
        if not sessions:
            del self._matches[match_id]


@dataclass(frozen=True, slots=True)
class PartialReport:
    """One presence partition's partial counts of some audiences, as of a moment: the value of a
    record of an internal partials topic (JSON), written to the merge partition of its audiences.

    ``complete``: the report holds every audience of its merge partition with sessions on this
    presence partition; any other audience there has none left (sent when a worker takes a
    partition over, so counts its previous owner reported and that are gone now are zeroed).
    """

    partition: int
    as_of_ms: int
    counts: dict[str, int]
    complete: bool = False

    def encode(self) -> bytes:
        data = {
            "partition": self.partition,
            "as_of_ms": self.as_of_ms,
            "complete": self.complete,
            "counts": self.counts,
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, value: bytes | None) -> PartialReport:
        """The report in ``value``; ValueError when it is not one."""
        try:
            data = json.loads(value or b"")
            counts = {str(k): int(v) for k, v in data["counts"].items()}
            return cls(
                int(data["partition"]), int(data["as_of_ms"]), counts, bool(data.get("complete", False))
            )
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a partial-count report: {e!r}") from e
