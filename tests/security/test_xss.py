"""The XSS corpus (``xss_payloads.txt``) through the API, rendered in real Chromium: nothing runs.

Every payload is sent as a stream title, a channel name (8 of them), a poll question or option, a
chat message and a chatter's display name. The pages are served by uvicorn from the app the API
runs (their CSP included) and opened in Debian's Chromium; the channel pages (server-rendered
titles) are navigated, and the chat and poll views are the pages' own
modules (``static/js/chat.js``, ``poll.js``) fed from the same API reads the stream page makes.
Chat messages enter as ``ChatMessageAccepted`` events on the chat topic (what the moderation agent
writes once it accepts a message; the chat archive is their projection).

Any script execution fails the test: ``alert``/``confirm``/``prompt`` and the payloads' ``__xss()``
call a Playwright binding, dialogs are counted, and every CSP violation (a payload that became
markup) is reported. Each payload must be found back as text.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events.chat import ChatMessageAccepted
from tests.e2e.conftest import browser, serving
from tests.integration.test_api_support import ApiStack, User, eventually
from tests.ports import free_port
from tests.security.tally import TALLY
from web.app import create_app

__all__ = ["browser"]

pytestmark = pytest.mark.integration

PAYLOADS = [
    line
    for line in (Path(__file__).parent / "xss_payloads.txt").read_text(encoding="utf-8").split("\n")
    if line and not line.startswith("# ")
]
PER_CHANNEL = 30  # the channel page lists this many streams
TRAPS = """
for (const name of ["alert", "confirm", "prompt", "print"])
  window[name] = (...a) => window.__xssHit(name + ":" + a);
window.__xss = (...a) => window.__xssHit("__xss:" + a);
document.addEventListener("securitypolicyviolation",
  (e) => window.__xssCsp(e.violatedDirective + " " + e.blockedURI));
