"""FFmpeg's ``-progress`` output (``key=value`` lines, a block ending in ``progress=...``) as snapshots."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Progress", "ProgressParser"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One progress block: encoder fps and speed, output bitrate, frames dropped and duplicated."""

    frame: int = 0
    fps: float = 0.0
    speed: float = 0.0  # media seconds encoded per wall-clock second; < 1.0 means falling behind
    bitrate_kbps: float = 0.0
    out_time_s: float = 0.0
    drop_frames: int = 0
    dup_frames: int = 0
    ended: bool = False


def _number(text: str) -> float:
    """FFmpeg writes "N/A", "1.02x", "2500.3kbits/s": keep the leading number, 0 when there is none."""
    digits = ""
    for char in text.strip():
        if char.isdigit() or char in ".-":
            digits += char
        else:
            break
    try:
        return float(digits)
    except ValueError:
        return 0.0


class ProgressParser:
    """Feed lines; every complete block returns a :class:`Progress`."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> Progress | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        self._fields[key] = value
        if key != "progress":
            return None
        fields, self._fields = self._fields, {}
        return Progress(
            frame=int(_number(fields.get("frame", "0"))),
            fps=_number(fields.get("fps", "0")),
            speed=_number(fields.get("speed", "0")),
            bitrate_kbps=_number(fields.get("bitrate", "0")),
            out_time_s=_number(fields.get("out_time_us", "0")) / 1e6,
            drop_frames=int(_number(fields.get("drop_frames", "0"))),
            dup_frames=int(_number(fields.get("dup_frames", "0"))),
            ended=value == "end",
        )
