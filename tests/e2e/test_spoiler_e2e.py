"""Spoiler-free mode in a real Chromium: a logged-out viewer turns it on from the header, the
tournament page hides every result, one match is revealed and only its result shows, the mode
follows the viewer through links and survives a fresh visit to a plain URL (remembered in the
browser, no cookie).

Lighter than the other e2e modules: no ingest or edge is needed, only the API with its pages on a
real port over the real Kafka, projector and PostgreSQL."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from infra.settings import Settings
from tests.e2e.conftest import serving
from tests.integration.test_api_support import ApiStack, open_api_stack
from tests.integration.test_search_api import read_model_ready
from tests.integration.test_spoiler_free import play_tournament
from tests.ports import free_port
from web.app import create_app

pytestmark = pytest.mark.integration
WAIT_MS = 20_000


@dataclasses.dataclass
class Site:
    base_url: str
    played: dict[str, Any]


@pytest.fixture(scope="module")
async def site(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with open_api_stack(settings, tmp_path_factory.mktemp("spoiler-e2e"), lifecycle=False) as stack:
        await read_model_ready(stack)
        played = await play_tournament(stack)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        page_settings = _public_at(stack, base_url)
        services = dataclasses.replace(stack.services, settings=page_settings)
        async with serving(create_app(page_settings, services), port):
            yield Site(base_url, played)


def _public_at(stack: ApiStack, base_url: str) -> Settings:
    api = stack.settings.api.model_copy(update={"public_url": base_url})
    return stack.settings.model_copy(update={"api": api})


async def _text(page: Any) -> str:
    return str(await page.locator("main").inner_text())


async def test_a_viewer_hides_spoilers_and_reveals_one_match(browser: Any, site: Site) -> None:
    tid, sf1, final = site.played["tid"], site.played["sf1"], site.played["final"]
    ctx = await browser.new_context(base_url=site.base_url)
    page = await ctx.new_page()
    problems: list[str] = []
    # Script errors and CSP violations; not the match page's players, whose HLS tier is not running.
    page.on(
        "console",
        lambda m: problems.append(m.text)
        if m.type == "error" and not m.text.startswith("Failed to load resource")
        else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))

    await page.goto(f"/tournaments/{tid}")
    assert "Vitality won" in await _text(page)  # results shown until the viewer asks otherwise

    await page.click("#spoiler-toggle")
    await page.wait_for_url(re.compile(r"spoilers=hide"), timeout=WAIT_MS)
    hidden = await _text(page)
    assert " won" not in hidden and "Winner of Vitality vs Spirit" in hidden
    assert await page.locator("#spoiler-toggle").get_attribute("aria-pressed") == "true"

    await page.locator(f'table a.reveal[data-reveal="{sf1}"]').click()
    await page.wait_for_url(re.compile(rf"reveal={sf1}"), timeout=WAIT_MS)
    revealed = await _text(page)
    assert revealed.count(" won") == 1 and "Vitality won" in revealed
    assert "Faze won" not in revealed

    # Links keep the mode: the final's page, reached by a link, shows no score.
    await page.locator(f'#bracket li[data-match-id="{final}"] a').first.click()
    await page.wait_for_url(re.compile(rf"/matches/{final}\?.*spoilers=hide"), timeout=WAIT_MS)
    assert await page.locator(f'a.reveal[data-reveal="{final}"]').count() == 1
    assert "Vitality 3" not in await _text(page)

    # A fresh visit to a plain URL: the browser remembers the mode and the revealed match.
    await page.goto(f"/tournaments/{tid}")
    await page.wait_for_url(re.compile(rf"spoilers=hide.*reveal={sf1}"), timeout=WAIT_MS)
    again = await _text(page)
    assert again.count(" won") == 1 and "Vitality won" in again

    # And back: turning the mode off shows every result again.
    await page.click("#spoiler-toggle")
    # (a URL predicate run here: a page function would be re-evaluated in the reloaded page, whose
    # Content-Security-Policy refuses the string evaluation Playwright does there)
    await page.wait_for_url(lambda url: "spoilers=hide" not in url, timeout=WAIT_MS)
    assert (await _text(page)).count(" won") == 3
    assert problems == [], problems
    await ctx.close()
