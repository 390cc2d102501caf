"""Stream events, keyed by ``stream_id``, on two topics with one writer each.

``streams`` (written by ``producers``): what people asked for, i.e. stream metadata, schedules
and requests to end a stream. ``streams.lifecycle`` (written by the lifecycle agent in
``stream_processors``): what was decided from those requests and the ingest's reports, i.e.
went live, ended, or a refused transition. Every decision names the event that caused it
in its head (``causation_id``), so a redelivered cause is recognised and yields the same decision.
Stream keys are per channel: see ``events.channels.ChannelStreamKeyRotated``.

Clips are on ``streams`` too: a viewer's request (**ClipRequested**, from the API) and the outcome
from the ingest node holding the stream's segments (**ClipCreated** or **ClipFailed**, see
``ingest_workers.clips``). Their times are in the stream's media time: milliseconds from the first
segment of its playlist.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = [
    "ClipCreated",
    "ClipFailed",
    "ClipRequested",
    "StreamCreated",
    "StreamEndReason",
    "StreamEndRequested",
    "StreamEnded",
    "StreamRole",
    "StreamScheduled",
    "StreamTransitionRejected",
    "StreamUpdated",
    "StreamVodDeleted",
    "StreamWentLive",
    "VodDeletionReason",
]


class StreamRole(enum.StrEnum):
    """What a stream is for a match. Avro default ``costream``: an unknown role is never official."""

    MAIN = "main"
    POV = "pov"
    COSTREAM = "costream"


class StreamEndReason(enum.StrEnum):
    """Why a stream ended. Avro default ``unknown``: a reader older than a symbol reads ``unknown``.

    New symbols go at the end (``ended_by_owner`` came with ``StreamEnded`` v2).
    """

    UNKNOWN = "unknown"
    PUBLISHER_STOPPED = "publisher_stopped"
    INGEST_TIMEOUT = "ingest_timeout"
    ENDED_BY_MODERATOR = "ended_by_moderator"
    ENDED_BY_OWNER = "ended_by_owner"


class VodDeletionReason(enum.StrEnum):
    """Why a stream's replay (VOD) was deleted. Avro default ``unknown``; new symbols go at the end."""

    UNKNOWN = "unknown"
    DELETED_BY_OWNER = "deleted_by_owner"
    DELETED_BY_ADMIN = "deleted_by_admin"
    RETENTION = "retention"


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamCreated(Event):
    """A channel owner created a stream; it can be scheduled or go live later."""

    stream_id: str
    channel_id: str
    owner_id: str
    title: str
    game: str = ""
    tags: tuple[str, ...] = ()
    language: str = "en"  # BCP 47 tag
    match_id: str | None = None
    role: StreamRole = StreamRole.MAIN


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamUpdated(Event):
    """Stream metadata changed. A ``None`` field means "unchanged" (partial update).

    v2 added ``language``.
    """

    stream_id: str
    updated_by: str
    title: str | None = None
    game: str | None = None
    tags: tuple[str, ...] | None = None
    match_id: str | None = None
    role: StreamRole | None = None
    language: str | None = None  # v2


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamScheduled(Event):
    """A stream was given a planned start (shown on the schedule, drives reminders)."""

    stream_id: str
    channel_id: str
    scheduled_start: datetime
    title: str = ""
    match_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEndRequested(Event):
    """The channel owner or a moderator asked to end the stream; the lifecycle agent decides."""

    stream_id: str
    channel_id: str
    requested_by: str
    reason: StreamEndReason = StreamEndReason.ENDED_BY_MODERATOR


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamWentLive(Event):
    """The lifecycle agent decided the stream is live: the ingest accepted a publisher and the
    first renditions are playable.

    v2 added ``cause_event_id``, which v3 moved into the head as ``causation_id`` (the ingest event
    behind the decision; "" before v2).
    """

    stream_id: str
    channel_id: str
    started_at: datetime
    ingest_session_id: str = ""
    match_id: str | None = None
    role: StreamRole = StreamRole.MAIN


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEnded(Event):
    """The lifecycle agent decided the stream is no longer live.

    v2 added ``cause_event_id`` and the reason ``ended_by_owner``; v3 moved ``cause_event_id`` into
    the head as ``causation_id`` (the ingest event or end request; "" before v2).
    """

    stream_id: str
    channel_id: str
    ended_at: datetime
    reason: StreamEndReason = StreamEndReason.UNKNOWN
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamTransitionRejected(Event):
    """The lifecycle agent refused a transition the stream's state does not allow (say, ending a
    stream that never went live), so the requester learns why instead of hearing nothing.

    v2 moved ``cause_event_id`` into the head as ``causation_id``.
    """

    stream_id: str
    channel_id: str = ""  # "" when the stream is unknown
    attempted: str  # "go_live" or "end"
    current_state: str  # the state that refused it, e.g. "ended"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamVodDeleted(Event):
    """An ended stream's replay (its HLS files) is deleted: every ingest node removes the stream's
    folder, and read models stop offering the replay.

    Written by the API when the owner or an admin deletes it, and by an ingest node's retention sweep
    (``reason`` ``retention``, ``deleted_by`` ``ingest:<node>``) for the folders it removed.
    """

    stream_id: str
    deleted_by: str  # a user id, or "ingest:<node>" for the retention sweep
    reason: VodDeletionReason = VodDeletionReason.UNKNOWN


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipRequested(Event):
    """A viewer asked for ``duration_ms`` of the stream from ``start_ms`` (5 to 60 seconds)."""

    clip_id: str
    stream_id: str
    channel_id: str
    requested_by: str
    start_ms: int
    duration_ms: int
    title: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipCreated(Event):
    """An ingest node cut the clip: ``url`` plays it (an MP4), ``duration_ms`` as FFprobe measured it,
    ``reencoded`` when the start fell between keyframes (else the segments were copied)."""

    clip_id: str
    stream_id: str
    channel_id: str
    requested_by: str
    start_ms: int
    duration_ms: int
    url: str
    title: str = ""
    reencoded: bool = False
    node: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipFailed(Event):
    """An ingest node holding the stream could not cut the clip (outside its segments, FFmpeg failed)."""

    clip_id: str
    stream_id: str
    reason: str
    node: str = ""
