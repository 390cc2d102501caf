"""Ingest events (topic ``ingest``, keyed by ``stream_id``): publisher sessions, HLS output, health."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from events.base import Event

__all__ = [
    "IngestConnected",
    "IngestDisconnected",
    "IngestHealthReported",
    "IngestProtocol",
    "Rendition",
    "RenditionsReady",
    "SegmentPublished",
]


class IngestProtocol(enum.StrEnum):
    """How the publisher pushes. Avro default ``rtmp`` (where a reader older than a symbol lands)."""

    RTMP = "rtmp"
    SRT = "srt"
    WHIP = "whip"  # WebRTC-HTTP ingestion (RFC 9725); appended in IngestConnected v3


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendition:
    """One rung of the ABR ladder."""

    name: str  # e.g. "720p60"
    width: int
    height: int
    fps: float
    video_bitrate_kbps: int
    audio_bitrate_kbps: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestConnected(Event):
    """A publisher passed the stream-key check and is pushing (the key itself is never recorded)."""

    stream_id: str
    session_id: str
    protocol: IngestProtocol
    node: str  # ingest worker that holds the connection
    encoder: str | None = None  # as announced by the publisher, e.g. "obs-output module"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestDisconnected(Event):
    """The publisher's connection closed."""

    stream_id: str
    session_id: str
    reason: str = ""
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RenditionsReady(Event):
    """The transcoder produced the first segments of every rendition: the stream is playable."""

    stream_id: str
    session_id: str
    renditions: tuple[Rendition, ...]
    master_playlist: str  # path on the origin, e.g. "/hls/<stream_id>/master.m3u8"


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentPublished(Event):
    """One HLS segment was atomically published on the origin."""

    stream_id: str
    rendition: str
    sequence: int
    uri: str
    media_time_ms: int  # start of the segment on the stream's media clock
    duration_ms: int
    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestHealthReported(Event):
    """Periodic health of an ingest session, as measured by the FFmpeg supervisor."""

    stream_id: str
    session_id: str
    input_bitrate_kbps: float
    fps: float
    encoder_speed: float  # FFmpeg "speed=": below 1.0 the transcoder falls behind real time
    dropped_frames: int
    restarts: int
