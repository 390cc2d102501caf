"""Stream lifecycle events (topic ``streams``, keyed by ``stream_id``).

Stream keys never appear here, not even hashed: the log is kept forever and is readable by
every analytics tool; ``StreamKeyRotated`` carries only an opaque key id.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = [
    "StreamCreated",
    "StreamEndReason",
    "StreamEnded",
    "StreamKeyRotated",
    "StreamRole",
    "StreamScheduled",
    "StreamUpdated",
    "StreamWentLive",
]


class StreamRole(enum.StrEnum):
    """What a stream is for a match. Avro default ``costream``: an unknown role is never official."""

    MAIN = "main"
    POV = "pov"
    COSTREAM = "costream"


class StreamEndReason(enum.StrEnum):
    """Why a stream ended. Avro default ``unknown``."""

    UNKNOWN = "unknown"
    PUBLISHER_STOPPED = "publisher_stopped"
    INGEST_TIMEOUT = "ingest_timeout"
    ENDED_BY_MODERATOR = "ended_by_moderator"


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
class StreamWentLive(Event):
    """The ingest accepted a publisher and the first renditions are playable."""

    stream_id: str
    channel_id: str
    started_at: datetime
    ingest_session_id: str = ""
    match_id: str | None = None
    role: StreamRole = StreamRole.MAIN


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEnded(Event):
    """The stream is no longer live."""

    stream_id: str
    channel_id: str
    ended_at: datetime
    reason: StreamEndReason = StreamEndReason.UNKNOWN
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamKeyRotated(Event):
    """A new stream key was issued; only its opaque id is recorded, never the key or a hash."""

    stream_id: str
    channel_id: str
    key_id: str
    rotated_by: str
