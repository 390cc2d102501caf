"""The moderator view in a real browser against the real platform (the stack of ``conftest.py``).

A channel moderator, signed in on the stream page, sees the moderator panel (viewers do not). One
viewer sends a message the rules hold: it appears, live, in the moderator's queue and nowhere else;
the moderator approves it and both viewers' chats show it, without a reload. Then the moderator bans
the other viewer from a message's tools, the message leaves every page, and ``/unban`` brings it back
live on every open page. The panel's moderation log names the actor of each step.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import WebStack
from tests.integration.test_api_support import PASSWORD, User

pytestmark = pytest.mark.integration

WAIT_MS = 60_000
# Evasion (an invisible character inside a word) plus a link: a score at the hold threshold with the
# default chat settings (stream_processors/moderation/chat_rules.py), so the agent holds it.
RISKY = "gg\u200bwp see https://clips.example/{}"


async def _page(browser: Any, stack: WebStack) -> Any:
    ctx = await browser.new_context(base_url=stack.base_url)
    page = await ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    return page


async def _signed_in_watching(browser: Any, stack: WebStack, user: User) -> Any:
    page = await _page(browser, stack)
    await page.goto("/login")
    await page.fill("#username", user.username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(stack.url("/"), timeout=WAIT_MS)
    await page.goto(f"/live/{stack.stream_id}")
    await page.wait_for_selector("#chat-input:enabled", timeout=WAIT_MS)
    return page


async def _say(page: Any, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")
    await page.wait_for_function("() => document.getElementById('chat-input').value === ''", timeout=WAIT_MS)


def _line(text: str) -> str:
    return "#messages li:has(.text:text-is('{}'))".format(text.replace("'", "\\'"))


async def _moderator(stack: WebStack) -> User:
    api = stack.stack
    moderator = await api.register()
    owner = await api.relogin(stack.owner)
    appointed = await api.command(
        "PUT", f"/api/v1/channels/{stack.channel_id}/moderators/{moderator.user_id}", owner
    )
    await api.query(f"/api/v1/streams/{stack.stream_id}", after=appointed["positions"])
    return moderator


async def test_a_moderator_approves_a_held_message_and_an_unban_restores_messages_live(
    browser: Any, web_stack: WebStack
) -> None:
    api = web_stack.stack
    moderator_user = await _moderator(web_stack)
    author_user, other_user = await api.register(), await api.register()
    moderator = await _signed_in_watching(browser, web_stack, moderator_user)
    author = await _signed_in_watching(browser, web_stack, author_user)
    other = await _signed_in_watching(browser, web_stack, other_user)
    pages = (moderator, author, other)
    try:
        await moderator.wait_for_selector("#moderator-panel:not([hidden])", timeout=WAIT_MS)
        for viewer in (author, other):
            assert await viewer.locator("#moderator-panel").is_hidden()  # viewers get no panel

        # A risky message is held: in the moderator's queue, not in anyone's chat.
        tag = uuid.uuid4().hex[:8]
        risky = RISKY.format(tag)
        await _say(author, risky)
        await author.wait_for_function(
            "() => document.getElementById('chat-notice').textContent.includes('waits for a moderator')",
            timeout=WAIT_MS,
        )
        queued = f"#held-queue li:has(.text:has-text('clips.example/{tag}'))"
        approved = f"#messages li:has(.text:has-text('clips.example/{tag}'))"
        await moderator.wait_for_selector(queued, timeout=WAIT_MS)
        for page in pages:
            assert await page.locator(approved).count() == 0, "a held message reached a chat"

        # Approved from the queue: it leaves the queue and reaches both viewers' chats, live.
        await moderator.click(f"{queued} .held-approve")
        await moderator.wait_for_selector(queued, state="detached", timeout=WAIT_MS)
        for page in pages:
            await page.wait_for_selector(approved, timeout=WAIT_MS)
        await moderator.wait_for_selector(
            f"#mod-log li[data-action='approve']:has(.actor:text-is('{moderator_user.user_id}'))",
            timeout=WAIT_MS,
        )
        await moderator.wait_for_selector("#mod-log li[data-action='hold']:has(.actor:text-is('automod'))")

        # A ban takes the other viewer's message off every page; the unban brings it back, live.
        hello = f"hello from {other_user.username}"
        await _say(other, hello)
        for page in pages:
            await page.wait_for_selector(_line(hello), timeout=WAIT_MS)
        await moderator.click(f"{_line(hello)} .mod-ban")
        for page in pages:
            await page.wait_for_selector(_line(hello), state="detached", timeout=WAIT_MS)
        await _say(moderator, f"/unban {other_user.username}")
        for page in pages:
            await page.wait_for_selector(_line(hello), timeout=WAIT_MS)
        await moderator.wait_for_selector("#mod-log li[data-action='unban']", timeout=WAIT_MS)
        await moderator.wait_for_selector("#mod-log li[data-action='ban']", timeout=WAIT_MS)
        assert await other.locator(approved).count() == 1  # the approved message stayed
        for page in pages:  # script errors and CSP violations (a missing poster image is no problem)
            errors = [p for p in page.problems if not p.startswith("Failed to load resource")]
            assert not errors, errors
    finally:
        for page in pages:
            await page.context.close()
