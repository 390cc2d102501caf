"""Ingest worker throughput and latency with real FFmpeg and nginx, against bare FFmpeg in the same run.

Measures, as medians over several runs:
- encoder speed (x realtime) of the default ladder for a 1080p60 H.264 source and for a 720p30 one,
  through the supervised worker (StreamSession: probe, plan, FFmpeg, playlist publishing) and with
  bare FFmpeg running the same command (the baseline);
- how many 720p30 ladders run side by side at >= 1.0x (bare FFmpeg, all at once);
- listing latency: from a frame entering the worker (the segment's PROGRAM-DATE-TIME, stamped when
  its first frame was read) to the segment being listed in the public playlist, for an RTMP push
  through nginx, against bare FFmpeg's own playlist of the same ladder pulled from the same nginx.

    python bench/ingest.py [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _ingest_support import AnyKey, NullSink

from events.ingest import IngestProtocol
from infra.settings import Settings
from ingest_workers.demo import demo_command
from ingest_workers.ladder import FfmpegOutput, SourceInfo, parse_ladder, plan_ladder, transcode_command
from ingest_workers.node import open_node
from ingest_workers.playlists import parse_media_playlist
from ingest_workers.probe import probe_source
from ingest_workers.session import Source, StreamSession
from tests.integration.test_api_support import free_port


def make_clip(path: Path, size: str, fps: int, seconds: float) -> None:
    """An H.264 clip like OBS sends (2 s GOP), made once per run (not timed)."""
    argv = demo_command(str(path), size=size, fps=fps, seconds=seconds)
    argv.remove("-re")
    argv[argv.index("-f", argv.index("-vf")) + 1] = "mp4"
    argv[-1:] = ["-y", str(path)]
    subprocess.run(argv, check=True, capture_output=True)


def _outputs(settings: Settings, clip: Path, root: Path) -> list[FfmpegOutput]:
    info = asyncio.run(probe_source([str(clip)]))
    rungs = plan_ladder(parse_ladder(settings.ingest.ladder), info, passthrough=settings.ingest.passthrough)
    return [FfmpegOutput(rung=r, directory=root / r.name) for r in rungs]


def bare_speed(settings: Settings, clip: Path, seconds: float, copies: int = 1) -> list[float]:
    """x realtime of `copies` bare FFmpeg ladders run at once (as fast as they can)."""
    processes = []
    started = time.monotonic()
    for _ in range(copies):
        root = Path(tempfile.mkdtemp(prefix="bench-bare-"))
        outputs = _outputs(settings, clip, root)
        for o in outputs:
            o.directory.mkdir(parents=True)
        argv = transcode_command(
            ["-i", str(clip)],
            outputs,
            segment_s=settings.ingest.segment_s,
            preset=settings.ingest.x264_preset,
            tune=settings.ingest.x264_tune,
        )
        processes.append(
            (subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), started)
        )
    speeds = []
    for process, t0 in processes:
        process.wait()
        speeds.append(seconds / (time.monotonic() - t0))
    return speeds


async def supervised_speed(settings: Settings, clip: Path, seconds: float) -> float:
    """x realtime through StreamSession (probe, plan, FFmpeg, playlists, events) on the same clip."""
    ingest = settings.ingest.model_copy(update={"hls_dir": Path(tempfile.mkdtemp(prefix="bench-sup-"))})
    source = Source(
        protocol=IngestProtocol.RTMP, input_args=("-i", str(clip)), probe_args=(str(clip),), live=False
    )
    session = StreamSession(ingest, NullSink(), stream_id="bench", source=source, node="bench")
    started = time.monotonic()
    await session.run()
    return seconds / (time.monotonic() - started)


async def listing_latency(settings: Settings, seconds: float) -> tuple[list[float], list[float]]:
    """(worker, bare) seconds from a segment's PROGRAM-DATE-TIME to its listing, for a 720p30 RTMP push.

    Worker: push -> nginx-rtmp -> hook -> session (probe, FFmpeg, public playlist). Bare: the same
    push straight into an FFmpeg RTMP listener running the same ladder, watching its own playlist.
    """
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        ports = {
            name: free_port() for name in ("rtmp_port", "srt_port", "origin_port", "cdn_port", "hook_port")
        }
        ingest = settings.ingest.model_copy(
            update={**ports, "hls_dir": Path(tmp) / "hls", "end_grace_s": 1.0}
        )
        stack = settings.stack.model_copy(update={"run_dir": Path(tmp) / "run"})
        scoped = settings.model_copy(update={"ingest": ingest, "stack": stack})
        grant = await AnyKey().authorize("bench")
        assert grant is not None
        stream_id = grant.stream_id
        async with open_node(scoped, NullSink(), AnyKey()) as node:
            push = _push(f"rtmp://127.0.0.1:{ingest.rtmp_port}/live/bench", seconds)
            worker = await _watch(ingest.hls_dir / stream_id, "480p30.m3u8", seconds + 5)
            push.wait()
            await node.control.wait_ended(stream_id)

        source = SourceInfo(codec="h264", width=1280, height=720, fps=30.0, has_audio=True)
        rungs = plan_ladder(parse_ladder(ingest.ladder), source, passthrough=ingest.passthrough)
        outputs = [FfmpegOutput(rung=r, directory=Path(tmp) / "bare" / r.name) for r in rungs]
        for output in outputs:
            output.directory.mkdir(parents=True)
        url = f"rtmp://127.0.0.1:{free_port()}/live/bench"
        argv = transcode_command(
            ["-listen", "1", "-i", url],
            outputs,
            segment_s=ingest.segment_s,
            preset=ingest.x264_preset,
            tune=ingest.x264_tune,
        )
        bare = _spawn(argv)
        await asyncio.sleep(0.5)
        push = _push(url, seconds)
        baseline = await _watch(Path(tmp) / "bare" / "480p30", "index.m3u8", seconds + 3)
        push.wait()
        bare.wait()
        return worker, baseline


def _push(url: str, seconds: float) -> subprocess.Popen[bytes]:
    return _spawn(demo_command(url, seconds=seconds))


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _watch(folder: Path, name: str, timeout_s: float) -> list[float]:
    seen: set[str] = set()
    latencies: list[float] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, segments = parse_media_playlist((folder / name).read_text())
        except FileNotFoundError:
            segments = []
        now = datetime.now(UTC)
        for segment in segments:
            if segment.uri not in seen and segment.program_date_time is not None:
                seen.add(segment.uri)
                latencies.append((now - segment.program_date_time).total_seconds())
        await asyncio.sleep(0.05)
    return latencies[1:]  # the first segment also waited for the probe and the first keyframe


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(args: argparse.Namespace) -> None:
    settings = Settings()
    seconds = 4.0 if args.quick else 10.0
    runs = 1 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="bench-clips-") as tmp:
        clips = {"1080p60": Path(tmp) / "1080p60.mp4", "720p30": Path(tmp) / "720p30.mp4"}
        make_clip(clips["1080p60"], "1920x1080", 60, seconds)
        make_clip(clips["720p30"], "1280x720", 30, seconds)
        print(
            f"ladder {settings.ingest.ladder} preset {settings.ingest.x264_preset} "
            f"tune {settings.ingest.x264_tune}, {seconds:.0f} s clips, {runs} run(s), {os.cpu_count()} cores"
        )
        for label, clip in clips.items():
            sup = [asyncio.run(supervised_speed(settings, clip, seconds)) for _ in range(runs)]
            bare = [bare_speed(settings, clip, seconds)[0] for _ in range(runs)]
            print(f"encoder speed {label:>8}: worker {median(sup):.2f}x   bare ffmpeg {median(bare):.2f}x")
        ladders = 0
        for copies in range(1, 9):
            speeds = bare_speed(settings, clips["720p30"], seconds, copies)
            print(f"  {copies} x 720p30 ladders at once: slowest {min(speeds):.2f}x")
            if min(speeds) < 1.0:
                break
            ladders = copies
        print(f"720p30 ladders sustained at >= 1.0x: {ladders}")
    supervised, bare = asyncio.run(listing_latency(settings, 12.0 if args.quick else 30.0))
    print(
        f"listing latency (PDT -> listed, 720p30 push, {settings.ingest.segment_s:g} s segments): "
        f"worker median {median(supervised):.2f} s (n={len(supervised)})   "
        f"bare ffmpeg {median(bare):.2f} s (n={len(bare)})"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--quick", action="store_true", help="one run of 4 s clips (a smoke check)")
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
