"""Viewer presence: heartbeats from edges (``viewers.heartbeats``) and derived counts
(``viewers.counts``), both keyed by ``stream_id``; a match's combined audience across its streams
(``viewers.match_counts``, keyed by ``match_id``)."""

from __future__ import annotations

from dataclasses import dataclass

from events.base import Event

__all__ = [
    "MatchAudienceChanged",
    "ViewerBeat",
    "ViewerCountChanged",
    "ViewerHeartbeat",
    "ViewerPresenceBatch",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerHeartbeat(Event):
    """A player is still watching. Anonymous viewers have a session but no user id."""

    stream_id: str
    session_id: str
    edge_id: str
    user_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerCountChanged(Event):
    """Concurrent viewers of a stream over the counting window, the peak so far and the
    time-weighted average since the stream's first count.

    v2 added ``average`` (0.0 in v1 records: not known).
    """

    stream_id: str
    count: int
    peak: int
    average: float = 0.0  # v2


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchAudienceChanged(Event):
    """Concurrent viewers of a match: distinct sessions across all its streams (main, POVs,
    co-streams) over the counting window, the peak so far and the time-weighted average."""

    match_id: str
    count: int
    peak: int
    average: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerBeat:
    """One session seen watching one stream (an item of :class:`ViewerPresenceBatch`)."""

    stream_id: str
    session_id: str
    user_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerPresenceBatch(Event):
    """The heartbeats one edge collected over a flush interval for the sessions of one partition of
    ``viewers.presence``: every session was seen at ``occurred_at``.

    Each session belongs to one partition (murmur2 of its ``session_id``, as Kafka's default
    partitioner places a key), so a stream's viewers spread over every partition while each session's
    heartbeats stay on one. ``shard_key`` is the session id of one of the beats and keys the record:
    every beat of the batch hashes to the partition that key does.
    """

    shard_key: str
    edge_id: str
    beats: tuple[ViewerBeat, ...] = ()
