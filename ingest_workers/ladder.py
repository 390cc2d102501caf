"""The ABR ladder as pure decisions: which renditions a source gets, and the one FFmpeg command.

One FFmpeg decodes the source once, splits the picture, scales and encodes every rung, and muxes each
rendition into its own fMP4 HLS output. Keyframes are forced on the media clock every segment duration
in every encoded rung (``prev_forced_t``), scene-cut keyframes are off and the GOP is fixed, so all
renditions cut their segments at the same instants and a player can switch between them at any
boundary. A rung is never taller than the source; when the source is H.264 it is passed through as the
top rendition (and rungs as tall as it are dropped), otherwise it is re-encoded.

A publisher that reconnects may come back at another size or codec: :func:`compare_ladders` says what
the new plan changes (rungs are matched by name: "source" stays "source" at any size), and which rung
of the old plan a new rung's earlier runs come from (so its playlist covers the whole session).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest_workers.errors import LadderError

__all__ = [
    "FfmpegOutput",
    "LadderChange",
    "Rung",
    "RungSpec",
    "SourceInfo",
    "Thumbnail",
    "compare_ladders",
    "parse_ladder",
    "plan_ladder",
    "transcode_command",
]

SPEC = re.compile(r"^(?P<height>\d{2,4})p(?P<fps>\d{1,3})?:(?P<kbps>\d{2,6})$")
# FFmpeg's own (private) playlists slide over this many segments; the worker reads them every 0.2 s, so
# it has to stall for a whole list (30-60 s) to miss one. Files are never deleted: the VOD lists them all.
PRIVATE_LIST_SIZE = 30
AUDIO_KBPS = 128
LOW_AUDIO_KBPS = 96  # rungs under 480 lines: the picture is small, save the bits for it
SOURCE = "source"
PART_PREFIX = "part_"  # Low-Latency HLS: FFmpeg's files are parts, the worker writes the segments


@dataclass(frozen=True, slots=True, kw_only=True)
class RungSpec:
    """A configured rung, e.g. ``720p:2800`` or ``480p30:1200`` (height, optional fps cap, kbps)."""

    height: int
    video_kbps: int
    max_fps: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceInfo:
    """What the probe learned about the source."""

    codec: str  # e.g. "h264"
    width: int
    height: int
    fps: float
    has_audio: bool
    bitrate_kbps: int = 0  # 0 when the container does not say


@dataclass(frozen=True, slots=True, kw_only=True)
class Rung:
    """A planned rendition; ``copy`` means the source video is passed through."""

    name: str
    width: int
    height: int
    fps: float
    video_kbps: int
    audio_kbps: int
    copy: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FfmpegOutput:
    """Where one rendition's HLS output goes."""

    rung: Rung
    directory: Path

    @property
    def playlist(self) -> Path:
        return self.directory / "index.m3u8"


@dataclass(frozen=True, slots=True, kw_only=True)
class Thumbnail:
    """A still of the stream, rewritten in place every ``interval_s`` (for listings and previews)."""

    path: Path
    interval_s: float = 10.0
    height: int = 180


def parse_ladder(specs: Sequence[str]) -> tuple[RungSpec, ...]:
    """Parse the ladder setting; tallest first, duplicates refused."""
    rungs = []
    for text in specs:
        match = SPEC.match(text.strip())
        if match is None:
            raise LadderError(
                f"ladder rung {text!r}: expected HEIGHTp[FPS]:KBPS, e.g. 720p:2800 or 480p30:1200"
            )
        fps = match["fps"]
        rungs.append(
            RungSpec(
                height=int(match["height"]),
                video_kbps=int(match["kbps"]),
                max_fps=float(fps) if fps else None,
            )
        )
    heights = [r.height for r in rungs]
    if len(set(heights)) != len(heights):
        raise LadderError(f"ladder {list(specs)!r}: two rungs of the same height")
    return tuple(sorted(rungs, key=lambda r: -r.height))


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _rung_name(height: int, fps: float) -> str:
    return f"{height}p{round(fps)}"


def _scaled(spec: RungSpec, source: SourceInfo) -> Rung:
    fps = min(source.fps, spec.max_fps) if spec.max_fps else source.fps
    width = _even(source.width * spec.height / source.height)
    audio = AUDIO_KBPS if spec.height >= 480 else LOW_AUDIO_KBPS
    return Rung(
        name=_rung_name(spec.height, fps),
        width=width,
        height=spec.height,
        fps=fps,
        video_kbps=spec.video_kbps,
        audio_kbps=audio if source.has_audio else 0,
    )


