"""HLS playlists as pure functions: read FFmpeg's per-run playlists, write the public ones.

FFmpeg writes one private playlist per rendition and run (a run ends when FFmpeg exits). The worker
publishes its own playlist per rendition, which concatenates the runs of a session: a restart after a
crash becomes ``#EXT-X-DISCONTINUITY`` plus a fresh ``#EXT-X-MAP``, every segment gets an
``#EXT-X-PROGRAM-DATE-TIME`` on one clock shared by all renditions, and the end of the session appends
``#EXT-X-ENDLIST`` so the same URL replays as a VOD. Segment names are unique per run, so segments can
be cached forever; only playlists change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest_workers.ladder import Rung

__all__ = [
    "MediaSegment",
    "RenditionTrack",
    "Variant",
    "parse_media_playlist",
    "render_master",
    "render_media",
]

VERSION = 7  # fMP4 segments (EXT-X-MAP in a media playlist without I-frames only) need version 6+


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaSegment:
    """A segment as a playlist lists it; `uri` relative to the playlist that lists it."""

    uri: str
    duration_s: float
    program_date_time: datetime | None = None


def parse_media_playlist(text: str) -> tuple[str | None, list[MediaSegment]]:
    """(init segment URI, segments) of a media playlist; tags may come in any order before a URI."""
    init: str | None = None
    segments: list[MediaSegment] = []
    duration: float | None = None
    pdt: datetime | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MAP:"):
            init = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = _parse_time(line.split(":", 1)[1])
        elif line and not line.startswith("#") and duration is not None:
            segments.append(MediaSegment(uri=line, duration_s=duration, program_date_time=pdt))
            duration, pdt = None, None
    return init, segments


def _parse_time(text: str) -> datetime:
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # FFmpeg writes +0000
        text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


def _format_time(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class RunTrack:
    """One run's part of a rendition: init segment and segments (URIs relative to the public playlist)."""

    init_uri: str
    started_at: datetime  # PROGRAM-DATE-TIME of the run's first frame (shared by all renditions)
    segments: list[MediaSegment] = field(default_factory=list)


@dataclass(slots=True)
class RenditionTrack:
    """Everything the public playlist of one rendition lists, run after run."""

    runs: list[RunTrack] = field(default_factory=list)

    @property
    def segment_count(self) -> int:
        return sum(len(run.segments) for run in self.runs)


def render_media(track: RenditionTrack, *, target_s: float, ended: bool) -> str:
    """The public media playlist: EVENT while live, a replayable VOD once `ended`."""
    longest = max((s.duration_s for run in track.runs for s in run.segments), default=target_s)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(max(target_s, longest) - 0.001))}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if ended else 'EVENT'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for index, run in enumerate(r for r in track.runs if r.segments):
        if index:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f'#EXT-X-MAP:URI="{run.init_uri}"')
        at = run.started_at
        for segment in run.segments:
            lines += [
                f"#EXT-X-PROGRAM-DATE-TIME:{_format_time(at)}",
                f"#EXTINF:{segment.duration_s:.6f},",
                segment.uri,
            ]
            at += timedelta(seconds=segment.duration_s)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One line of the master playlist."""

    rung: Rung
    uri: str
    bandwidth: int  # peak bits per second
    average_bandwidth: int
    codecs: str


def render_master(variants: Sequence[Variant]) -> str:
    """The master playlist, highest bandwidth first."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: -v.bandwidth):
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},AVERAGE-BANDWIDTH={v.average_bandwidth},"
            f'RESOLUTION={v.rung.width}x{v.rung.height},CODECS="{v.codecs}",FRAME-RATE={v.rung.fps:.3f},'
            f'NAME="{v.rung.name}"'
        )
        lines.append(v.uri)
    return "\n".join(lines) + "\n"
