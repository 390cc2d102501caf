"""Two browsers on one stream page see a prediction's odds move as stakes land (see ``conftest.py``).

The streamer opens a prediction from the stream page's controls; a signed-in viewer stakes from the
card and another viewer over the API; both pages (the streamer's and the viewer's) show the pools,
percentages, payout ratios and staker counts change, live from the edge's `prediction` frames. A
stake the viewer cannot afford is refused with the API's message on the card; the streamer locks and
resolves it, both pages show the winner, and the winner's balance on the card grows by the payout.
A spoiler-free visitor sees the result only after asking for it.

Points are granted as the earning workers do it: ``PointsEarned`` published to ``points.requests``
with the project's publisher (the ledger worker turns them into balances). The prediction and ledger
workers and the prediction routes of the API must be running in the platform for this to pass.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from events.points import PointsEarned
from tests.e2e.conftest import WebStack
from tests.integration.test_api_support import PASSWORD, User, eventually

pytestmark = pytest.mark.integration

WAIT_MS = 60_000
GRANT = 1000
NOBODY = "1:\u2013"  # the ratio of an outcome nobody staked on


async def _grant(web_stack: WebStack, user: User, amount: int) -> None:
    """Points for watching, as an earning worker grants them; waits until the balance shows them."""
    stack = web_stack.stack
    earned = PointsEarned(
        user_id=user.user_id,
        amount=amount,
        reason="watch",
        grant_id=f"watch:{web_stack.stream_id}:{user.user_id}:{uuid.uuid4().hex}",
        stream_id=web_stack.stream_id,
    )
    await stack.publisher.publish(earned)

    async def granted() -> bool:
        response = await stack.client.get("/api/v1/me/points", headers=user.auth)
        return response.status_code == 200 and response.json()["balance"] >= amount

    await eventually(granted, timeout_s=60)


async def _page_of(browser: Any, web_stack: WebStack, user: User) -> Any:
    """A browser context signed in as ``user``, on the live stream's page."""
    ctx = await browser.new_context(base_url=web_stack.base_url)
    page = await ctx.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.problems = problems
    await page.goto("/login")
    await page.fill("#username", user.username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(web_stack.url("/"), timeout=WAIT_MS)
    await page.goto(f"/live/{web_stack.stream_id}")
    await page.wait_for_selector("#chat-input:enabled", timeout=WAIT_MS)  # signed in on the edge
    return page


async def _shows(page: Any, total: int, pools: list[int], ratios: list[str], stakers: list[int]) -> None:
    """Wait until the card shows this pot; then every outcome's pool, ratio and staker count."""
    await page.wait_for_function(
        "t => document.getElementById('prediction').dataset.total === String(t)", arg=total, timeout=WAIT_MS
    )
    shown = await page.eval_on_selector_all(
        "#prediction-outcomes li", "items => items.map(li => ({...li.dataset}))"
    )
    assert [int(o["pool"]) for o in shown] == pools
    assert [o["ratio"] for o in shown] == ratios
    assert [int(o["stakers"]) for o in shown] == stakers


async def test_two_browsers_see_the_odds_move_as_stakes_land(browser: Any, web_stack: WebStack) -> None:
    stack, owner = web_stack.stack, web_stack.owner
    viewer, other = await stack.register(), await stack.register()
    await _grant(web_stack, viewer, GRANT)
    await _grant(web_stack, other, GRANT)
    streamer_page = await _page_of(browser, web_stack, owner)
    viewer_page = await _page_of(browser, web_stack, viewer)
    pages = (streamer_page, viewer_page)
    assert await viewer_page.is_hidden("#prediction-admin")  # viewers get no controls

    # The streamer opens a prediction from the page; it appears on both, all pools empty.
    await streamer_page.fill("#prediction-new-title", "Who wins map 3?")
    await streamer_page.fill("#prediction-new-outcomes", "Vitality\nSpirit")
    await streamer_page.fill("#prediction-new-window", "600")
    await streamer_page.click("#prediction-start")
    for page in pages:
        await page.wait_for_function(
            "() => document.getElementById('prediction-title').textContent === 'Who wins map 3?'",
            timeout=WAIT_MS,
        )
        await page.wait_for_function(
            "() => /Stakes close in \\d+:\\d\\d/"
            ".test(document.getElementById('prediction-status').textContent)",
            timeout=WAIT_MS,
        )
    prediction_id = await viewer_page.get_attribute("#prediction", "data-prediction")
    assert prediction_id
    await viewer_page.wait_for_function(
        f"() => document.getElementById('points-balance').textContent === '{GRANT}'", timeout=WAIT_MS
    )

    # The viewer stakes from the card: both pages see the pool move.
    await viewer_page.select_option("#stake-outcome", "0")
    await viewer_page.fill("#stake-amount", "300")
    await viewer_page.click("#stake-submit")
    for page in pages:
        await _shows(page, 300, [300, 0], ["1:1.00", NOBODY], [1, 0])
    await viewer_page.wait_for_function(
        "() => document.getElementById('stake-status').textContent === 'Your stake: 300 points on Vitality'",
        timeout=WAIT_MS,
    )
    assert await viewer_page.is_disabled("#stake-outcome")  # one outcome per viewer: add to it only

    # Another viewer's stake (over the API) moves both pages' odds again.
    body = {"outcome": 1, "amount": 100}
    await stack.command("POST", f"/api/v1/predictions/{prediction_id}/stakes", other, body, expect=202)
    for page in pages:
        await _shows(page, 400, [300, 100], ["1:1.33", "1:4.00"], [1, 1])
        shown = await page.text_content("#prediction-outcomes li:nth-child(2) .odds")
        assert shown is not None and shown.startswith("25% · 100 pts · 1:4.00")

    # More than the viewer has left: refused, with the API's own words on the card.
    await viewer_page.fill("#stake-amount", str(GRANT))
    await viewer_page.click("#stake-submit")
    await viewer_page.wait_for_function(
        "() => document.getElementById('stake-error').textContent.length > 0", timeout=WAIT_MS
    )

    # The streamer locks it: both pages say so, the form is gone, and a stake is refused (409).
    await streamer_page.click("#prediction-lock")
    for page in pages:
        await page.wait_for_function(
            "() => document.getElementById('prediction').dataset.status === 'locked'", timeout=WAIT_MS
        )
    assert await viewer_page.is_hidden("#stake-form")
    late = await stack.client.post(
        f"/api/v1/predictions/{prediction_id}/stakes", json=body, headers=other.auth
    )
    assert late.status_code == 409 and late.json()["detail"], late.text

    # Resolved for Vitality: both pages highlight it; the viewer's balance gets the whole pot back.
    await streamer_page.select_option("#prediction-winner", "0")
    await streamer_page.click("#prediction-resolve")
    for page in pages:
        await page.wait_for_selector("#prediction-outcomes li:nth-child(1).winner", timeout=WAIT_MS)
        await page.wait_for_function(
            "() => document.getElementById('prediction-status').textContent"
            ".startsWith('Result: Vitality won')",
            timeout=WAIT_MS,
        )
    await viewer_page.wait_for_function(
        f"() => document.getElementById('points-balance').textContent === '{GRANT - 300 + 400}'",
        timeout=WAIT_MS,
    )
    await viewer_page.wait_for_function(
        "() => document.getElementById('stake-status').textContent.endsWith('(won 400)')", timeout=WAIT_MS
    )

    # Spoiler-free (the stream is a match's): the winner stays hidden until this viewer asks for it.
    hiding = await (await browser.new_context(base_url=web_stack.base_url)).new_page()
    await hiding.goto(f"/live/{web_stack.stream_id}?spoilers=hide")
    assert await hiding.get_attribute("#content", "data-result-hidden") == "true"
    await hiding.wait_for_function(
        "() => document.getElementById('prediction').dataset.status === 'resolved'", timeout=WAIT_MS
    )
    status = await hiding.text_content("#prediction-status")
    assert status is not None and "hidden" in status and "Vitality" not in status, status
    assert await hiding.locator("#prediction-outcomes li.winner").count() == 0
    await hiding.click("#prediction-reveal")
    await hiding.wait_for_selector("#prediction-outcomes li:nth-child(1).winner", timeout=WAIT_MS)
    await hiding.context.close()
    for page in pages:
        assert not page.problems, page.problems
        await page.context.close()