def plan_ladder(
    specs: Sequence[RungSpec], source: SourceInfo, *, passthrough: bool = True
) -> tuple[Rung, ...]:
    """The renditions of `source`, tallest first: never upscaled, the source passed through if H.264."""
    copy = passthrough and source.codec == "h264"
    rungs: list[Rung] = []
    if copy:
        rungs.append(
            Rung(
                name=SOURCE,
                width=source.width,
                height=source.height,
                fps=source.fps,
                video_kbps=source.bitrate_kbps,
                audio_kbps=AUDIO_KBPS if source.has_audio else 0,
                copy=True,
            )
        )
    for spec in specs:
        if spec.height < source.height or (not copy and spec.height == source.height):
            rungs.append(_scaled(spec, source))
    if not rungs:  # a non-H.264 source smaller than every rung: re-encode it at its own size
        rungs.append(_scaled(RungSpec(height=source.height, video_kbps=specs[-1].video_kbps), source))
    return tuple(rungs)


@dataclass(frozen=True, slots=True, kw_only=True)
class LadderChange:
    """What a new plan changes, rungs matched by name: ``kept`` (as the new plan has them, maybe at
    another size), ``added`` (each with its ``donors`` entry: the old rung whose runs precede its own)
    and ``dropped`` (as the old plan had them)."""

    kept: tuple[Rung, ...]
    added: tuple[Rung, ...]
    dropped: tuple[Rung, ...]
    donors: dict[str, str]  # added rung's name -> old rung's name


def _shape(rung: Rung) -> tuple[str, int, int, float, bool, bool]:
    """What makes FFmpeg write another rendition; not the bitrate a probe reads (it varies)."""
    return (rung.name, rung.width, rung.height, rung.fps, rung.copy, rung.audio_kbps > 0)


def compare_ladders(old: Sequence[Rung], new: Sequence[Rung]) -> LadderChange | None:
    """How `new` differs from `old`, or None when it is the same plan (same names, sizes, frame
    rates, copy or encode, audio or not): the session then goes on exactly as before."""
    if [_shape(r) for r in old] == [_shape(r) for r in new]:
        return None
    before = {r.name for r in old}
    after = {r.name for r in new}
    added = tuple(r for r in new if r.name not in before)
    return LadderChange(
        kept=tuple(r for r in new if r.name in before),
        added=added,
        dropped=tuple(r for r in old if r.name not in after),
        donors={r.name: _nearest(r, old).name for r in added},
    )


def _nearest(rung: Rung, old: Sequence[Rung]) -> Rung:
    """The old rung nearest in height, the shorter of two as near (a player that picked `rung` for
    its bandwidth is not handed the taller one's bits)."""
    return min(old, key=lambda r: (abs(r.height - rung.height), r.height))


def _filter_graph(encoded: Sequence[Rung], thumbnail: Thumbnail | None = None) -> str:
    branches = len(encoded) + (1 if thumbnail else 0)
    labels = "".join(f"[s{i}]" for i in range(branches))
    chains = [f"[0:v:0]split={branches}{labels}"]
    if thumbnail:  # the last branch: one frame every interval, small, full-range for JPEG
        chains.append(
            f"[s{len(encoded)}]fps=1/{thumbnail.interval_s:g},scale=-2:{thumbnail.height}:flags=bilinear,"
            "format=yuvj420p[thumb]"
        )
    for i, rung in enumerate(encoded):
        chain = f"[s{i}]scale={rung.width}:{rung.height}:flags=bilinear"
        if rung.fps:
            chain += f",fps={rung.fps:g}"
        chains.append(f"{chain},format=yuv420p[v{i}]")
    return ";".join(chains)


def _video_args(rung: Rung, label: str, segment_s: float, preset: str, tune: str) -> list[str]:
    if rung.copy:
        return ["-map", "0:v:0", "-c:v", "copy"]
    gop = max(1, round(segment_s * rung.fps))
    return [
        *(["-tune", tune] if tune else []),
        "-map",
        f"[{label}]",
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-profile:v",
        "high",
        "-b:v",
        f"{rung.video_kbps}k",
        "-maxrate",
        f"{int(rung.video_kbps * 1.1)}k",
        "-bufsize",
        f"{rung.video_kbps * 2}k",
        "-g",
        str(gop),
        "-keyint_min",
        str(gop),
        "-sc_threshold",
        "0",
        "-x264-params",
        "scenecut=0:open_gop=0",
        "-force_key_frames",
        f"expr:if(isnan(prev_forced_t),1,gte(t,prev_forced_t+{segment_s:g}-0.001))",
    ]


