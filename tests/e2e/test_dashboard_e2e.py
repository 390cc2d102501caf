"""The streamer's dashboard in a real browser against the real platform (see ``conftest.py``).

1. The streamer sets the live stream's title and game on the dashboard; the stream page and the home
   listing show them.
2. The streamer sets slow mode on the dashboard; a viewer's first message is accepted and a second one
   sent at once is refused (the page says why); a bad value is answered next to the form.
3. The streamer appoints a moderator by username: the user's stream page, which had no tools before,
   now has the moderator panel and the delete buttons; removing the moderator empties the list.
4. The streamer blocks a term, turns unique chat on and refuses links (moderation actions the
   dashboard sends over REST, without an edge connection, read back from the moderation log): a
   viewer's message with the term is refused; once unblocked the same message is accepted; a domain
   the API refuses is answered next to the rules.
5. The streamer turns low latency off and sets a 30-minute DVR window in the Video section: the stream
   page's player starts in the standard mode; a viewer who chose low latency in this browser keeps it;
   back on, it is low latency.
"""

from __future__ import annotations

import random
import string
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import WebStack
from tests.integration.test_api_support import PASSWORD, User, eventually

pytestmark = pytest.mark.integration

WAIT_MS = 60_000


async def _signed_in(browser: Any, stack: WebStack, username: str, path: str) -> Any:
    ctx = await browser.new_context(base_url=stack.base_url)
    page = await ctx.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    sockets: list[str] = []  # websockets the page opened (once at ``path``)
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.sockets = sockets
    await page.goto("/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(stack.url("/"), timeout=WAIT_MS)
    sockets.clear()
    await page.goto(path)
    return page


async def _dashboard(browser: Any, stack: WebStack) -> Any:
    page = await _signed_in(browser, stack, stack.owner.username, "/dashboard")
    await page.wait_for_function(
        "() => document.getElementById('stream-target').textContent.includes('your live stream')",
        timeout=WAIT_MS,
    )
    return page


async def _status(page: Any, text: str) -> None:
    await page.wait_for_function(
        "(t) => document.getElementById('dash-status').textContent === t", arg=text, timeout=WAIT_MS
    )


async def _watch(page: Any, stack: WebStack) -> None:
    await page.goto(f"/live/{stack.stream_id}")
    await page.wait_for_selector("#chat-input:enabled", timeout=WAIT_MS)


async def _say(page: Any, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


async def _settings_logged(stack: WebStack, owner: User, count: int) -> None:
    """Until the moderation agent applied ``count`` chat-settings changes (its log says so)."""
    url = f"/api/v1/streams/{stack.stream_id}/moderation/log?action=settings"

    async def logged() -> bool:
        return len((await stack.stack.query(url, owner))["items"]) >= count

    await eventually(logged, timeout_s=60, interval_s=0.3)


async def test_title_and_game_set_on_the_dashboard_show_on_the_stream_page_and_home(
    browser: Any, web_stack: WebStack
) -> None:
    dashboard = await _dashboard(browser, web_stack)
    title, game = f"Grand final {uuid.uuid4().hex[:6]}", "Counter-Strike 2"
    await dashboard.fill("#stream-title", title)
    await dashboard.fill("#stream-game", game)
    await dashboard.fill("#stream-tags", "cs2, final")
    await dashboard.click("#stream-form button[type=submit]")
    await _status(dashboard, "Stream info saved.")
    assert await dashboard.text_content("#stream-error") == ""

    viewer = await browser.new_context(base_url=web_stack.base_url)
    page = await viewer.new_page()

    async def stream_page_shows() -> bool:
        await page.goto(f"/live/{web_stack.stream_id}")
        return (await page.text_content("#stream-title")) == title and game in await page.inner_text(".about")

    await eventually(stream_page_shows, timeout_s=30, interval_s=0.5)
    card = f"li.card[data-stream-id='{web_stack.stream_id}']"

    async def home_shows() -> bool:
        await page.goto("/")
        if await page.locator(card).count() == 0:
            return False
        return (await page.text_content(f"{card} .card-title")) == title and game in (
            await page.text_content(f"{card} .card-meta") or ""
        )

    await eventually(home_shows, timeout_s=30, interval_s=0.5)
    stream = await web_stack.stack.query(f"/api/v1/streams/{web_stack.stream_id}")
    assert (stream["title"], stream["game"], stream["tags"]) == (title, game, ["cs2", "final"])

    # A title the API refuses: its problem shows next to the form, as text.
    await dashboard.fill("#stream-title", "x" * 140)
    await dashboard.fill("#stream-language", "not a language")
    await dashboard.click("#stream-form button[type=submit]")
    await dashboard.wait_for_function(
        "() => document.getElementById('stream-error').textContent.includes('language')", timeout=WAIT_MS
    )
    assert not dashboard.problems, dashboard.problems
    await viewer.close()
    await dashboard.context.close()


async def test_slow_mode_set_on_the_dashboard_refuses_a_viewers_second_quick_message(
    browser: Any, web_stack: WebStack
) -> None:
    owner = await web_stack.stack.relogin(web_stack.owner)
    viewer_user = await web_stack.stack.register()
    dashboard = await _dashboard(browser, web_stack)
    await dashboard.fill("#slow-seconds", "60")
    await dashboard.click("#slow-form button[type=submit]")
    await _status(dashboard, "Slow mode: 60 s.")
    await _settings_logged(web_stack, owner, 1)

    viewer = await _signed_in(browser, web_stack, viewer_user.username, f"/live/{web_stack.stream_id}")
    await _watch(viewer, web_stack)
    first = f"first {uuid.uuid4().hex[:6]}"
    await _say(viewer, first)
    await viewer.wait_for_selector(f"#messages li:has(.text:text-is('{first}'))", timeout=WAIT_MS)
    second = f"second {uuid.uuid4().hex[:6]}"
    await _say(viewer, second)
    await viewer.wait_for_function(
        "() => document.getElementById('chat-notice').textContent.startsWith('Not sent')", timeout=WAIT_MS
    )
    assert await viewer.locator(f"#messages li:has(.text:text-is('{second}'))").count() == 0

    # Slow mode off again (0); a negative interval is the API's 422, shown by the form.
    await dashboard.fill("#slow-seconds", "0")
    await dashboard.click("#slow-form button[type=submit]")
    await _status(dashboard, "Slow mode off.")
    await _settings_logged(web_stack, owner, 2)
    await dashboard.evaluate("document.getElementById('slow-seconds').removeAttribute('min')")
    await dashboard.fill("#slow-seconds", "-5")
    await dashboard.click("#slow-form button[type=submit]")
    await dashboard.wait_for_function(
        "() => document.getElementById('slow-error').textContent.includes('duration_s')", timeout=WAIT_MS
    )
    for page in (dashboard, viewer):
        await page.context.close()


async def test_an_appointed_moderator_gets_the_tools_and_can_be_removed(
    browser: Any, web_stack: WebStack
) -> None:
    moderator_user = await web_stack.stack.register()
    moderator = await _signed_in(browser, web_stack, moderator_user.username, f"/live/{web_stack.stream_id}")
    await _watch(moderator, web_stack)
    before = f"before {uuid.uuid4().hex[:6]}"
    await _say(moderator, before)
    line = f"#messages li:has(.text:text-is('{before}'))"
    await moderator.wait_for_selector(line, timeout=WAIT_MS)
    assert await moderator.locator(f"{line} .mod-delete").count() == 0  # not a moderator yet
    assert await moderator.locator("#moderator-panel").is_hidden()

    dashboard = await _dashboard(browser, web_stack)
    await dashboard.fill("#moderator-user", "nobody-" + uuid.uuid4().hex[:8])
    await dashboard.click("#moderator-form button[type=submit]")
    await dashboard.wait_for_function(
        "() => document.getElementById('moderator-error').textContent.startsWith('no user')", timeout=WAIT_MS
    )
    await dashboard.fill("#moderator-user", moderator_user.username)
    await dashboard.click("#moderator-form button[type=submit]")
    entry = f"#moderators li[data-user-id='{moderator_user.user_id}']"
    await dashboard.wait_for_selector(entry, timeout=WAIT_MS)
    assert await dashboard.text_content("#moderator-error") == ""

    await _watch(moderator, web_stack)  # the page is rendered with the channel's moderators
    await moderator.wait_for_selector("#moderator-panel:not([hidden])", timeout=WAIT_MS)
    after = f"after {uuid.uuid4().hex[:6]}"
    await _say(moderator, after)
    await moderator.wait_for_selector(
        f"#messages li:has(.text:text-is('{after}')) .mod-delete", timeout=WAIT_MS
    )

    await dashboard.click(f"{entry} button")
    await dashboard.wait_for_selector(entry, state="detached", timeout=WAIT_MS)
    channel = await web_stack.stack.query(f"/api/v1/channels/{web_stack.channel_id}")
    assert moderator_user.user_id not in [m["user_id"] for m in channel["moderators"]]
    assert not dashboard.problems, dashboard.problems
    for page in (dashboard, moderator):
        await page.context.close()


async def test_channel_rules_set_on_the_dashboard_apply_to_the_chat(
    browser: Any, web_stack: WebStack
) -> None:
    viewer_user = await web_stack.stack.register()
    dashboard = await _dashboard(browser, web_stack)
    term = "spoil" + "".join(random.choices(string.ascii_lowercase, k=6))  # already normalised (no digits)
    await dashboard.fill("#blocked-term", term)
    await dashboard.click("#block-form button[type=submit]")
    listed = f"#blocked-terms li[data-term='{term}']"
    try:
        await dashboard.wait_for_selector(listed, timeout=WAIT_MS)
    except Exception:
        shown = await dashboard.evaluate(
            "['dash-status', 'rules-error', 'rules-current', 'blocked-terms']"
            ".map(id => id + ': ' + document.getElementById(id).textContent)"
        )
        raise AssertionError(f"the term was not listed: {shown}; {dashboard.problems}") from None
    await dashboard.check("#unique-chat")
    await dashboard.click("#unique-form button[type=submit]")
    await dashboard.wait_for_function(
        "() => document.getElementById('rules-current').textContent.includes('unique chat: on')",
        timeout=WAIT_MS,
    )
    assert await dashboard.text_content("#rules-error") == ""
    await _link_policy(dashboard, "allowlist", "example.com not-a-domain")  # the API's 422, as text
    await dashboard.wait_for_function(
        "() => document.getElementById('rules-error').textContent.includes('link_allowlist')",
        timeout=WAIT_MS,
    )
    await _link_policy(dashboard, "deny")
    await dashboard.wait_for_function(
        "() => document.getElementById('rules-current').textContent.includes('links: refused')",
        timeout=WAIT_MS,
    )
    assert await dashboard.text_content("#rules-error") == ""

    viewer = await _signed_in(browser, web_stack, viewer_user.username, f"/live/{web_stack.stream_id}")
    await _watch(viewer, web_stack)
    await _say(viewer, f"the ending: {term}!")
    await viewer.wait_for_function(
        "() => document.getElementById('chat-notice').textContent.startsWith('Not sent')", timeout=WAIT_MS
    )

    await dashboard.click(f"{listed} button")
    await dashboard.wait_for_selector(listed, state="detached", timeout=WAIT_MS)
    await dashboard.uncheck("#unique-chat")
    await dashboard.click("#unique-form button[type=submit]")
    await dashboard.wait_for_function(
        "() => document.getElementById('rules-current').textContent.includes('unique chat: off')",
        timeout=WAIT_MS,
    )
    await _link_policy(dashboard, "allow")
    await dashboard.wait_for_function(
        "() => document.getElementById('rules-current').textContent.includes('links: allowed')",
        timeout=WAIT_MS,
    )
    allowed = f"fine {uuid.uuid4().hex[:6]} {term}"
    await _say(viewer, allowed)
    await viewer.wait_for_selector(f"#messages li:has(.text:text-is('{allowed}'))", timeout=WAIT_MS)
    assert not dashboard.problems, dashboard.problems
    assert dashboard.sockets == [], dashboard.sockets  # the rules went over REST, not the edge
    for page in (dashboard, viewer):
        await page.context.close()


async def _link_policy(page: Any, policy: str, domains: str = "") -> None:
    await page.select_option("#link-policy", policy)
    await page.fill("#link-allowlist", domains)
    await page.click("#links-form button[type=submit]")


async def _player_low_latency(page: Any, stack: WebStack) -> bool:
    """Whether the stream page's hls.js runs in low-latency mode, once it exists."""
    await page.goto(f"/live/{stack.stream_id}")
    await page.wait_for_function("() => document.getElementById('video').hls", timeout=WAIT_MS)
    return bool(await page.evaluate("() => document.getElementById('video').hls.config.lowLatencyMode"))


async def test_the_channels_video_settings_start_the_player_and_a_viewer_may_choose(
    browser: Any, web_stack: WebStack
) -> None:
    dashboard = await _dashboard(browser, web_stack)
    assert await dashboard.is_checked("#low-latency")  # channels start low-latency
    viewer = await browser.new_context(base_url=web_stack.base_url)
    page = await viewer.new_page()
    assert await _player_low_latency(page, web_stack)

    await dashboard.uncheck("#low-latency")
    await dashboard.select_option("#dvr-window", "1800")
    await dashboard.click("#latency-form button[type=submit]")
    await _status(dashboard, "Low latency is off: players start in the standard mode.")

    async def standard() -> bool:
        return not await _player_low_latency(page, web_stack)

    await eventually(standard, timeout_s=30, interval_s=0.5)
    channel = await web_stack.stack.query(f"/api/v1/channels/{web_stack.channel_id}")
    assert (channel["low_latency"], channel["dvr_window_s"]) == (False, 1800)
    chooser = await (await browser.new_context(base_url=web_stack.base_url)).new_page()
    await chooser.goto("/")
    await chooser.evaluate("() => localStorage.setItem('esports.lowLatency', 'true')")
    assert await _player_low_latency(chooser, web_stack)  # the viewer's choice wins

    await dashboard.check("#low-latency")
    await dashboard.click("#latency-form button[type=submit]")
    await _status(dashboard, "Low latency is on.")

    async def low() -> bool:
        return await _player_low_latency(page, web_stack)

    await eventually(low, timeout_s=30, interval_s=0.5)
    assert not dashboard.problems, dashboard.problems
    for context in (viewer, chooser.context, dashboard.context):
        await context.close()
