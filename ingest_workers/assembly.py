"""Low-Latency HLS: the parts FFmpeg writes, grouped into the public segments of one run's rendition.

A segment starts with a part that starts with a keyframe (keyframes come every segment duration) and
ends where the next such part starts, or where the run ends. Its file (``seg_NNNNN.m4s`` beside the
parts, written atomically once its last part is complete) is its parts' fragments one after the
other (:func:`ingest_workers.cmaf.concatenate_parts`), so players that do not know parts play the
same segments as without Low-Latency HLS, and both kinds of file are immutable and cacheable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ingest_workers import cmaf
from ingest_workers.playlists import MediaSegment, Part, RunTrack

__all__ = ["SegmentAssembler"]

SEGMENT_NAME = "seg_{:05d}.m4s"


@dataclass(slots=True)
class SegmentAssembler:
    """Groups one rendition's parts of one run (in `directory`, listed under `prefix` in the public
    playlist) into segments of `track`; keeps the parts of the segment in progress in memory."""

    directory: Path
    prefix: str  # the public playlist's path to `directory`, e.g. "RUN/144p30/"
    track: RunTrack
    _video: cmaf.TrackDefaults | None = None
    _pending: list[bytes] = field(default_factory=list)

    def add(self, name: str, duration_s: float) -> MediaSegment | None:
        """Take FFmpeg's next part (its file name); returns the segment it closed, if it starts one."""
        data = (self.directory / name).read_bytes()
        independent = self._starts_with_keyframe(data)
        closed = self.close() if independent else None
        part = Part(uri=f"{self.prefix}{name}", duration_s=duration_s, independent=independent)
        self.track.open_parts.append(part)
        self._pending.append(data)
        return closed

    def close(self) -> MediaSegment | None:
        """Write the segment in progress (at a keyframe, or at the run's end); None if it has no parts.

        The returned segment's ``uri`` is the file name in `directory` (the track lists the public one).
        """
        if not self.track.open_parts:
            return None
        name = SEGMENT_NAME.format(len(self.track.segments))
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(cmaf.concatenate_parts(self._pending))
        os.replace(tmp, self.directory / name)
        parts = tuple(self.track.open_parts)
        duration = sum(p.duration_s for p in parts)
        self.track.append(f"{self.prefix}{name}", duration, parts)
        self.track.open_parts.clear()
        self._pending.clear()
        return MediaSegment(uri=name, duration_s=duration, parts=parts)

    def _starts_with_keyframe(self, part: bytes) -> bool:
        if self._video is None:
            init = (self.directory / "init.mp4").read_bytes()  # written before the first part
            self._video = cmaf.video_defaults(init) or cmaf.TrackDefaults(track_id=0)
        if self._video.track_id == 0:  # audio only: every part starts anywhere
            return True
        return cmaf.starts_with_keyframe(part, self._video)
