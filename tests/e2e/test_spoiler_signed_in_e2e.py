"""Spoiler-free mode of a signed-in viewer in a real Chromium: the setting belongs to the account.

The viewer turns spoiler-free on with their token (``PATCH /api/v1/me/preferences``, as from another
device), then signs in on a browser that never heard of it. From then on plain URLs, without the
switch, show no score, winner or end of the finished bracket on any page the logged-out test and
the integration test check (home, browse, tournament, both matches, the final's broadcast, the
channel, search); revealing one semifinal shows that result only. Turning the mode off from the
header, still signed in, turns the account's setting off too.

The platform is the logged-out module's (``site``: the API with its pages on a real port, over the
real Kafka, projector and PostgreSQL; the bracket played through the API); the leak detector is the
integration test's.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.test_spoiler_e2e import WAIT_MS, Site, _text, site
from tests.integration.test_api_support import PASSWORD, eventually
from tests.integration.test_spoiler_free import _leaks_in_html, _pages

__all__ = ["site"]  # the logged-out module's platform, one of its own for this module

pytestmark = pytest.mark.integration
PREFERENCES = "/api/v1/me/preferences"


async def _account_with_spoilers_hidden(api: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """A new account whose setting is on (read back from the read model): its username and auth."""
    username = f"u{uuid.uuid4().hex[:12]}"
    registered = await api.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    login = await api.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    changed = await api.patch(PREFERENCES, json={"spoiler_free": True}, headers=auth)
    assert changed.status_code == 202, changed.text
    read = await api.get(
        PREFERENCES, headers={**auth, "X-Min-Position": ",".join(changed.json()["positions"])}
    )
    assert read.json() == {"spoiler_free": True} and "x-read-model-lag" not in read.headers
    return username, auth


async def _sign_in(page: Any, base_url: str, username: str) -> None:
    await page.goto("/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    # The home page, then (its shell read the account's setting) the home page without spoilers.
    await page.wait_for_url(re.compile(re.escape(base_url) + r"/\?spoilers=hide$"), timeout=WAIT_MS)


async def _hidden_at(page: Any, path: str) -> str:
    """Open the plain ``path``; the page itself moves to the spoiler-free URL. Its HTML then."""
    await page.goto(path, wait_until="commit")  # the page replaces itself before it loads
    await page.wait_for_url(re.compile(r"[?&]spoilers=hide"), timeout=WAIT_MS)
    await page.wait_for_load_state("load")
    return str(await page.content())


async def test_a_signed_in_viewers_setting_hides_results_on_plain_urls(browser: Any, site: Site) -> None:
    played = site.played
    tid, sf1, final = played["tid"], played["sf1"], played["final"]
    async with httpx.AsyncClient(base_url=site.base_url, timeout=30) as api:
        username, auth = await _account_with_spoilers_hidden(api)
        ctx = await browser.new_context(base_url=site.base_url)
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Signed out, this browser shows results: the hiding below is the account's doing.
        await page.goto(f"/tournaments/{tid}")
        assert "Vitality won" in await _text(page) and "spoilers=hide" not in page.url

        await _sign_in(page, site.base_url, username)
        for path in _pages(played):
            html = await _hidden_at(page, path)
            assert _leaks_in_html(html) == [], (path, _leaks_in_html(html))
            assert "Faze vs Vitality" not in html, path  # who reached the final tells the semifinals
        tournament = await _hidden_at(page, f"/tournaments/{tid}")
        assert "Winner of Vitality vs Spirit" in tournament and " won" not in await _text(page)

        # Reveal the first semifinal: its result, and no other.
        await page.locator(f'table a.reveal[data-reveal="{sf1}"]').click()
        await page.wait_for_url(re.compile(rf"reveal={sf1}"), timeout=WAIT_MS)
        revealed = await _text(page)
        assert revealed.count(" won") == 1 and "Vitality won" in revealed and "Faze won" not in revealed
        final_page = await _hidden_at(page, f"/matches/{final}")
        assert f"reveal={sf1}" in page.url and _leaks_in_html(final_page) == []
        assert await page.locator(f'a.reveal[data-reveal="{final}"]').count() == 1

        # Off from the header, still signed in: the account's setting follows.
        await page.click("#spoiler-toggle")
        # (a URL predicate run here: a page function would be re-evaluated in the reloaded page, whose
        # Content-Security-Policy refuses the string evaluation Playwright does there)
        await page.wait_for_url(lambda url: "spoilers=hide" not in url, timeout=WAIT_MS)
        assert "Vitality 3" in await _text(page)
        assert _leaks_in_html(await page.content())  # the detector sees results in this DOM when shown

        async def turned_off() -> bool:
            return (await api.get(PREFERENCES, headers=auth)).json() == {"spoiler_free": False}

        await eventually(turned_off, timeout_s=30)
        assert errors == []
        await ctx.close()
