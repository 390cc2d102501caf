"""ffprobe, asynchronously: what a source carries, and the codec strings of written init segments."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ingest_workers.errors import ProbeFailed
from ingest_workers.ladder import SourceInfo

__all__ = ["codecs_of", "probe_source"]

AAC_LC = "mp4a.40.2"


async def _ffprobe(args: Sequence[str], timeout_s: float) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "ffprobe",
        "-v",
        "error",
        "-show_streams",
        "-show_format",
        "-of",
        "json",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise ProbeFailed(f"ffprobe found no media within {timeout_s:.0f}s") from None
    if process.returncode != 0:
        raise ProbeFailed(f"ffprobe failed: {err.decode(errors='replace').strip()[-300:]}")
    return dict(json.loads(out or b"{}"))


def _rate(text: str) -> float:
    num, _, den = text.partition("/")
    try:
        return float(num) / float(den or 1) if float(den or 1) else 0.0
    except ValueError:
        return 0.0


async def probe_source(input_args: Sequence[str], timeout_s: float = 8.0) -> SourceInfo:
    """Codec, size, frame rate and audio of the source (`input_args`: options then the URL)."""
    info = await _ffprobe(list(input_args), timeout_s)
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise ProbeFailed("the source has no video stream")
    fps = _rate(video.get("avg_frame_rate", "0/0")) or _rate(video.get("r_frame_rate", "0/0")) or 30.0
    bitrate = int(video.get("bit_rate") or info.get("format", {}).get("bit_rate") or 0) // 1000
    return SourceInfo(
        codec=str(video.get("codec_name", "")),
        width=int(video["width"]),
        height=int(video["height"]),
        fps=round(min(fps, 120.0), 3),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        bitrate_kbps=bitrate,
    )


def codecs_of(init_segment: Path, *, has_audio: bool) -> str:
    """RFC 6381 CODECS of an fMP4 init segment, e.g. ``avc1.64001e,mp4a.40.2``.

    Read from the avcC box (profile, constraint flags, level as the encoder wrote them); ffprobe
    reports no level for an init segment alone. Audio is always AAC-LC (the ladder encodes it).
    """
    data = init_segment.read_bytes()
    at = data.find(b"avcC")
    if at < 0 or len(data) < at + 8:
        raise ProbeFailed(f"{init_segment.name}: no H.264 configuration (avcC)")
    profile, constraints, level = data[at + 5], data[at + 6], data[at + 7]
    video = f"avc1.{profile:02x}{constraints:02x}{level:02x}"
    return f"{video},{AAC_LC}" if has_audio else video
