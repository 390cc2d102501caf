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
from tests.integration.test_api_support import PASSWORD, eventually
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


async def test_the_clip_button_cuts_the_thirty_seconds_before_the_playhead(
    browser: Any, web_stack: WebStack
) -> None:
    """A signed-in viewer of the live stream presses *Clip*: the page asks for the 30 s before the
    playhead (fewer this early in the stream), links the clip once it is cut, and the clip is as long
    as asked."""
    await wait_playable(web_stack.env, web_stack.stream_id, segments=10, timeout_s=90)
    viewer = await web_stack.stack.register()
    ctx = await browser.new_context(base_url=web_stack.base_url)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto("/login")
    await page.fill("#username", viewer.username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(web_stack.url("/"), timeout=WAIT_MS)
    await page.goto(f"/live/{web_stack.stream_id}")
    await page.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.currentTime > 8 && !v.paused; }",
        timeout=WAIT_MS,
    )
    assert await page.is_visible("#clip")
    await page.click("#clip")
    await page.wait_for_selector("#clip-link", timeout=90_000)
    clip_id = (await page.get_attribute("#clip-link", "href") or "").removeprefix("/clips/")
    response = await web_stack.stack.client.get(f"/api/v1/streams/{web_stack.stream_id}/clips")
    clip = next(c for c in response.json()["items"] if c["clip_id"] == clip_id)
    assert clip["status"] == "ready" and clip["requested_by"] == viewer.user_id
    assert 5000 <= clip["requested_ms"] <= 30000, clip
    assert abs(clip["duration_ms"] - clip["requested_ms"]) <= 500, clip
    assert not errors, errors
    await ctx.close()
