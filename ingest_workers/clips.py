"""Clips: an ingest node cuts 5-60 s of a stream it holds out of the segments already on its disk.

``POST /api/v1/streams/{id}/clips`` publishes **ClipRequested** on ``streams``; every node reads it
(:class:`~ingest_workers.commands.CommandListener`), and only a node with ``<hls_dir>/<stream_id>/``
acts. It reads the top rendition's media playlist (the DVR window while live, the VOD once ended),
finds the segments covering the request and writes one MP4 (``+faststart``, playable by a plain
``<video>``) to ``<hls_dir>/clips/<clip_id>/mp4/clip.mp4``, which the origin and the cache tier
already serve (an immutable segment-like path); then it publishes **ClipCreated** with the duration
FFprobe measured, or **ClipFailed**.

- **Copy** (``reencoded`` false): the start falls on a segment boundary (every segment starts with a
  keyframe), so the segments are stream-copied: the fMP4 init segment and the media segments
  concatenated byte for byte, remuxed by FFmpeg with ``-c copy -t``. The end needs no keyframe.
- **Edges re-encoded** (``reencoded`` true): the start falls inside a segment. The head, from the
  start to the next segment boundary, is re-encoded (H.264 + AAC at the source's size); the rest is
  copied; both carry their parameter sets in-band (``dump_extra``) and are joined with the concat
  demuxer, so the decoder switches parameter sets at the copied part's first keyframe.

Media time: milliseconds from the first segment of the rendition's timeline. While the playlist
still starts at media sequence 0 (every VOD, and a live stream within its DVR window, 2 h by
default) that is the stream's first segment; once the window slid, the segments that slid out are
counted at the target duration each (an estimate off by the length of any short run-end segment).

Two nodes can hold a stream (a publisher that reconnected to another node): each cuts only a range
its own playlist covers, and a node whose playlist does not cover it publishes ClipFailed; the read
model keeps a ClipCreated over a ClipFailed (:mod:`projections.catalog.clips`). A range spanning a
restart of FFmpeg (two init segments) is refused: its parts do not share codec parameters.

:func:`plan_clip` is the pure rule; :func:`cut` runs FFmpeg; :class:`ClipCutter` is what the node runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from events.base import Event
from events.streams import ClipCreated, ClipFailed, ClipRequested
from ingest_workers.retention import ENDLIST

__all__ = [
    "ClipCutter",
    "ClipPlan",
    "ClipRefused",
    "CutResult",
    "Segment",
    "clip_path",
    "cut",
    "parse_timeline",
    "plan_clip",
    "top_rendition",
]

log = logging.getLogger(__name__)

PRODUCER = "ingest_workers"
BOUNDARY_TOLERANCE_MS = 20  # a start this close to a segment boundary is on it (under a frame at 30 fps)
LIVE_WAIT_S = 12.0  # a live clip ending past the last complete segment waits this long for it
FFMPEG_TIMEOUT_S = 120.0
CLIPS_DIR = "clips"
_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # as ingest_workers.retention reads one


class ClipRefused(Exception):
    """The clip cannot be cut here: the reason goes into ClipFailed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """A media segment on the rendition's timeline: its file, its init segment, where it starts."""

    uri: str  # relative to the stream's folder
    init: str
    start_ms: float
    duration_ms: float

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipPlan:
    """What to cut: the segments covering the clip, the offset of its start in the first one."""

    segments: tuple[Segment, ...]
    offset_ms: float  # from the first segment's start; 0 = on a keyframe (the copy path)
    duration_ms: int

    @property
    def copy(self) -> bool:
        return self.offset_ms == 0

    @property
    def init(self) -> str:
        return self.segments[0].init


@dataclass(frozen=True, slots=True, kw_only=True)
class CutResult:
    path: Path
    duration_ms: int  # measured by FFprobe
    reencoded: bool


def top_rendition(master: str) -> str | None:
    """The media playlist of the highest-bandwidth variant of a master playlist (None: no variant)."""
    best: tuple[int, str] | None = None
    bandwidth = 0
    for raw in master.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            for attribute in line.split(":", 1)[1].split(","):
                name, _, value = attribute.partition("=")
                if name == "BANDWIDTH" and value.isdigit():
                    bandwidth = int(value)
        elif line and not line.startswith("#"):
            if best is None or bandwidth > best[0]:
                best = (bandwidth, line)
            bandwidth = 0
    return None if best is None else best[1]


