"""Glass-to-glass-ish latency of a live stream in a real browser: standard HLS against Low-Latency HLS.

For each mode an ingest node (nginx-rtmp, origin, cache tier and, for LL-HLS, the LL origin; no Kafka:
events are counted, keys always accepted) takes an RTMP push of the demo pattern, and headless Debian
Chromium plays the master playlist through the cache tier with the platform's hls.js
(``lowLatencyMode`` on). Once a second, after a warm-up, the page reports ``Date.now() -
hls.playingDate``: how far behind the wall clock the frame on screen is, where ``playingDate`` comes
from the segments' PROGRAM-DATE-TIME, stamped by the ingest FFmpeg (its clock starts at a whole second
when it opens its outputs, so a run's figures are off by up to a second, the same way in both modes of
that run only by chance; the pushing encoder and the RTMP hop are not counted). Also ``hls.latency``,
hls.js's distance from the newest media the playlist lists, which has no such offset. Reported:
medians, p10 and p90 over the window, and the stalls hls.js saw (a starved machine stalls).

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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _ingest_support import AnyKey, NullSink

from infra.settings import REPO_ROOT, Settings
from ingest_workers.demo import demo_command
from ingest_workers.node import open_node
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS  # the browser tests' Chromium, as they start it
from tests.integration.test_api_support import free_port

HLS_JS = REPO_ROOT / "web" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
PLAYER = """
async (master) => {
  const video = document.createElement("video");
  video.muted = true;
  document.body.appendChild(video);
  const hls = new Hls({ lowLatencyMode: true });
  window.stalls = 0;
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (data.details === "bufferStalledError") window.stalls += 1;
  });
  hls.loadSource(master);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  window.hls = hls;
}
"""
BEHIND = "() => window.hls && window.hls.playingDate ? Date.now() - window.hls.playingDate.getTime() : null"
EDGE = "() => window.hls ? window.hls.latency : null"  # hls.js: seconds behind the newest media listed


async def measure(settings: Settings, *, low_latency: bool, seconds: float, warmup: float, size: str) -> dict:
    """Seconds behind the wall clock, once a second, for one mode."""
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
        key = f"latency-{low_latency}"
        grant = await AnyKey().authorize(key)
        assert grant is not None
        async with open_node(scoped, NullSink(), AnyKey()) as node:
            push = await asyncio.create_subprocess_exec(
                *demo_command(f"rtmp://127.0.0.1:{ingest.rtmp_port}/live/{key}", size=size),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                master = node.url(f"/hls/{grant.stream_id}/master.m3u8")
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                    )
                    try:
                        return await _watch(browser, master, seconds=seconds, warmup=warmup)
                    finally:
                        await browser.close()
            finally:
                push.terminate()
                await push.wait()


async def _watch(browser: Any, master: str, *, seconds: float, warmup: float) -> dict:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        for _ in range(120):  # the master exists once every rendition has a segment
            if (await client.get(master)).status_code == 200:
                break
            await asyncio.sleep(0.5)
    page = await browser.new_page()
    port = free_port()
    async with _serving_page(port):  # a real page on another port: it plays the cache tier across origins
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.evaluate(PLAYER, master)
        return await _sample(page, seconds=seconds, warmup=warmup)


@contextlib.asynccontextmanager
async def _serving_page(port: int) -> AsyncIterator[None]:
    """An empty page with the platform's hls.js, on 127.0.0.1:port."""
    html = '<!doctype html><html><head><script src="/hls.min.js"></script></head><body></body></html>'

    async def page(_: Any) -> HTMLResponse:
        return HTMLResponse(html)

    async def script(_: Any) -> FileResponse:
        return FileResponse(HLS_JS, media_type="text/javascript")

    app = Starlette(routes=[Route("/", page), Route("/hls.min.js", script)])
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
    """Seconds behind the wall clock once a second after `warmup`: median, p10, p90, and the stalls."""
    await asyncio.sleep(warmup)
    behind: list[float] = []
    edge: list[float] = []
    for _ in range(int(seconds)):
        value, distance = await page.evaluate(BEHIND), await page.evaluate(EDGE)
        if value is not None:
            behind.append(value / 1000)
            edge.append(distance or 0.0)
        await asyncio.sleep(1)
    stalls = await page.evaluate("window.stalls")
    if len(behind) < 3:
        return {"samples": len(behind), "stalls": stalls}
    deciles = statistics.quantiles(behind, n=10)
    return {
        "samples": len(behind),
        "median_s": round(statistics.median(behind), 2),
        "p10_s": round(deciles[0], 2),
        "p90_s": round(deciles[-1], 2),
        "behind_live_edge_median_s": round(statistics.median(edge), 2),
        "stalls": stalls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per mode")
    parser.add_argument("--warmup", type=float, default=15.0, help="playback before measuring")
    parser.add_argument("--size", default="1280x720", help="the pushed picture")
    args = parser.parse_args()
    settings = Settings()
    print(
        f"segment {settings.ingest.segment_s} s, part {settings.ingest.part_s} s, "
        f"ladder {settings.ingest.ladder}, {args.size} push, "
        f"{args.seconds:.0f} s per mode, {os.cpu_count()} cores"
    )
    for low_latency in (False, True):
        result = asyncio.run(
            measure(
                settings, low_latency=low_latency, seconds=args.seconds, warmup=args.warmup, size=args.size
            )
        )
        print(f"{'LL-HLS  ' if low_latency else 'standard'}: {result}")


if __name__ == "__main__":
    main()