"""
RENDER_CHAT_AND_POLLS = """async (streamId) => {
  const { ChatView } = await import("/static/js/chat.js");
  const { PollView } = await import("/static/js/poll.js");
  const list = document.createElement("ol");
  document.body.append(list);
  const chat = new ChatView(list);
  const archive = await (await fetch(`/api/v1/streams/${streamId}/chat?limit=500`)).json();
  for (const m of archive.items) {
    const frame = { type: "chat", id: m.message_id, user: m.user_id, name: m.display_name };
    chat.apply({ ...frame, text: m.text, at: m.media_time_ms });
  }
  const section = document.createElement("section");
  section.innerHTML = '<h2 id="poll-question"></h2><ol id="poll-options"></ol><p id="poll-total"></p>';
  document.body.append(section);
  const polls = new PollView(section, { vote: async () => ({ type: "ack" }) });
  const seen = [];
  const listing = await (await fetch(`/api/v1/streams/${streamId}/polls?limit=100`)).json();
  for (const p of listing.items) {
    await polls.show(p);
    await new Promise((r) => setTimeout(r, 0));
    seen.push(section.querySelector("#poll-question").textContent);
    for (const label of section.querySelectorAll(".label")) seen.push(label.textContent);
  }
  const texts = [...list.querySelectorAll(".text")].map((e) => e.textContent);
  const names = [...list.querySelectorAll(".name")].map((e) => e.textContent);
  const markup = "img, svg, math, iframe, script:not([src]), a[href^=javascript], object, embed";
  const injected = list.querySelectorAll(markup).length + section.querySelectorAll(markup).length;
  return { texts, names, polls: seen, injected };
}"""


def _words(text: str) -> str:
    """Text as a page shows it: runs of white space (a tab in a title) collapse to one space."""
    return " ".join(text.split())


async def _seed(stack: ApiStack) -> tuple[User, list[str], str]:
    """The corpus as channel names, stream titles, polls and chat, through the API and the chat topic."""
    owner = await stack.register()
    channels, positions = [], []
    for start in range(0, len(PAYLOADS), PER_CHANNEL):
        name = PAYLOADS[start // PER_CHANNEL]
        body = {"slug": f"xss-{uuid.uuid4().hex[:10]}", "display_name": name}
        channel = await stack.command("POST", "/api/v1/channels", owner, body, expect=201)
        channels.append(channel["channel_id"])
        for title in PAYLOADS[start : start + PER_CHANNEL]:
            body = {"channel_id": channel["channel_id"], "title": title}
            created = await stack.command("POST", "/api/v1/streams", owner, body, expect=201)
            positions += created["positions"]
    stage = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channels[0], "title": "stage"}, expect=201
    )
    stream_id = stage["stream_id"]
    latest: dict[str, str] = {}  # the last position per partition is enough to wait for
    for position in [*positions, *stage["positions"]]:
        where, offset = position.rsplit(":", 1)
        if where not in latest or int(latest[where].rsplit(":", 1)[1]) < int(offset):
            latest[where] = position
    await stack.query(f"/api/v1/streams/{stream_id}", after=list(latest.values()))
    for start in range(0, len(PAYLOADS), 5):
        group = PAYLOADS[start : start + 5]
        url = f"/api/v1/streams/{stream_id}/polls"
        poll = {"question": PAYLOADS[-1 - start // 5], "options": [*group, "plain option"][:5]}
        response = await stack.client.post(url, json=poll, headers=owner.auth)
        if response.status_code == 422:  # options that differ only in case: one poll each
            for option in group:
                await stack.command("POST", url, owner, {"question": "q", "options": [option, "plain"]})
        else:
            assert response.status_code == 202, response.text
    for index, text in enumerate(PAYLOADS):
        await stack.publisher.publish(
            ChatMessageAccepted(
                message_id=f"m-{uuid.uuid4().hex[:12]}",
                stream_id=stream_id,
                user_id=f"u-{index}",
                display_name=PAYLOADS[-1 - index],
                text=text,
                media_time_ms=index * 10,
            )
        )
    return owner, channels, stream_id


@pytest.fixture(scope="module")
async def site(security_stack: ApiStack) -> AsyncIterator[str]:
    port = free_port()
    async with serving(create_app(security_stack.settings, security_stack.services), port):
        yield f"http://127.0.0.1:{port}"


async def _watched_page(browser: Any, base_url: str, hits: list[str]) -> Any:
    context = await browser.new_context(base_url=base_url)
    await context.expose_binding("__xssHit", lambda _source, what: hits.append(f"script: {what}"))
    await context.expose_binding("__xssCsp", lambda _source, what: hits.append(f"csp: {what}"))
    await context.add_init_script(TRAPS)
    page = await context.new_page()

    async def dialog(d: Any) -> None:
        hits.append(f"dialog: {d.message}")
        await d.dismiss()

    page.on("dialog", dialog)
    page.on("pageerror", lambda e: hits.append(f"pageerror: {e}"))
    return page


async def test_the_corpus_renders_as_text_and_never_runs(
    security_stack: ApiStack, site: str, browser: Any
) -> None:
    stack = security_stack
    assert len(PAYLOADS) >= 200
    _, channels, stream_id = await _seed(stack)
    hits: list[str] = []
    page = await _watched_page(browser, site, hits)
    missing: list[str] = []
    for index, channel in enumerate(channels):
        response = await page.goto(f"/channels/{channel}")
        assert response is not None and response.status == 200
        shown = {_words(s) for s in await page.locator("main a, .card-title, h1").all_inner_texts()}
        expected = PAYLOADS[index * PER_CHANNEL : (index + 1) * PER_CHANNEL]
        TALLY.rendered += sum(_words(title) in shown for title in expected)
        missing += [f"title {t!r}" for t in expected if _words(t) not in shown]

    async def archived() -> bool:
        r = await stack.client.get(f"/api/v1/streams/{stream_id}/chat?limit=500")
        return r.status_code == 200 and len(r.json()["items"]) == len(PAYLOADS)

    await eventually(archived, timeout_s=30)
    rendered = await page.evaluate(RENDER_CHAT_AND_POLLS, stream_id)
    await page.wait_for_timeout(300)  # let any injected onerror/onload fire
    for surface in ("texts", "names", "polls"):
        found = {_words(f) for f in rendered[surface]}
        TALLY.rendered += sum(_words(p) in found for p in PAYLOADS)
        missing += [f"{surface} {p!r}" for p in PAYLOADS if _words(p) not in found]
    TALLY.executions += sum(h.startswith(("script", "dialog")) for h in hits)
    assert rendered["injected"] == 0
    assert not hits, hits
    assert not missing, missing[:20]
