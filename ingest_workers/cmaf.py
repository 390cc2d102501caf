"""CMAF fragments as pure functions: does a part start with a keyframe, and a segment out of its parts.

In Low-Latency HLS FFmpeg writes each part as its own fMP4 file (``styp``, ``sidx``, one ``moof`` +
``mdat``), cut on time rather than on keyframes. A part is *independent* when its video track's first
sample is a sync sample, and a public segment runs from one independent part to the next. The
segment file is its parts' fragments one after the other: every ``moof`` addresses its ``mdat``
relative to itself (default-base-is-moof), so moving them is safe; the first part's ``styp`` is kept,
the per-part ``sidx`` indexes are dropped (each describes only its own part).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["TrackDefaults", "concatenate_parts", "starts_with_keyframe", "video_defaults"]

NON_SYNC = 0x00010000  # sample_is_non_sync_sample in ISO/IEC 14496-12 sample flags
_TFHD_BASE_OFFSET, _TFHD_DESCRIPTION, _TFHD_DURATION, _TFHD_SIZE, _TFHD_FLAGS = 0x1, 0x2, 0x8, 0x10, 0x20
_TRUN_DATA_OFFSET, _TRUN_FIRST_FLAGS = 0x1, 0x4
_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS = 0x100, 0x200, 0x400


@dataclass(frozen=True, slots=True)
class TrackDefaults:
    """The video track of an init segment: its id and its default sample flags (``trex``)."""

    track_id: int
    sample_flags: int = 0


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in ``data[start:end]``; stops at a truncated box."""
    for kind, _, payload, box_end in _spans(data, start, end):
        yield kind, payload, box_end


def _spans(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if at + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, at, at + header, at + size
        at += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    return next(((s, e) for k, s, e in _boxes(data, start, end) if k == kind), None)


def _u32(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">I", data, at)[0])


def video_defaults(init: bytes) -> TrackDefaults | None:
    """The video track of an init segment (``moov``), or None if it has none."""
    moov = _child(init, 0, len(init), b"moov")
    if moov is None:
        return None
    video: int | None = None
    for kind, start, end in _boxes(init, *moov):
        if kind != b"trak":
            continue
        tkhd, mdia = _child(init, start, end, b"tkhd"), _child(init, start, end, b"mdia")
        hdlr = _child(init, *mdia, b"hdlr") if mdia else None
        if tkhd and hdlr and init[hdlr[0] + 8 : hdlr[0] + 12] == b"vide":
            version = init[tkhd[0]]
            video = _u32(init, tkhd[0] + (20 if version == 1 else 12))
            break
    if video is None:
        return None
    mvex = _child(init, *moov, b"mvex")
    for kind, start, _ in _boxes(init, *mvex) if mvex else ():
        if kind == b"trex" and _u32(init, start + 4) == video:
            return TrackDefaults(video, _u32(init, start + 20))
    return TrackDefaults(video)


def starts_with_keyframe(part: bytes, video: TrackDefaults) -> bool:
    """Whether the first video sample of a part (its first ``moof``) is a sync sample."""
    moof = _child(part, 0, len(part), b"moof")
    if moof is None:
        return False
    for kind, start, end in _boxes(part, *moof):
        if kind != b"traf":
            continue
        flags = _traf_first_flags(part, start, end, video)
        if flags is not None:
            return not flags & NON_SYNC
    return False


def _traf_first_flags(data: bytes, start: int, end: int, video: TrackDefaults) -> int | None:
    """The first sample's flags of a ``traf`` of the video track (None for another track)."""
    tfhd = _child(data, start, end, b"tfhd")
    if tfhd is None or _u32(data, tfhd[0] + 4) != video.track_id:
        return None
    flags = _u32(data, tfhd[0]) & 0xFFFFFF
    default = video.sample_flags
    if flags & _TFHD_FLAGS:
        at = tfhd[0] + 8
        for bit, width in (
            (_TFHD_BASE_OFFSET, 8),
            (_TFHD_DESCRIPTION, 4),
            (_TFHD_DURATION, 4),
            (_TFHD_SIZE, 4),
        ):
            at += width if flags & bit else 0
        default = _u32(data, at)
    trun = _child(data, start, end, b"trun")
    if trun is None:
        return default
    run_flags = _u32(data, trun[0]) & 0xFFFFFF
    at = trun[0] + 8 + (4 if run_flags & _TRUN_DATA_OFFSET else 0)
    if run_flags & _TRUN_FIRST_FLAGS:
        return _u32(data, at)
    if run_flags & _TRUN_FLAGS:
        at += 4 * (bool(run_flags & _TRUN_DURATION) + bool(run_flags & _TRUN_SIZE))
        return _u32(data, at)
    return default


def concatenate_parts(parts: Sequence[bytes]) -> bytes:
    """One segment out of its parts: the first ``styp``, then every part's boxes but ``styp``/``sidx``."""
    out = bytearray()
    for index, part in enumerate(parts):
        for kind, start, _, end in _spans(part):
            if kind != b"sidx" and not (kind == b"styp" and index):
                out += part[start:end]
    return bytes(out)
