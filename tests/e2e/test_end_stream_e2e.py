"""Ending a stream from the dashboard, in a real browser against the real platform (see ``conftest.py``).

The streamer presses *End stream* while FFmpeg pushes: the lifecycle agent ends the stream, the ingest
node (which reads the command topics) drops the publisher, so the pushing FFmpeg exits long before its
own end, and the stream page, opened by a viewer before the end, becomes the replay (the VOD) on its
next load. The module's stream is its own (``web_stack``): ending it leaves the other modules' streams live.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.e2e.conftest import PUSH_SECONDS, WebStack
from tests.integration.test_api_support import PASSWORD, stream_state

pytestmark = pytest.mark.integration

WAIT_MS = 60_000
DROPPED_WITHIN_S = 30  # the push would run PUSH_SECONDS: an exit within this is the node's drop


async def test_ending_the_stream_on_the_dashboard_drops_the_push_and_the_page_shows_the_vod(
    browser: Any, web_stack: WebStack
) -> None:
    stack, stream_id = web_stack.stack, web_stack.stream_id
    assert web_stack.pusher.process.poll() is None, "the push is running before the end"

    ctx = await browser.new_context(base_url=web_stack.base_url)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))  # "End the stream now?"
    await page.goto("/login")
    await page.fill("#username", web_stack.owner.username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(web_stack.url("/"), timeout=WAIT_MS)
    await page.goto("/dashboard")
    end = page.locator("#end-stream")
    await end.wait_for(state="visible", timeout=WAIT_MS)  # shown only while live

    await end.click()
    clicked = time.monotonic()
    code = await web_stack.pusher.wait(timeout_s=DROPPED_WITHIN_S)
    dropped_after_s = time.monotonic() - clicked
    assert code != 0, f"the push ended on its own (exit {code}), it was not dropped"
    assert dropped_after_s < PUSH_SECONDS
    await stream_state(stack, stream_id, "ended", timeout_s=60)
    assert (await page.text_content("#end-error") or "") == ""

    viewer = await browser.new_context(base_url=web_stack.base_url)
    watch = await viewer.new_page()
    await watch.goto(f"/live/{stream_id}")
    assert await watch.get_attribute("#content", "data-mode") == "vod"
    await watch.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.duration > 2 && v.readyState >= 2; }",
        timeout=WAIT_MS,
    )
    assert not errors, errors
    print(f"\npush dropped {dropped_after_s:.2f} s after the click on End stream")
    await viewer.close()
    await ctx.close()
