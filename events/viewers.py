"""Viewer presence: heartbeats from edges, batched per flush and keyed by session
(``viewers.presence``; single ones keyed by ``stream_id`` on ``viewers.heartbeats`` before that), and
derived counts (``viewers.counts``, keyed by ``stream_id``); a match's combined audience across its
streams (``viewers.match_counts``, keyed by ``match_id``); viewing sessions, kept for good for
analytics (``viewers.sessions``, keyed by ``session_id``, decided where the session's heartbeats land)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = [
    "MAX_BEATS",
    "MatchAudienceChanged",
    "ViewerBeat",
    "ViewerCountChanged",
    "ViewerHeartbeat",
    "ViewerPresenceBatch",
    "ViewingSessionEnded",
    "ViewingSessionStarted",
    "presence_batches",
]

# Beats per ViewerPresenceBatch record, so a record's size is bounded however many viewers one
# partition has: Avro-encoded, a beat is ~70 B (a stream UUID, a session id) or ~110 B with a user
# id, so 500 stay under ~55 KB: one producer batch (64 KB by default), far below the broker's 1 MB.
MAX_BEATS = 500


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
class ViewingSessionStarted(Event):
    """A session was first seen watching a stream (its first heartbeat on its presence partition).

    With :class:`ViewingSessionEnded`, the only record of who watched what that outlives the
    heartbeats (a day): unique viewers and watch time per stream and match are computed from them.
    Decided by the presence worker owning the session's partition; ``event_id`` is derived from
    (stream, session, start), so one decided twice is the same event."""

    session_id: str
    stream_id: str
    started_at: datetime
    edge_id: str
    user_id: str | None = None  # signed in; nothing else personal is kept
    match_id: str | None = None
    referrer: str | None = None  # where the viewer came from (see ViewerBeat)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewingSessionEnded(Event):
    """A session left a stream: no heartbeat within the counting window after ``ended_at`` (its last).
    ``watch_ms`` is ``ended_at - started_at``: the time between its first and last heartbeat."""

    session_id: str
    stream_id: str
    started_at: datetime
    ended_at: datetime
    watch_ms: int
    edge_id: str
    user_id: str | None = None
    match_id: str | None = None
    referrer: str | None = None  # where the viewer came from (see ViewerBeat)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerBeat:
    """One session seen watching one stream (an item of :class:`ViewerPresenceBatch`).

    v3 of the batch added ``referrer``: where the viewer came from, as the player knew it when it
    subscribed (a host name such as ``twitter.com``, ``site`` for a page of the platform, ``direct``
    for none); None from earlier edges."""

    stream_id: str
    session_id: str
    user_id: str | None = None
    referrer: str | None = None


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


def presence_batches(
    beats: Iterable[ViewerBeat],
    partition_of: Callable[[str], int],
    *,
    edge_id: str,
    seen_at: datetime,
    producer: str,
    max_beats: int = MAX_BEATS,
) -> list[ViewerPresenceBatch]:
    """The ``beats`` seen at ``seen_at`` as one record per partition their sessions belong to
    (``partition_of(session_id)``), split every ``max_beats``; each keyed by its first beat's
    session, so the publisher's partitioner puts it where all its sessions belong."""
    by_partition: dict[int, list[ViewerBeat]] = {}
    for beat in beats:
        by_partition.setdefault(partition_of(beat.session_id), []).append(beat)
    return [
        ViewerPresenceBatch(
            producer=producer,
            occurred_at=seen_at,
            shard_key=chunk[0].session_id,
            edge_id=edge_id,
            beats=tuple(chunk),
        )
        for _, held in sorted(by_partition.items())
        for chunk in (held[start : start + max_beats] for start in range(0, len(held), max_beats))
    ]
