"""HLS playlists as pure functions: read FFmpeg's per-run playlists, write the public ones.

FFmpeg writes one private, sliding playlist per rendition and run (a run ends when FFmpeg exits). The
worker keeps every segment of a session in memory, append-only, and publishes its own playlist per
rendition, which concatenates the runs: a restart after a crash becomes ``#EXT-X-DISCONTINUITY`` plus a
fresh ``#EXT-X-MAP``, and every segment gets an ``#EXT-X-PROGRAM-DATE-TIME`` on one clock shared by all
renditions. While live the playlist lists only a window (the DVR window, at least a few segments): the
segments and restarts that slide out advance ``#EXT-X-MEDIA-SEQUENCE`` and
``#EXT-X-DISCONTINUITY-SEQUENCE``, and rendering costs the window, not the session. At the end the same
URL gets every segment once, with ``#EXT-X-ENDLIST``, and replays as a VOD; a segment has the same
media sequence number in every version of the playlist. Segment names are unique per run, so segments
can be cached forever; only playlists change.

Low-Latency HLS (``LowLatency``): segments are made of parts. The live playlist also lists the parts of
its last few segments and of the segment in progress (``#EXT-X-PART``), the part FFmpeg writes next
(``#EXT-X-PRELOAD-HINT``), where the other renditions are (``#EXT-X-RENDITION-REPORT``), and that the
server answers blocking reloads and delta updates (``#EXT-X-SERVER-CONTROL``; the LL origin cuts the
delta, :func:`ingest_workers.blocking_reload.delta_update`). The VOD at the end is the same as without.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest_workers.ladder import Rung

__all__ = [
    "LowLatency",
    "MediaSegment",
    "Part",
    "RenditionReport",
    "RenditionTrack",
    "Variant",
    "Window",
    "media_sequence_of",
    "parse_media_playlist",
    "part_target",
    "render_master",
    "render_media",
]

VERSION = 7  # fMP4 segments (EXT-X-MAP in a media playlist without I-frames only) need version 6+
LIVE_WINDOW_SEGMENTS = 6  # the shortest live playlist: well over the 3 target durations a player needs
PARTS_LISTED_S = 3  # parts are listed for the segments within this many target durations of the end
PART_HOLD_BACK_PARTS = 3  # PART-HOLD-BACK: at least 2 part targets (RFC 8216bis 4.4.3.8), 3 recommended
SKIP_UNTIL_TARGETS = 6  # CAN-SKIP-UNTIL: delta updates may skip what is older (at least 6 target durations)


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """A partial segment (Low-Latency HLS): ``independent`` when it starts with a keyframe."""

    uri: str
    duration_s: float
    independent: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaSegment:
    """A segment as a playlist lists it; `uri` relative to the playlist that lists it."""

    uri: str
    duration_s: float
    program_date_time: datetime | None = None
    parts: tuple[Part, ...] = ()  # Low-Latency HLS: what the segment is made of


@dataclass(frozen=True, slots=True, kw_only=True)
class RenditionReport:
    """Where another rendition is (``#EXT-X-RENDITION-REPORT``): its last segment and part numbers."""

    uri: str
    last_msn: int
    last_part: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LowLatency:
    """What a Low-Latency HLS playlist adds: the part target and the other renditions' reports."""

    part_target_s: float
    reports: tuple[RenditionReport, ...] = ()


def part_target(part_s: float, frame_rates: Sequence[float]) -> float:
    """The PART-TARGET for parts cut every `part_s` on the first frame at or after each cut time: a
    part lasts a whole number of frames, so at most `part_s` rounded up to the slowest rendition's frame
    (25 fps: 0.52 s for 0.5 s), plus a millisecond for timestamps rounded to milliseconds (FLV)."""
    longest = max((math.ceil(part_s * fps - 1e-6) / fps for fps in frame_rates if fps > 0), default=part_s)
    return math.ceil(max(part_s, longest) * 1000 + 1) / 1000


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


def media_sequence_of(text: str) -> int:
    """The ``#EXT-X-MEDIA-SEQUENCE`` of a media playlist (0 when absent): the number of its first segment."""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            return int(line.split(":", 1)[1])
    return 0


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
    duration_s: float = 0.0  # of the segments, kept by `append`
    longest_s: float = 0.0
    open_parts: list[Part] = field(default_factory=list)  # Low-Latency HLS: the segment in progress
    hint_uri: str | None = None  # Low-Latency HLS: the part FFmpeg writes next

    def __post_init__(self) -> None:
        self.duration_s = sum(s.duration_s for s in self.segments)
        self.longest_s = max((s.duration_s for s in self.segments), default=0.0)

    def append(self, uri: str, duration_s: float, parts: Sequence[Part] = ()) -> MediaSegment:
        """Add the next segment, stamped with its PROGRAM-DATE-TIME on the run's clock (O(1))."""
        segment = MediaSegment(
            uri=uri,
            duration_s=duration_s,
            program_date_time=self.started_at + timedelta(seconds=self.duration_s),
            parts=tuple(parts),
        )
        self.segments.append(segment)
        self.duration_s += duration_s
        self.longest_s = max(self.longest_s, duration_s)
        return segment


@dataclass(slots=True)
class RenditionTrack:
    """Everything the public playlist of one rendition lists, run after run (append-only)."""

    runs: list[RunTrack] = field(default_factory=list)

    @property
    def segment_count(self) -> int:
        return sum(len(run.segments) for run in self.runs)

    @property
    def duration_s(self) -> float:
        return sum(run.duration_s for run in self.runs)

    def report(self, uri: str) -> RenditionReport | None:
        """Its last segment (the one in progress included) and that segment's last part, or None
        before its first part."""
        count = self.segment_count
        last = self.runs[-1] if self.runs else None
        if last is not None and last.open_parts:
            return RenditionReport(uri=uri, last_msn=count, last_part=len(last.open_parts) - 1)
        done = next((run.segments[-1] for run in reversed(self.runs) if run.segments), None)
        if done is None or not done.parts:
            return None
        return RenditionReport(uri=uri, last_msn=count - 1, last_part=len(done.parts) - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """The tail of a track a live playlist lists: the last `dvr_s` seconds, at least `min_segments`."""

    dvr_s: float
    min_segments: int = LIVE_WINDOW_SEGMENTS

    def __post_init__(self) -> None:
        if self.dvr_s < 0 or self.min_segments < 1:
            raise ValueError(f"window: dvr_s must be >= 0 and min_segments >= 1, not {self}")


@dataclass(frozen=True, slots=True)
class _Slice:
    """What a playlist lists: runs (ordinal among runs with segments, run, first segment index)."""

    media_sequence: int
    parts: list[tuple[int, RunTrack, int]]


def _everything(track: RenditionTrack) -> _Slice:
    runs = [run for run in track.runs if run.segments]
    return _Slice(0, [(ordinal, run, 0) for ordinal, run in enumerate(runs)])


def _tail(track: RenditionTrack, window: Window) -> _Slice:
    """The window, walked from the end: O(segments in the window + runs), whatever the session's length."""
    runs = [run for run in track.runs if run.segments]
    total = sum(len(run.segments) for run in runs)
    parts: list[tuple[int, RunTrack, int]] = []
    listed, listed_s = 0, 0.0
    for ordinal in range(len(runs) - 1, -1, -1):
        run = runs[ordinal]
        first = len(run.segments)
        while first and (listed < window.min_segments or listed_s < window.dvr_s):
            first -= 1
            listed += 1
            listed_s += run.segments[first].duration_s
        if first < len(run.segments):
            parts.append((ordinal, run, first))
        if first:  # the window ends inside this run
            break
    parts.reverse()
    return _Slice(total - listed, parts)


def render_media(
    track: RenditionTrack,
    *,
    target_s: float,
    ended: bool,
    window: Window | None = None,
    low_latency: LowLatency | None = None,
) -> str:
    """The public media playlist: every segment as a VOD once `ended`; while live, the `window` (a
    sliding playlist) or, without one, every segment so far (an EVENT playlist). With `low_latency`
    a live playlist also lists parts, the preload hint and the rendition reports."""
    windowed = window is not None and not ended
    part = _tail(track, window) if window is not None and not ended else _everything(track)
    longest = max((run.longest_s for run in track.runs), default=0.0)
    target = max(1, math.ceil(max(target_s, longest) - 0.001))
    ll = None if ended else low_latency
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", f"#EXT-X-TARGETDURATION:{target}"]
    if ll is not None:
        lines += [
            f"#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL={SKIP_UNTIL_TARGETS * target},CAN-BLOCK-RELOAD=YES,"
            f"PART-HOLD-BACK={_decimal(PART_HOLD_BACK_PARTS * ll.part_target_s)}",
            f"#EXT-X-PART-INF:PART-TARGET={_decimal(ll.part_target_s)}",
        ]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{part.media_sequence}")
    if windowed:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{part.parts[0][0] if part.parts else 0}")
    else:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{'VOD' if ended else 'EVENT'}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    with_parts = _segments_with_parts(part, PARTS_LISTED_S * target) if ll is not None else 0
    listed = sum(len(run.segments) - first for _, run, first in part.parts)
    for index, (_, run, first) in enumerate(part.parts):
        if index:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f'#EXT-X-MAP:URI="{run.init_uri}"')
        listed -= len(run.segments) - first
        lines += _segment_lines(run, first, parts_from=len(run.segments) - max(0, with_parts - listed))
    if ll is not None:
        lines += _live_edge_lines(track, part, ll)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _decimal(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _segments_with_parts(part: _Slice, seconds: float) -> int:
    """How many of the listed segments, counted from the end, are within `seconds` of the end."""
    count, total = 0, 0.0
    for _, run, first in reversed(part.parts):
        for segment in reversed(run.segments[first:]):
            if total >= seconds:
                return count
            count += 1
            total += segment.duration_s
    return count


def _live_edge_lines(track: RenditionTrack, part: _Slice, ll: LowLatency) -> list[str]:
    """The segment in progress (its parts), the preload hint and the rendition reports."""
    lines: list[str] = []
    last = track.runs[-1] if track.runs else None
    if last is not None and last.open_parts:
        if not part.parts or part.parts[-1][1] is not last:  # a run without a complete segment yet
            lines += ["#EXT-X-DISCONTINUITY"] if part.parts else []
            lines.append(f'#EXT-X-MAP:URI="{last.init_uri}"')
        at = last.started_at + timedelta(seconds=last.duration_s)
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_format_time(at)}")
        lines += [_part_line(p) for p in last.open_parts]
    if last is not None and last.hint_uri:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{last.hint_uri}"')
    for report in ll.reports:
        lines.append(
            f'#EXT-X-RENDITION-REPORT:URI="{report.uri}",LAST-MSN={report.last_msn},'
            f"LAST-PART={report.last_part}"
        )
    return lines


def _part_line(part: Part) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={part.duration_s:.6f},URI="{part.uri}"{independent}'


def _segment_lines(run: RunTrack, first: int, parts_from: int | None = None) -> list[str]:
    """A run's segments from `first` on (one not stamped by `RunTrack.append`: timed from the start),
    those from `parts_from` on preceded by their parts."""
    lines: list[str] = []
    at: datetime | None = None
    for index, segment in enumerate(run.segments[first:], start=first):
        if segment.program_date_time is not None:
            at = segment.program_date_time
        elif at is None:
            at = run.started_at + timedelta(seconds=sum(s.duration_s for s in run.segments[:first]))
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_format_time(at)}")
        if parts_from is not None and index >= parts_from:
            lines += [_part_line(p) for p in segment.parts]
        lines += [f"#EXTINF:{segment.duration_s:.6f},", segment.uri]
        at += timedelta(seconds=segment.duration_s)
    return lines


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