def _hls_args(output: FfmpegOutput, segment_s: float, part_s: float | None = None) -> list[str]:
    if part_s is not None:
        return _part_args(output, part_s)
    return [
        "-f",
        "hls",
        "-hls_time",
        f"{segment_s:g}",
        "-hls_list_size",
        str(PRIVATE_LIST_SIZE),
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-hls_segment_filename",
        str(output.directory / "seg_%05d.m4s"),
        "-hls_flags",
        "temp_file+independent_segments+program_date_time",  # no delete_segments: the VOD needs them
        str(output.playlist),
    ]


def _part_args(output: FfmpegOutput, part_s: float) -> list[str]:
    """Low-Latency HLS: FFmpeg's "segments" are the parts, cut every `part_s` whether or not a keyframe
    starts them (``split_by_time``); keyframes still come every segment duration, and the worker
    groups the parts between two keyframes into one public segment (see :mod:`ingest_workers.cmaf`)."""
    return [
        "-f",
        "hls",
        "-hls_time",
        f"{part_s:g}",
        "-hls_list_size",
        str(PRIVATE_LIST_SIZE * 4),  # parts come 4 times as often; keep the same seconds of slack
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-hls_segment_filename",
        str(output.directory / f"{PART_PREFIX}%05d.m4s"),
        "-hls_flags",
        "temp_file+split_by_time+program_date_time",  # split_by_time excludes independent_segments
        str(output.playlist),
    ]


def transcode_command(
    input_args: Sequence[str],
    outputs: Sequence[FfmpegOutput],
    *,
    segment_s: float,
    preset: str = "veryfast",
    tune: str = "",
    ffmpeg: str = "ffmpeg",
    thumbnail: Thumbnail | None = None,
    part_s: float | None = None,
) -> list[str]:
    """The argv of the one FFmpeg that decodes `input_args` once and writes every rendition's HLS.

    `input_args` ends with ``-i URL``; the URL must not carry a secret (it is visible in ``ps``).
    Progress goes to stdout as ``key=value`` blocks once a second. With ``thumbnail``, one more
    branch of the same decode writes a JPEG still (atomically replaced, so never served half-written),
    over the one an earlier run of the stream left. Every output is written through a ``.tmp`` file
    that is renamed when complete (the origin refuses ``*.tmp``), so a killed run leaves nothing
    half-written that a playlist lists. With ``part_s`` (Low-Latency HLS) every rendition is written
    as parts of that duration instead of segments (see :func:`_part_args`).
    """
    encoded = [o.rung for o in outputs if not o.rung.copy]
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        # The still is replaced in place by every run of a stream: without -y, FFmpeg (which cannot ask
        # with -nostdin) refuses an existing output and exits, so a restart after the first still would
        # fail for ever. The HLS outputs are safe with it: each run writes a directory of its own.
        "-y",
        "-loglevel",
        "warning",
        "-progress",
        "pipe:1",
        "-stats_period",
        "1",
        *input_args,
    ]
    if encoded or thumbnail:
        argv += ["-filter_complex", _filter_graph(encoded, thumbnail)]
    index = 0
    for output in outputs:
        label = "" if output.rung.copy else f"v{index}"
        index += 0 if output.rung.copy else 1
        argv += _video_args(output.rung, label, segment_s, preset, tune)
        if output.rung.audio_kbps:
            argv += [
                "-map",
                "0:a:0",
                "-c:a",
                "aac",
                "-b:a",
                f"{output.rung.audio_kbps}k",
                "-ac",
                "2",
                "-ar",
                "48000",
            ]
        argv += _hls_args(output, segment_s, part_s)
    if thumbnail:
        argv += _thumbnail_args(thumbnail)
    return argv


def _thumbnail_args(thumbnail: Thumbnail) -> list[str]:
    return [
        "-map",
        "[thumb]",
        "-an",
        "-c:v",
        "mjpeg",
        "-q:v",
        "5",
        "-f",
        "image2",
        "-update",
        "1",
        "-atomic_writing",
        "1",
        str(thumbnail.path),
    ]
