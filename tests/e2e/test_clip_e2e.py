"""A clip of the demo stream plays in Chromium (see ``conftest.py`` for the platform).

While the module's stream is live (FFmpeg pushing the test pattern with a tone, as ``esports demo``
does), a viewer clips its DVR window twice: from a segment boundary (the segments are copied) and
from between two keyframes (the head re-encoded). Each clip page plays its MP4 in a plain
``<video>``; the duration Chromium reads is within 0.5 s of the request, and playback runs past the
point where the re-encoded head joins the copied segments. The page carries ``og:video`` tags and
the channel page lists the clips.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import WebStack
from tests.integration.test_api_support import eventually
from tests.integration.test_ingest_support import wait_playable

pytestmark = pytest.mark.integration

WAIT_MS = 60_000
CLIP_MS = 6000


async def _ready_clip(web_stack: WebStack, start_ms: int) -> dict[str, Any]:
    stack = web_stack.stack
    viewer = await stack.register()
    body = {
        "stream_id": web_stack.stream_id,
        "start_ms": start_ms,
        "duration_ms": CLIP_MS,
        "title": "E2E clip",
    }
    accepted = await stack.command("POST", "/api/v1/clips", viewer, body, expect=202)

    async def done() -> dict[str, Any] | None:
        response = await stack.client.get(f"/api/v1/streams/{web_stack.stream_id}/clips")
        found = [c for c in response.json()["items"] if c["clip_id"] == accepted["clip_id"]]
        return found[0] if found and found[0]["status"] != "pending" else None

    clip = dict(await eventually(done, timeout_s=90))
    assert clip["status"] == "ready", clip
    return clip


@pytest.mark.parametrize(
    ("start_ms", "reencoded"), [(2000, False), (2500, True)], ids=["copied", "reencoded"]
)
async def test_a_clip_of_the_live_stream_plays_in_chromium(
    browser: Any, web_stack: WebStack, start_ms: int, reencoded: bool
) -> None:
    await wait_playable(web_stack.env, web_stack.stream_id, segments=10, timeout_s=90)
    clip = await _ready_clip(web_stack, start_ms)
    assert clip["reencoded"] is reencoded

    ctx = await browser.new_context(base_url=web_stack.base_url)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"/clips/{clip['clip_id']}")
    assert await page.get_attribute('meta[property="og:video"]', "content") == clip["url"]
    assert await page.get_attribute('meta[property="og:video:type"]', "content") == "video/mp4"
    await page.wait_for_function(
        "() => { const v = document.getElementById('clip-video'); return v.readyState && v.duration > 0 }",
        timeout=WAIT_MS,
    )
    duration_s = await page.evaluate("document.getElementById('clip-video').duration")
    assert abs(duration_s * 1000 - CLIP_MS) <= 500, duration_s
    await page.evaluate("document.getElementById('clip-video').play()")
    # Past the first keyframe of the copied part (the re-encoded head is under a segment long).
    await page.wait_for_function(
        "() => { const v = document.getElementById('clip-video'); return v.currentTime > 2.5 && !v.error; }",
        timeout=WAIT_MS,
    )
    decoded = await page.evaluate(
        "document.getElementById('clip-video').getVideoPlaybackQuality().totalVideoFrames"
    )
    assert decoded > 0
    channel = await page.goto(f"/channels/{web_stack.channel_id}")
    assert channel is not None and channel.status == 200
    assert await page.locator(f'#clips a[href="/clips/{clip["clip_id"]}"]').count() == 1
    assert not errors, errors
    print(f"\nclip {start_ms} ms +{CLIP_MS} ms: Chromium reads {duration_s:.3f} s (reencoded={reencoded})")
    await ctx.close()
