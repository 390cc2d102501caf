"""Clip creation time for a 30 s clip, copy path vs re-encoded head, beside a bare ``ffmpeg -c copy``.

A 720p30 H.264/AAC test pattern (the demo's, a keyframe every 2 s) is segmented once into fMP4 HLS
(2 s segments), laid out like an ingest node's stream folder (``master.m3u8`` + a media playlist
with ``#EXT-X-MAP``). Then, per run, a 30 s clip is cut by :mod:`ingest_workers.clips` exactly as the
node cuts it (read the playlists, plan, FFmpeg, FFprobe the result):

- **copy**: the start on a segment boundary, the segments stream-copied;
- **re-encode head**: the start 1 s into a segment, the head re-encoded, the rest copied, joined;
- **bare ffmpeg -c copy** (the baseline): one FFmpeg reading the same init + segments through the
  ``concat:`` protocol and remuxing 30 s to a faststart MP4, no planning and no probe.

Medians of wall time and of the CPU time of the FFmpeg/FFprobe children (``RUSAGE_CHILDREN``), which
matters more than wall time on a shared machine.

    python bench/clips.py [--runs 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events.streams import ClipCreated, ClipRequested
from ingest_workers.clips import ClipCutter, parse_timeline, plan_clip, top_rendition

SOURCE_S = 44
CLIP_MS = 30_000


def make_stream(root: Path) -> Path:
    """A stream folder as an ingest node writes one: master, media playlist, init and segments."""
    stream = root / "bench-stream"
    (stream / "run-1" / "source").mkdir(parents=True)
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(SOURCE_S), "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-keyint_min", "60",
            "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-b:v", "2800k", "-c:a", "aac", "-b:a", "128k",
            "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
            "-hls_fmp4_init_filename", "init.mp4",
            "-hls_segment_filename", str(stream / "run-1" / "source" / "seg_%05d.m4s"),
            str(stream / "run-1" / "source" / "index.m3u8"),
        ],
        check=True,
    )  # fmt: skip
    private = (stream / "run-1" / "source" / "index.m3u8").read_text()
    public = [
        f"run-1/source/{line}" if line.endswith((".m4s",)) else line.replace('URI="', 'URI="run-1/source/')
        for line in private.splitlines()
    ]
    (stream / "source.m3u8").write_text("\n".join(public) + "\n")
    (stream / "master.m3u8").write_text(
        '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2955594,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"\n'
        "source.m3u8\n"
    )
    return stream


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def clip_once(cutter: ClipCutter, stream_id: str, start_ms: int, n: int) -> tuple[float, float, bool]:
    request = ClipRequested(
        clip_id=f"bench-{n}-{start_ms}",
        stream_id=stream_id,
        channel_id="c",
        requested_by="u",
        start_ms=start_ms,
        duration_ms=CLIP_MS,
    )
    cpu, started = _children_cpu(), time.perf_counter()
    event = await cutter.handle(request)
    wall, used = time.perf_counter() - started, _children_cpu() - cpu
    assert isinstance(event, ClipCreated), event
    assert abs(event.duration_ms - CLIP_MS) <= 500, event
    return wall, used, event.reencoded


def bare_copy(stream: Path, out: Path, start_ms: int) -> tuple[float, float]:
    segments, _ = parse_timeline(
        (stream / str(top_rendition((stream / "master.m3u8").read_text()))).read_text()
    )
    plan = plan_clip(segments, start_ms, CLIP_MS)
    names = [str(stream / plan.init), *(str(stream / s.uri) for s in plan.segments)]
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", "concat:" + "|".join(names),
         "-t", str(CLIP_MS / 1000), "-c", "copy", "-movflags", "+faststart", str(out)],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started, _children_cpu() - cpu


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-clips-") as tmp:
        root = Path(tmp)
        stream = make_stream(root)

        async def publish(event: object) -> None:
            return None

        cutter = ClipCutter(
            hls_dir=root, public_hls_url="http://127.0.0.1/hls", node="bench", publish=publish
        )
        results: dict[str, list[tuple[float, float]]] = {
            "copy": [],
            "re-encode head": [],
            "bare ffmpeg -c copy": [],
        }
        for n in range(runs):
            wall, cpu, reencoded = await clip_once(cutter, stream.name, 4000, n)
            assert not reencoded
            results["copy"].append((wall, cpu))
            wall, cpu, reencoded = await clip_once(cutter, stream.name, 5000, n)
            assert reencoded
            results["re-encode head"].append((wall, cpu))
            results["bare ffmpeg -c copy"].append(bare_copy(stream, root / f"bare-{n}.mp4", 4000))
    print(f"30 s clip of a 720p30 2.8 Mb/s stream, 2 s segments, {runs} run(s), medians:")
    print(f"{'path':<22} {'wall ms':>9} {'ffmpeg CPU ms':>14}")
    for name, samples in results.items():
        wall = statistics.median(s[0] for s in samples) * 1000
        cpu = statistics.median(s[1] for s in samples) * 1000
        print(f"{name:<22} {wall:>9.0f} {cpu:>14.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="1 run (a smoke check)")
    args = parser.parse_args()
    asyncio.run(main(1 if args.quick else args.runs))
