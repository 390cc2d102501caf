"""Thumbnails: the ingest worker's still per stream is one more branch of the ladder's single decode."""

from __future__ import annotations

from pathlib import Path

from ingest_workers.ladder import (
    FfmpegOutput,
    SourceInfo,
    Thumbnail,
    parse_ladder,
    plan_ladder,
    transcode_command,
)

DEFAULT = parse_ladder(["720p:2800", "480p30:1200", "360p30:700"])


def source(height: int, codec: str = "h264", fps: float = 60) -> SourceInfo:
    return SourceInfo(codec=codec, width=height * 16 // 9, height=height, fps=fps, has_audio=True)


def test_thumbnail_is_one_more_branch_of_the_same_decode(tmp_path: Path) -> None:
    rungs = plan_ladder(DEFAULT, source(1080))
    outputs = [FfmpegOutput(rung=r, directory=tmp_path / r.name) for r in rungs]
    still = Thumbnail(path=tmp_path / "thumb.jpg", interval_s=10)
    argv = transcode_command(["-i", "rtmp://x/live/s"], outputs, segment_s=2, thumbnail=still)
    text = " ".join(argv)
    assert argv.count("-i") == 1 and "split=4" in text  # decoded once, a fourth branch for the still
    assert "fps=1/10,scale=-2:180" in text and "-map [thumb]" in text
    assert argv[-1] == str(tmp_path / "thumb.jpg") and "-c:v mjpeg" in text
    assert "-update 1 -atomic_writing 1" in text  # one file rewritten whole: never served half-written


def test_a_passthrough_only_ladder_still_gets_a_thumbnail(tmp_path: Path) -> None:
    (rung,) = plan_ladder((), source(720))
    output = FfmpegOutput(rung=rung, directory=tmp_path / rung.name)
    argv = transcode_command(
        ["-i", "x"], [output], segment_s=2, thumbnail=Thumbnail(path=tmp_path / "t.jpg", interval_s=5)
    )
    text = " ".join(argv)
    assert "-c:v copy" in text and "[0:v:0]split=1[s0];[s0]fps=1/5" in text
    assert argv[-1] == str(tmp_path / "t.jpg")
