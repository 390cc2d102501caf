"""Glass-to-glass latency of a live stream in a real browser: standard HLS against Low-Latency HLS.

For each mode an ingest node (nginx-rtmp, origin, cache tier and, for LL-HLS, the LL origin; no Kafka:
events are counted, keys always accepted) takes an RTMP push, and headless Debian Chromium plays the
master playlist through the cache tier with the platform's own player (``web/static/js/player.js``,
hls.js in low-latency or standard mode).

The clock is in the picture. The pushing FFmpeg stamps every frame, as it is made, with the wall
clock in centiseconds written as 24 black-or-white blocks along its top edge (``setpts=RTCTIME``,
then ``geq`` on that strip); the blocks survive scaling to every rung and the encoders. In the page,
``requestVideoFrameCallback`` gives the moment each frame is shown, the frame is drawn to a canvas
and its blocks read back: shown minus stamped is the whole path (encode, RTMP, transcode, packaging,
cache tier, player buffer, decode), what a viewer sees against what the camera saw, read about
twice a second after a warm-up. Also ``hls.latency``, hls.js's distance from the newest media the
playlist lists. Reported: medians, p10 and p90 over the window, frames whose blocks did not read
(should be 0), and the stalls hls.js saw (a starved machine stalls).

Three runs: standard HLS with the standard player; LL-HLS with the low-latency player; and LL-HLS
with the standard player (a viewer who turned low latency off on a poor network).

    python bench/latency.py [--seconds 60] [--warmup 15] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _ingest_support import AnyKey, NullSink

from infra.settings import REPO_ROOT, Settings
from ingest_workers.node import open_node
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS  # the browser tests' Chromium, as they start it
from tests.integration.test_api_support import free_port
from web.pages import HLS_JS_DIST

STATIC = REPO_ROOT / "web" / "static"
BITS = 24  # centiseconds: 2^24 cs = 46 h from the run's base
PAGE = """<!doctype html><html><body><video id="video" muted playsinline></video>
<script type="module">
import { attachPlayer } from "/static/js/player.js";
const video = document.getElementById("video");
window.play = (src, lowLatency) => attachPlayer(video, src, { live: true, lowLatency });
</script></body></html>"""
# Reads the blocks of each shown frame (at most twice a second) into window.samples: milliseconds
# from stamp to screen; window.unread counts frames whose blocks made no plausible time.
SAMPLER = """
([base, bits, block, width]) => {
  const video = document.getElementById("video");
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  window.samples = [];
  window.unread = 0;
  let last = 0;
  const onFrame = (now, meta) => {
    if (now - last >= 500 && video.videoWidth) {
      last = now;
      const scale = video.videoWidth / width;
      canvas.width = video.videoWidth;
      canvas.height = Math.ceil(block * scale);
      ctx.drawImage(video, 0, 0);
      const row = ctx.getImageData(0, Math.floor((block / 2) * scale), canvas.width, 1).data;
      let cs = 0;
      for (let i = 0; i < bits; i++) {
        const x = Math.floor((i * block + block / 2) * scale);
        if (row[4 * x] > 128) cs += 2 ** i;
      }
      const behind = performance.timeOrigin + meta.expectedDisplayTime - (base + cs * 10);
      if (behind > 0 && behind < 60000) window.samples.push(behind);
      else window.unread += 1;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}
"""
EDGE = "() => document.getElementById('video').hls?.latency ?? null"  # hls.js: behind the newest media listed
STALLS = """() => {
  const hls = document.getElementById("video").hls;
  if (hls && !window.counting) {
    window.counting = true;
    window.stalls = 0;
    hls.on("hlsError", (_e, data) => { if (data.details === "bufferStalledError") window.stalls += 1; });
  }
  return window.stalls ?? 0;
}"""


def clock_geometry(size: str) -> tuple[int, int]:
    """The pushed picture's width and the side of one clock block (a 32nd of it), from ``WxH``."""
    width = int(size.split("x")[0])
    return width, width // 32


def clock_push_command(url: str, *, base_us: int, size: str, fps: int = 30) -> list[str]:
    """FFmpeg pushing testsrc2 with the capture time in its top edge (see the module's docstring) and
    a tone, as OBS would (2 s GOP, zerolatency x264)."""
    block = clock_geometry(size)[1]
    stamp = (
        f"[0:v]format=yuv420p,settb=AVTB,setpts='(RTCTIME-{base_us})/(TB*1000000)',split[main][edge];"
        f"[edge]crop={BITS * block}:{block}:0:0,"
        f"geq=lum='255*mod(floor(T*100/pow(2,floor(X/{block}))),2)':cb=128:cr=128[bits];"
        f"[main][bits]overlay=0:0,setpts='N/({fps}*TB)'[v]"
    )
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin", "-re",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}", "-f", "lavfi", "-i", "sine=frequency=440",
        "-filter_complex", stamp, "-map", "[v]", "-map", "1:a",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-b:v", "2500k",
        "-maxrate", "2500k", "-bufsize", "5000k", "-g", str(2 * fps), "-keyint_min", str(2 * fps),
        "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-r", str(fps), "-c:a", "aac", "-b:a", "128k",
        "-ar", "48000", "-f", "flv", url,
    ]  # fmt: skip


MODES = (  # (label, LL-HLS at the ingest, the player in low-latency mode)
    ("standard", False, False),
    ("LL-HLS", True, True),
    ("LL-HLS, standard player", True, False),
)


async def measure(
    settings: Settings, *, low_latency: bool, player_ll: bool, seconds: float, warmup: float, size: str
) -> dict:
    """Seconds from capture to screen, about twice a second, for one mode."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        names = (
            "rtmp_port",
            "srt_port",
            "origin_port",
            "cdn_port",
            "hook_port",
            "whip_port",
            "ll_origin_port",
        )
        ingest = settings.ingest.model_copy(
            update={
                **{name: free_port() for name in names},
                "hls_dir": Path(tmp) / "hls",
                "end_grace_s": 1.0,
                "low_latency": low_latency,
            }
        )
        stack = settings.stack.model_copy(update={"run_dir": Path(tmp) / "run"})
        scoped = settings.model_copy(update={"ingest": ingest, "stack": stack})
        key = f"latency-{low_latency}-{player_ll}"
        grant = await AnyKey().authorize(key)
        assert grant is not None
        base_us = int(time.time()) * 1_000_000  # the stamps count centiseconds from here
        async with open_node(scoped, NullSink(), AnyKey()) as node:
            url = f"rtmp://127.0.0.1:{ingest.rtmp_port}/live/{key}"
            push = await asyncio.create_subprocess_exec(
                *clock_push_command(url, base_us=base_us, size=size),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                master = node.url(f"/hls/{grant.stream_id}/master.m3u8")
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                    )
                    try:
                        width, block = clock_geometry(size)
                        clock = (base_us // 1000, BITS, block, width)
                        return await _watch(
                            browser, master, player_ll, clock, push, seconds=seconds, warmup=warmup
                        )
                    finally:
                        await browser.close()
            finally:
                if push.returncode is None:
                    push.terminate()
                await push.wait()


async def _watch(
    browser: Any,
    master: str,
    player_ll: bool,
    clock: tuple[int, int, int, int],
    push: asyncio.subprocess.Process,
    *,
    seconds: float,
    warmup: float,
) -> dict:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        for _ in range(120):  # the master exists once every rendition has a segment
            if (await client.get(master)).status_code == 200:
                break
            if push.returncode is not None:
                error = (await push.stderr.read()).decode(errors="replace") if push.stderr else ""
                raise RuntimeError(f"the pushing FFmpeg exited {push.returncode}: {error[-500:]}")
            await asyncio.sleep(0.5)
    page = await browser.new_page()
    port = free_port()
    async with _serving_page(port):  # a real page on another port: it plays the cache tier across origins
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.evaluate("([src, ll]) => window.play(src, ll)", [master, player_ll])
        await page.evaluate(SAMPLER, list(clock))
        return await _sample(page, seconds=seconds, warmup=warmup)


@contextlib.asynccontextmanager
async def _serving_page(port: int) -> AsyncIterator[None]:
    """A page with the platform's player (web/static and its hls.js), on 127.0.0.1:port."""

    async def page(_: Any) -> HTMLResponse:
        return HTMLResponse(PAGE)

    app = Starlette(
        routes=[
            Route("/", page),
            Mount("/static/vendor/hls", StaticFiles(directory=HLS_JS_DIST)),
            Mount("/static", StaticFiles(directory=STATIC)),
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):  # uvicorn says it started with a flag, not an event
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def _sample(page: Any, *, seconds: float, warmup: float) -> dict:
    """Capture to screen over `seconds` after `warmup`: median, p10, p90; unread frames; stalls."""
    await page.evaluate(STALLS)
    await asyncio.sleep(warmup)
    await page.evaluate("() => { window.samples = []; window.unread = 0; }")
    edge: list[float] = []
    for _ in range(int(seconds)):
        if (distance := await page.evaluate(EDGE)) is not None:
            edge.append(distance)
        await asyncio.sleep(1)
    behind = [ms / 1000 for ms in await page.evaluate("() => window.samples")]
    unread, stalls = await page.evaluate("() => window.unread"), await page.evaluate(STALLS)
    if len(behind) < 3:
        return {"samples": len(behind), "unread": unread, "stalls": stalls}
    deciles = statistics.quantiles(behind, n=10)
    return {
        "samples": len(behind),
        "median_s": round(statistics.median(behind), 2),
        "p10_s": round(deciles[0], 2),
        "p90_s": round(deciles[-1], 2),
        "behind_live_edge_median_s": round(statistics.median(edge), 2) if edge else None,
        "unread": unread,
        "stalls": stalls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per mode")
    parser.add_argument("--warmup", type=float, default=15.0, help="playback before measuring")
    parser.add_argument("--size", default="1280x720", help="the pushed picture (at least 768 wide)")
    args = parser.parse_args()
    if clock_geometry(args.size)[0] < 768:
        parser.error("--size must be at least 768 pixels wide (24 clock blocks of width/32)")
    settings = Settings()
    print(
        f"segment {settings.ingest.segment_s} s, part {settings.ingest.part_s} s, "
        f"ladder {settings.ingest.ladder}, {args.size} push, "
        f"{args.seconds:.0f} s per mode, {os.cpu_count()} cores; seconds from capture to screen"
    )
    for label, low_latency, player_ll in MODES:
        result = asyncio.run(
            measure(
                settings,
                low_latency=low_latency,
                player_ll=player_ll,
                seconds=args.seconds,
                warmup=args.warmup,
                size=args.size,
            )
        )
        print(f"{label:<24}: {result}", flush=True)


if __name__ == "__main__":
    main()
