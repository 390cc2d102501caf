"""The tournament page draws the bracket from the matches' results (and GET
/api/v1/tournaments/{id}/bracket serves it): a four-team single elimination played through the API,
semifinal winners advancing into the final, the champion marked, over the real read model."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from infra.settings import Settings
from tests.integration.test_api_support import ApiStack, User, open_api_stack
from tests.integration.test_search_api import read_model_ready

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiStack]:
    async with open_api_stack(settings, tmp_path_factory.mktemp("bracket"), lifecycle=False) as opened:
        await read_model_ready(opened)
        yield opened


async def _play(
    stack: ApiStack, organizer: User, tid: str, round_name: str, teams: list[str], hour: int, score: list[int]
) -> str:
    """Schedule, start and end a match with its final score; returns its id once the read model has it."""
    scheduled = await stack.command(
        "POST",
        f"/api/v1/tournaments/{tid}/matches",
        organizer,
        {"teams": teams, "scheduled_start": f"2030-06-14T{hour:02d}:00:00Z", "round_name": round_name},
        expect=201,
    )
    url = f"/api/v1/matches/{scheduled['match_id']}"
    await stack.query(url, after=scheduled["positions"])
    started = await stack.command("POST", f"{url}/start", organizer)
    await stack.query(url, after=started["positions"])
    scores = [{"team": t, "score": s} for t, s in zip(teams, score, strict=True)]
    ended = await stack.command("POST", f"{url}/end", organizer, {"scores": scores})
    match = await stack.query(url, after=ended["positions"])
    assert match["state"] == "ended"
    return str(scheduled["match_id"])


async def _tournament(stack: ApiStack) -> tuple[str, dict[str, str]]:
    organizer = await stack.register()
    await stack.command(
        "POST", "/api/v1/channels", organizer, {"slug": f"b-{uuid.uuid4().hex[:12]}", "display_name": "Org"}
    )
    created = await stack.command(
        "POST",
        "/api/v1/tournaments",
        organizer,
        {"name": "Bracket Cup", "game": "CS2", "starts_at": "2030-06-14T10:00:00Z"},
        expect=201,
    )
    tid = created["tournament_id"]
    await stack.query(f"/api/v1/tournaments/{tid}", after=created["positions"])
    ids = {
        "sf1": await _play(stack, organizer, tid, "Semifinal", ["Vitality", "Spirit"], 12, [2, 1]),
        "sf2": await _play(stack, organizer, tid, "Semifinal", ["NAVI", "FaZe"], 15, [0, 2]),
    }
    ids["final"] = await _play(stack, organizer, tid, "Grand final", ["FaZe", "Vitality"], 18, [1, 3])
    return tid, ids


def _column(page: str, round_name: str) -> str:
    found = re.search(rf'<section class="bracket-round" data-round="{round_name}".*?</section>', page, re.S)
    assert found, f"no {round_name} column"
    return found.group(0)


def _slots(fragment: str, match_id: str) -> list[tuple[str, str, bool]]:
    item = re.search(rf'<li class="bracket-match [a-z]+" data-match-id="{match_id}".*?</li>', fragment, re.S)
    assert item, f"no match {match_id} in the column"
    return [
        (team, score, "winner" in classes)
        for classes, team, score in re.findall(
            r'<span class="(slot[^"]*)"><span class="team">([^<]*)</span> <span class="score">([^<]*)</span>',
            item.group(0),
        )
    ]


async def test_the_bracket_page_renders_the_results(stack: ApiStack) -> None:
    tid, ids = await _tournament(stack)

    response = await stack.client.get(f"/tournaments/{tid}")

    assert response.status_code == 200
    page = response.text
    bracket = page[page.index('id="bracket"') : page.index("Schedule and results")]
    rounds = re.findall(r'data-round="([^"]+)"', bracket)
    assert rounds == ["Semifinal", "Grand final"]
    semis, final = _column(bracket, "Semifinal"), _column(bracket, "Grand final")
    # FaZe holds the final's upper slot, so its semifinal (sf2) is drawn above sf1.
    assert re.findall(r'data-match-id="([^"]+)"', semis) == [ids["sf2"], ids["sf1"]]
    assert _slots(semis, ids["sf2"]) == [("NAVI", "0", False), ("FaZe", "2", True)]
    assert _slots(semis, ids["sf1"]) == [("Vitality", "2", True), ("Spirit", "1", False)]
    assert f'data-advances-to="{ids["final"]}"' in semis
    assert _slots(final, ids["final"]) == [("FaZe", "1", False), ("Vitality", "3", True)]


async def test_the_bracket_api(stack: ApiStack) -> None:
    tid, ids = await _tournament(stack)
    body: dict[str, Any] = await stack.query(f"/api/v1/tournaments/{tid}/bracket")
    assert [r["name"] for r in body["rounds"]] == ["Semifinal", "Grand final"]
    semis, final = body["rounds"][0]["matches"], body["rounds"][1]["matches"]
    assert [m["match_id"] for m in semis] == [ids["sf2"], ids["sf1"]]
    assert {m["match_id"]: m["advances_to"] for m in semis} == {
        ids["sf1"]: ids["final"],
        ids["sf2"]: ids["final"],
    }
    assert final[0]["winner"] == "Vitality" and final[0]["advances_to"] is None
    assert final[0]["teams"] == [
        {"team": "FaZe", "score": 1, "won": False},
        {"team": "Vitality", "score": 3, "won": True},
    ]
    missing = await stack.client.get("/api/v1/tournaments/nope/bracket")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )
