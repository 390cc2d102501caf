"""The viewer web UI in a real browser against the real platform (see ``conftest.py``).

1. The page HTML, before any JavaScript runs, has the title, OpenGraph tags and JSON-LD.
2. The stream page of a live stream plays (``currentTime`` advances) and the quality switch works.
3. Two browser contexts in one chat: a message typed in one appears in the other; the moderator
   deletes it and it disappears in both; a poll opened with ``/poll`` in chat is voted in one and the
   tally updates in both.
4. Home shows the live stream with its viewer count (counted from the browsers' heartbeats).
5. Screenshots of the main pages at phone (390 px) and desktop (1280 px) width (and the stream page
   in dark mode), saved under ``.run/artifacts/screenshots/``.
6. Last (it ends the stream): the ended stream's page is a VOD whose chat replays with the playhead;
   then the channel goes live again and the viewer who followed it in (3) finds the notification in
   the inbox, linking to the new stream.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.chat import ChatMessageAccepted
from infra.settings import Settings
from tests.e2e.conftest import WebStack
from tests.integration.test_api_support import PASSWORD, stream_state

pytestmark = pytest.mark.integration

WAIT_MS = 60_000
# Form controls without a label, images without alt, buttons and links without a name, a missing
# <main> or <h1>: what a screen reader or keyboard user would stumble on first.
UNLABELLED = """() => {
  const named = (e) => (e.getAttribute('aria-label') || e.textContent || '').trim().length > 0;
  const problems = [];
  for (const c of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const label = c.id && document.querySelector(`label[for="${c.id}"]`);
    const labelled = label || c.getAttribute('aria-label') || c.closest('label');
    if (!labelled) problems.push(`unlabelled ${c.id || c.name}`);
  }
  for (const i of document.querySelectorAll('img:not([alt])')) problems.push(`img without alt ${i.src}`);
  for (const b of document.querySelectorAll('button, a[href]')) {
    if (!named(b)) problems.push(`unnamed ${b.outerHTML}`);
  }
  if (!document.querySelector('main')) problems.push('no main');
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  return problems;
}"""
SCREENSHOTS = Settings().stack.run_dir / "artifacts" / "screenshots"


async def _page(browser: Any, stack: WebStack, path: str, **context: Any) -> Any:
    ctx = await browser.new_context(base_url=stack.base_url, **context)
    page = await ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems  # CSP violations and script errors land here, for the assertions' messages
    await page.goto(path)
    return page


async def _sign_in(browser: Any, stack: WebStack, username: str) -> Any:
    page = await _page(browser, stack, "/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(stack.url("/"), timeout=WAIT_MS)
    return page


async def _register(browser: Any, stack: WebStack) -> Any:
    page = await _page(browser, stack, "/register")
    username = f"v{uuid.uuid4().hex[:10]}"
    page.username = username
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#register-form button[type=submit]")
    await page.wait_for_url(stack.url("/"), timeout=WAIT_MS)
    return page


async def _watch(page: Any, stack: WebStack) -> None:
    """Open the stream page and wait until the chat is usable (signed in on the edge)."""
    await page.goto(f"/live/{stack.stream_id}")
    await page.wait_for_selector("#chat-input:enabled", timeout=WAIT_MS)


async def test_page_html_before_javascript_has_title_opengraph_and_json_ld(web_stack: WebStack) -> None:
    async with httpx.AsyncClient(base_url=web_stack.base_url, trust_env=False, timeout=30) as client:
        stream = await client.get(f"/live/{web_stack.stream_id}")
        home = await client.get("/")
    page = stream.text
    assert stream.status_code == 200 and "content-security-policy" in stream.headers
    assert re.search(r"<title>[^<]+ · E2E Channel · eSports live</title>", page)
    og = dict(re.findall(r'<meta property="(og:[a-z_]+)" content="([^"]*)">', page))
    assert og["og:url"] == web_stack.url(f"/live/{web_stack.stream_id}") and og["og:title"]
    assert html.unescape(og["og:image"]).endswith(f"/hls/{web_stack.stream_id}/thumb.jpg")
    (block,) = re.findall(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    ld = json.loads(block)
    assert ld["@type"] == "VideoObject" and ld["publication"]["isLiveBroadcast"] is True
    assert f'data-stream-id="{web_stack.stream_id}"' in home.text  # live now, server-rendered


async def test_stream_page_plays_and_switches_quality(browser: Any, web_stack: WebStack) -> None:
    page = await _page(browser, web_stack, f"/live/{web_stack.stream_id}")
    try:
        await page.wait_for_function(
            "() => document.getElementById('video').currentTime > 1", timeout=WAIT_MS
        )
    except Exception:
        raise AssertionError(f"the video did not play; page errors: {page.problems}") from None
    first = await page.evaluate("document.getElementById('video').currentTime")
    await page.wait_for_function(
        f"() => document.getElementById('video').currentTime > {first + 1}", timeout=WAIT_MS
    )

    await page.wait_for_selector("#quality:enabled", timeout=WAIT_MS)
    options = await page.eval_on_selector_all(
        "#quality option", "os => os.map(o => [o.value, o.textContent])"
    )
    assert options[0] == ["-1", options[0][1]] and options[0][1].startswith("Auto")
    levels = [value for value, _ in options[1:]]
    assert len(levels) >= 2, options  # source passthrough + the rungs under it
    for level in (levels[-1], levels[0]):  # lowest, then highest
        await page.select_option("#quality", level)
        await page.wait_for_function(
            f"() => document.getElementById('video').dataset.level === '{level}'", timeout=WAIT_MS
        )
        now = await page.evaluate("document.getElementById('video').currentTime")
        await page.wait_for_function(
            f"() => document.getElementById('video').currentTime > {now + 0.5}", timeout=WAIT_MS
        )
    assert await page.evaluate("document.getElementById('video').videoHeight") > 0
    await page.click("#live-edge")
    assert not [p for p in page.problems if "Content Security Policy" in p], page.problems
    await page.context.close()


async def test_two_viewers_chat_moderation_and_poll(browser: Any, web_stack: WebStack) -> None:
    moderator = await _sign_in(browser, web_stack, web_stack.owner.username)
    viewer = await _register(browser, web_stack)
    await _watch(moderator, web_stack)
    await _watch(viewer, web_stack)

    # A message typed by the viewer reaches the moderator (and the viewer), rendered as text.
    text = f"gg <b>wp</b> {uuid.uuid4().hex[:6]}"
    await viewer.fill("#chat-input", text)
    await viewer.press("#chat-input", "Enter")
    line = "#messages li:has(.text:text-is('{}'))".format(text.replace("'", "\\'"))
    for page in (moderator, viewer):
        await page.wait_for_selector(line, timeout=WAIT_MS)
    shown = await moderator.inner_html(f"{line} .text")
    assert "&lt;b&gt;wp&lt;/b&gt;" in shown and "<b>" not in shown  # chat text is data

    # The moderator deletes it: gone in both.
    assert await viewer.locator(f"{line} .mod-delete").count() == 0  # viewers get no tools
    await moderator.click(f"{line} .mod-delete")
    for page in (moderator, viewer):
        await page.wait_for_selector(line, state="detached", timeout=WAIT_MS)

    # A poll typed in chat by the moderator; the viewer votes; both tallies move.
    await moderator.fill("#chat-input", "/poll Best map? | Inferno | Mirage 2m")
    await moderator.press("#chat-input", "Enter")
    for page in (moderator, viewer):
        await page.wait_for_selector("#poll:not([hidden]) #poll-options button >> nth=1", timeout=WAIT_MS)
        await page.wait_for_function(
            "() => document.getElementById('poll-question').textContent.startsWith('Best map?')",
            timeout=WAIT_MS,
        )
    await viewer.click("#poll-options li:nth-child(2) button")
    for page in (moderator, viewer):
        await page.wait_for_function(
            "() => document.getElementById('poll').dataset.total === '1' && "
            "document.querySelector('#poll-options li:nth-child(2) button').dataset.count === '1'",
            timeout=WAIT_MS,
        )
    assert await viewer.get_attribute("#poll-options li:nth-child(2) button", "aria-pressed") == "true"

    # Follow the channel from the stream page (a command, then the read model says so).
    await viewer.click("#follow")
    await viewer.wait_for_selector("#follow[aria-pressed='true']", timeout=WAIT_MS)
    assert (await viewer.text_content("#follow")) == "Following"
    web_stack.followers.append(viewer.username)

    # A time-out from the message's tools: the author's lines leave every view.
    await viewer.fill("#chat-input", "one more thing")
    await viewer.press("#chat-input", "Enter")
    again = "#messages li:has(.text:text-is('one more thing'))"
    await moderator.wait_for_selector(again, timeout=WAIT_MS)
    await moderator.click(f"{again} .mod-timeout")
    for page in (moderator, viewer):
        await page.wait_for_selector(again, state="detached", timeout=WAIT_MS)
    for page in (moderator, viewer):
        await page.context.close()


async def test_home_shows_the_live_stream_with_its_count(browser: Any, web_stack: WebStack) -> None:
    watcher = await _page(browser, web_stack, f"/live/{web_stack.stream_id}")  # a heartbeat at once
    home = await _page(browser, web_stack, "/")
    card = f".card[data-stream-id='{web_stack.stream_id}']"
    counted = False
    for _ in range(30):  # the count moves with the viewer agent's window: reload until it shows
        await home.wait_for_selector(card, timeout=WAIT_MS)
        if int(await home.text_content(f"{card} .count") or "0") >= 1:
            counted = True
            break
        await home.wait_for_timeout(2000)
        await home.reload()
    assert counted, "the home page never showed the stream's viewer"
    assert "E2E Channel" in (await home.text_content(card) or "")
    await watcher.context.close()
    await home.context.close()


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)])
async def test_screenshots_of_the_main_pages(
    browser: Any, web_stack: WebStack, width: int, height: int
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    signed_in = await _sign_in(browser, web_stack, web_stack.owner.username)
    await signed_in.set_viewport_size({"width": width, "height": height})
    pages = {
        "home": "/",
        "stream": f"/live/{web_stack.stream_id}",
        "channel": f"/channels/{web_stack.channel_id}",
        "tournament": f"/tournaments/{web_stack.tournament_id}",
        "match": f"/matches/{web_stack.match_id}",
        "dashboard": "/dashboard",
        "notifications": "/notifications",
    }
    written: list[Path] = []
    for name, path in pages.items():
        await signed_in.goto(path)
        if name in ("stream", "match"):
            await signed_in.wait_for_function(
                "() => [...document.querySelectorAll('video')].every(v => v.currentTime > 0.5)",
                timeout=WAIT_MS,
            )
        if name == "dashboard":
            await signed_in.wait_for_selector("#channel:not([hidden])", timeout=WAIT_MS)
        assert await signed_in.evaluate(UNLABELLED) == [], name
        target = SCREENSHOTS / f"{name}-{width}.png"
        await signed_in.screenshot(path=str(target), full_page=True)
        written.append(target)
    login = await _page(browser, web_stack, "/login", viewport={"width": width, "height": height})
    await login.screenshot(path=str(SCREENSHOTS / f"login-{width}.png"), full_page=True)
    written.append(SCREENSHOTS / f"login-{width}.png")
    assert all(p.stat().st_size > 1000 for p in written)
    no_overflow = "document.documentElement.scrollWidth <= window.innerWidth + 1"
    await signed_in.goto(f"/live/{web_stack.stream_id}")
    assert await signed_in.evaluate(no_overflow), f"horizontal scrolling at {width}px"
    if width == 1280:
        await signed_in.emulate_media(color_scheme="dark")
        await signed_in.screenshot(path=str(SCREENSHOTS / "stream-1280-dark.png"), full_page=True)
    await signed_in.context.close()
    await login.context.close()


async def test_vod_replays_the_chat_with_the_playhead(browser: Any, web_stack: WebStack) -> None:
    stack, stream_id, owner = web_stack.stack, web_stack.stream_id, web_stack.owner

    def accepted(text: str, media_time_ms: int) -> ChatMessageAccepted:  # as the moderation agent decides
        return ChatMessageAccepted(
            message_id=str(uuid.uuid4()),
            stream_id=stream_id,
            user_id=owner.user_id,
            display_name=owner.username,
            text=text,
            media_time_ms=media_time_ms,
        )

    positions = await stack.publisher.publish_many([accepted("early bird", 1000), accepted("late owl", 8000)])
    await stack.query(f"/api/v1/streams/{stream_id}/chat", after=[str(p) for p in positions])
    web_stack.pusher.stop()
    await stream_state(stack, stream_id, "ended", timeout_s=90)

    page = await _page(browser, web_stack, f"/live/{stream_id}")
    assert await page.get_attribute("#content", "data-mode") == "vod"
    await page.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.duration > 10 && v.readyState >= 2; }",
        timeout=WAIT_MS,
    )
    early = "#messages li:has(.text:text-is('early bird'))"
    late = "#messages li:has(.text:text-is('late owl'))"
    await page.evaluate("() => { const v = document.getElementById('video'); v.pause(); v.currentTime = 3; }")
    await page.wait_for_selector(early, timeout=WAIT_MS)
    assert await page.locator(late).count() == 0  # not said yet at 0:03
    await page.evaluate("() => { document.getElementById('video').currentTime = 9; }")
    await page.wait_for_selector(late, timeout=WAIT_MS)
    await page.evaluate("() => { document.getElementById('video').currentTime = 2; }")
    await page.wait_for_selector(late, state="detached", timeout=WAIT_MS)  # seeking back hides it again
    await page.context.close()


async def test_a_follower_finds_the_go_live_notification_in_the_inbox(
    browser: Any, web_stack: WebStack, tmp_path: Path
) -> None:
    assert web_stack.followers, "the chat test follows the channel first"
    follower = await _sign_in(browser, web_stack, web_stack.followers[0])
    web_stack.push(tmp_path / "push-again.log")
    new_stream = await web_stack.env.stream_for(web_stack.channel_id, timeout_s=60)
    await stream_state(web_stack.stack, new_stream, "live", timeout_s=90)

    link = f"#inbox a[href='/live/{new_stream}']"
    for _ in range(30):  # the notifications agent decides, the projector writes the inbox
        await follower.goto("/notifications")
        await follower.wait_for_selector("#inbox-status:not(:text-is('Loading…'))", timeout=WAIT_MS)
        if await follower.locator(link).count():
            break
        await follower.wait_for_timeout(2000)
    await follower.wait_for_selector(link, timeout=WAIT_MS)
    item = follower.locator(f"#inbox li:has(a[href='/live/{new_stream}'])")
    assert await item.get_attribute("class") == "unread"
    # the header's badge comes from its own request (shell.js), which may answer after the list's
    await follower.wait_for_selector("#unread:not([hidden])", timeout=WAIT_MS)
    assert int(await follower.text_content("#unread") or "0") >= 1
    await item.locator("button").click()  # mark as read
    await follower.wait_for_selector(f"#inbox li.unread a[href='/live/{new_stream}']", state="detached")
    # Read, also after a reload: the list request names the mark's log position (read your writes),
    # so it answers once the inbox has applied it (it was seen unread under load before).
    async with follower.expect_request(
        lambda r: "/api/v1/me/notifications?" in r.url and "limit=1" not in r.url
    ) as listed:
        await follower.reload()
    assert (await listed.value).headers.get("x-min-position", "").startswith("users:")
    await follower.wait_for_selector(link, timeout=WAIT_MS)
    assert await item.get_attribute("class") == ""
    await follower.context.close()