def parse_timeline(playlist: str) -> tuple[list[Segment], bool]:
    """(segments on the media timeline, ended) of a media playlist; each segment knows its init
    segment (a restart brings a new ``#EXT-X-MAP``)."""
    target_s = 0.0
    sequence = 0
    init = ""
    duration: float | None = None
    segments: list[Segment] = []
    for raw in playlist.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target_s = float(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MAP:"):
            init = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            at = segments[-1].end_ms if segments else sequence * target_s * 1000
            segments.append(Segment(uri=line, init=init, start_ms=at, duration_ms=duration * 1000))
            duration = None
    return segments, ENDLIST in playlist


def plan_clip(segments: list[Segment], start_ms: int, duration_ms: int) -> ClipPlan:
    """The segments covering ``[start_ms, start_ms + duration_ms)``; :class:`ClipRefused` when the
    timeline does not cover it or it spans a restart (two init segments)."""
    if not segments:
        raise ClipRefused("the stream has no segments here")
    end_ms = start_ms + duration_ms
    first, last = segments[0].start_ms, segments[-1].end_ms
    if start_ms < first - BOUNDARY_TOLERANCE_MS or end_ms > last + BOUNDARY_TOLERANCE_MS:
        raise ClipRefused(
            f"the clip {start_ms}-{end_ms} ms is outside the available {first:.0f}-{last:.0f} ms"
        )
    covering = [s for s in segments if s.end_ms > start_ms + BOUNDARY_TOLERANCE_MS and s.start_ms < end_ms]
    if len({s.init for s in covering}) != 1:
        raise ClipRefused("the clip spans a restart of the stream's encoder")
    offset = max(0.0, start_ms - covering[0].start_ms)
    if offset <= BOUNDARY_TOLERANCE_MS:
        offset = 0.0
    return ClipPlan(segments=tuple(covering), offset_ms=offset, duration_ms=duration_ms)


def clip_path(hls_dir: Path, clip_id: str) -> Path:
    """Where a clip's MP4 goes: a path the origin serves like a segment (immutable)."""
    return hls_dir / CLIPS_DIR / clip_id / "mp4" / "clip.mp4"


def clip_url(public_hls_url: str, clip_id: str) -> str:
    return f"{public_hls_url.rstrip('/')}/{CLIPS_DIR}/{clip_id}/mp4/clip.mp4"


def _concatenate(stream_dir: Path, init: str, segments: tuple[Segment, ...], into: Path) -> None:
    """An fMP4 file: the init segment then the media segments, byte for byte."""
    with into.open("wb") as out:
        for name in (init, *(s.uri for s in segments)):
            with (stream_dir / name).open("rb") as part:
                shutil.copyfileobj(part, out)


async def _ffmpeg(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(process.communicate(), FFMPEG_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ClipRefused("FFmpeg took too long") from None
    if process.returncode != 0:
        raise ClipRefused(f"FFmpeg failed: {err.decode(errors='replace').strip()[-300:]}")


async def probe_duration_ms(path: Path) -> int:
    """The container duration FFprobe reads, in milliseconds."""
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await process.communicate()
    try:
        return round(float(json.loads(out)["format"]["duration"]) * 1000)
    except (KeyError, ValueError) as e:
        raise ClipRefused(f"FFprobe could not read the clip: {e}") from None


_MP4_OUT = ("-map", "0:v:0", "-map", "0:a:0?", "-avoid_negative_ts", "make_zero", "-movflags", "+faststart")


async def cut(stream_dir: Path, plan: ClipPlan, out: Path) -> CutResult:
    """Write the clip of ``plan`` to ``out`` (an MP4) from the segments in ``stream_dir``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    seconds = f"{plan.duration_ms / 1000:.3f}"
    with tempfile.TemporaryDirectory(prefix=".clip-", dir=out.parent) as scratch:
        work = Path(scratch)
        partial = work / "clip.mp4"
        if plan.copy:
            source = work / "source.mp4"
            await asyncio.to_thread(_concatenate, stream_dir, plan.init, plan.segments, source)
            await _ffmpeg("-i", str(source), "-t", seconds, "-c", "copy", *_MP4_OUT, str(partial))
        else:
            await _edges_reencoded(stream_dir, plan, work, partial)
        duration_ms = await probe_duration_ms(partial)
        partial.replace(out)  # atomically: the origin never serves half a clip
    return CutResult(path=out, duration_ms=duration_ms, reencoded=not plan.copy)


async def _edges_reencoded(stream_dir: Path, plan: ClipPlan, work: Path, out: Path) -> None:
    """Re-encode the head (the start to the next keyframe), copy the rest, join them."""
    head_segment, rest = plan.segments[0], plan.segments[1:]
    head_ms = min(head_segment.duration_ms - plan.offset_ms, plan.duration_ms)
    head_source = work / "head-source.mp4"
    await asyncio.to_thread(_concatenate, stream_dir, plan.init, (head_segment,), head_source)
    head = work / "head.ts"
    await _ffmpeg(
        "-ss", f"{plan.offset_ms / 1000:.3f}", "-i", str(head_source), "-t", f"{head_ms / 1000:.3f}",
        "-map", "0:v:0", "-map", "0:a:0?",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k",
        "-bsf:v", "dump_extra=freq=keyframe", "-f", "mpegts", str(head),
    )  # fmt: skip
    parts = [head]
    remaining_ms = plan.duration_ms - head_ms
    if rest and remaining_ms > 0:
        tail_source = work / "tail-source.mp4"
        await asyncio.to_thread(_concatenate, stream_dir, plan.init, rest, tail_source)
        tail = work / "tail.ts"
        await _ffmpeg(
            "-i", str(tail_source), "-t", f"{remaining_ms / 1000:.3f}", "-map", "0:v:0", "-map", "0:a:0?",
            "-c", "copy", "-bsf:v", "h264_mp4toannexb,dump_extra=freq=keyframe", "-f", "mpegts", str(tail),
        )  # fmt: skip
        parts.append(tail)
    listing = work / "parts.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    await _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", *_MP4_OUT, str(out))


Publish = Callable[[Event], Awaitable[object]]


class ClipCutter:
    """A node's clip worker: cuts the clips of the streams whose folder it holds, one at a time."""

    def __init__(self, *, hls_dir: Path, public_hls_url: str, node: str, publish: Publish) -> None:
        self._hls_dir = hls_dir
        self._public_hls_url = public_hls_url
        self._node = node
        self._publish = publish
        self._lock = asyncio.Lock()  # FFmpeg per clip is CPU-bound: one at a time per node

    def holds(self, stream_id: str) -> bool:
        """Whether this node has the stream's HLS (only such a node answers its clip requests)."""
        return (
            _STREAM_ID.fullmatch(stream_id) is not None
            and (self._hls_dir / stream_id / "master.m3u8").is_file()
        )

    async def handle(self, request: ClipRequested) -> Event | None:
        """Cut the requested clip if the stream is here; publish and return ClipCreated or ClipFailed."""
        if not self.holds(request.stream_id):
            return None
        async with self._lock:
            try:
                started = time.monotonic()
                result = await self._cut(request)
                log.info(
                    "clip %s of stream %s: %d ms (%s) in %.2fs",
                    request.clip_id,
                    request.stream_id,
                    result.duration_ms,
                    "re-encoded head" if result.reencoded else "copied",
                    time.monotonic() - started,
                )
                event: Event = ClipCreated(
                    clip_id=request.clip_id,
                    stream_id=request.stream_id,
                    channel_id=request.channel_id,
                    requested_by=request.requested_by,
                    start_ms=request.start_ms,
                    duration_ms=result.duration_ms,
                    url=clip_url(self._public_hls_url, request.clip_id),
                    title=request.title,
                    reencoded=result.reencoded,
                    node=self._node,
                    producer=PRODUCER,
                    causation_id=str(request.event_id),
                )
            except ClipRefused as e:
                log.warning("clip %s of stream %s refused: %s", request.clip_id, request.stream_id, e)
                event = ClipFailed(
                    clip_id=request.clip_id,
                    stream_id=request.stream_id,
                    reason=str(e),
                    node=self._node,
                    producer=PRODUCER,
                    causation_id=str(request.event_id),
                )
        await self._publish(event)
        return event

    async def _cut(self, request: ClipRequested) -> CutResult:
        stream_dir = self._hls_dir / request.stream_id
        deadline = time.monotonic() + LIVE_WAIT_S
        while True:
            segments, ended = await asyncio.to_thread(self._timeline, stream_dir)
            try:
                plan = plan_clip(segments, request.start_ms, request.duration_ms)
                break
            except ClipRefused:
                waiting = bool(segments) and request.start_ms + request.duration_ms > segments[-1].end_ms
                if ended or not waiting or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.5)  # live: the last segments of the range are being written
        return await cut(stream_dir, plan, clip_path(self._hls_dir, request.clip_id))

    @staticmethod
    def _timeline(stream_dir: Path) -> tuple[list[Segment], bool]:
        rendition = top_rendition((stream_dir / "master.m3u8").read_text())
        if rendition is None or "/" in rendition or ".." in rendition:
            raise ClipRefused("the stream's master playlist lists no rendition")
        return parse_timeline((stream_dir / rendition).read_text())
