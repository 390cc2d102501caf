"""Search (GET /api/v1/search and the /search page) over the real read model: a channel created through
the API is found by a word of its name as soon as the projector applied it (polled, bounded), a word in
no name finds nothing, tournaments and teams are found too, results page without overlap, and bad
parameters are refused with problem+json."""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from infra.settings import Settings
from tests.integration.test_api_support import ApiStack, User, eventually, open_api_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiStack]:
    # Search needs no lifecycle decisions: the stack without the Faust worker.
    async with open_api_stack(settings, tmp_path_factory.mktemp("search"), lifecycle=False) as opened:
        await read_model_ready(opened)
        yield opened


async def read_model_ready(stack: ApiStack) -> None:
    """Until the projector created the read model (it migrates its schema as it starts, in parallel
    with the API; the Faust worker's start usually hides that wait)."""

    async def ready() -> bool:
        return (await stack.client.get("/api/v1/search", params={"q": "ready"})).status_code == 200

    await eventually(ready, timeout_s=60)


def _word() -> str:
    """A word no other name holds (letters only: the 'simple' parser keeps it one lexeme)."""
    return "zq" + "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


async def _search(stack: ApiStack, **params: Any) -> dict[str, Any]:
    response = await stack.client.get("/api/v1/search", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _channel(stack: ApiStack, owner: User, display_name: str, **extra: Any) -> dict[str, Any]:
    body = {"slug": f"s-{uuid.uuid4().hex[:12]}", "display_name": display_name, **extra}
    created = await stack.command("POST", "/api/v1/channels", owner, body, expect=201)
    return {**created, "slug": body["slug"]}


async def test_a_new_channel_is_found_by_a_word_of_its_name(stack: ApiStack) -> None:
    word = _word()
    owner = await stack.register()
    channel = await _channel(stack, owner, f"The {word.capitalize()} Gaming")

    async def found() -> list[dict[str, Any]]:
        return [h for h in (await _search(stack, q=word))["items"] if h["id"] == channel["channel_id"]]

    (hit,) = await eventually(found, timeout_s=30)  # bounded wait for the projector, no timing asserted
    assert hit["kind"] == "channel" and hit["name"] == f"The {word.capitalize()} Gaming"
    assert hit["url"] == f"/channels/{channel['slug']}" and hit["rank"] > 0
    assert (await _search(stack, q=word.upper()))["items"][0]["id"] == channel["channel_id"]
    assert (await _search(stack, q=_word()))["items"] == []  # a word in no name finds nothing
    assert (await _search(stack, q=f"{word} -gaming"))["items"] == []  # web search syntax: excluded


async def test_read_your_writes_finds_it_at_once(stack: ApiStack) -> None:
    word = _word()
    owner = await stack.register()
    channel = await _channel(stack, owner, f"{word} tv")
    page = await stack.query(f"/api/v1/search?q={word}", after=channel["positions"])
    assert [h["id"] for h in page["items"]] == [channel["channel_id"]]


async def test_tournaments_and_teams_are_found_and_names_rank_first(stack: ApiStack) -> None:
    word = _word()
    organizer = await stack.register()
    await _channel(stack, organizer, "Organizer")
    described = await _channel(stack, organizer, "Other", description=f"we cast {word} games")
    tournament = await stack.command(
        "POST",
        "/api/v1/tournaments",
        organizer,
        {"name": f"{word} Masters", "game": "CS2", "starts_at": "2030-06-14T15:00:00Z"},
        expect=201,
    )
    tid = tournament["tournament_id"]
    await stack.query(f"/api/v1/tournaments/{tid}", after=tournament["positions"])
    team = f"Team {word}"
    match = await stack.command(
        "POST",
        f"/api/v1/tournaments/{tid}/matches",
        organizer,
        {"teams": [team, "Polar Bears"], "scheduled_start": "2030-06-14T17:00:00Z"},
        expect=201,
    )
    page = await stack.query(f"/api/v1/search?q={word}", after=[*match["positions"], *described["positions"]])
    kinds = {h["kind"]: h for h in page["items"]}
    assert set(kinds) == {"channel", "tournament", "team"}
    assert kinds["tournament"]["id"] == tid and kinds["tournament"]["url"] == f"/tournaments/{tid}"
    assert kinds["team"]["id"] == team and kinds["team"]["url"] == f"/tournaments/{tid}"
    assert kinds["team"]["detail"] == "1 match"
    assert page["items"][-1]["kind"] == "channel"  # a description weighs less than a name
    only_teams = await _search(stack, q=word, kind="team")
    assert [h["kind"] for h in only_teams["items"]] == ["team"]
    polar = await _search(stack, q='"polar bears"', kind="team")
    assert "Polar Bears" in [h["id"] for h in polar["items"]]


async def test_results_page_without_overlap(stack: ApiStack) -> None:
    word = _word()
    owner = await stack.register()
    created = [await _channel(stack, owner, f"{word} {n}") for n in range(5)]
    positions = [p for c in created for p in c["positions"]]
    first = await stack.query(f"/api/v1/search?q={word}&limit=2", after=positions)
    seen = [h["id"] for h in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = await _search(stack, q=word, limit=2, cursor=cursor)
        seen += [h["id"] for h in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(c["channel_id"] for c in created)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?q=",
        "?q=%20%20",
        "?q=a%00b",
        f"?q={'x' * 201}",
        "?q=a&limit=0",
        "?q=a&limit=101",
        "?q=a&kind=user",
        "?q=a&cursor=%21%21",
    ],
)
async def test_bad_parameters_are_refused_as_problems(stack: ApiStack, query: str) -> None:
    response = await stack.client.get(f"/api/v1/search{query}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_forged_cursor_is_a_bad_request(stack: ApiStack) -> None:
    from producers.pagination import encode_cursor

    for cursor in ("bm9wZQ", encode_cursor(10**6)):
        response = await stack.client.get("/api/v1/search", params={"q": "a", "cursor": cursor})
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_the_search_page_lists_hits_and_escapes_the_query(stack: ApiStack) -> None:
    word = _word()
    owner = await stack.register()
    channel = await _channel(stack, owner, f"{word} <b>Arena</b>")
    await stack.query(f"/api/v1/search?q={word}", after=channel["positions"])
    page = await stack.client.get("/search", params={"q": word})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in page.headers
    text = page.text
    assert f'href="/channels/{channel["slug"]}"' in text
    assert html.escape(f"{word} <b>Arena</b>") in text and "<b>Arena</b>" not in text
    hostile = await stack.client.get("/search", params={"q": '"><script>alert(1)</script>'})
    assert hostile.status_code == 200 and "<script>alert(1)</script>" not in hostile.text
    assert "Nothing matches" in hostile.text
    assert 'action="/search"' in (await stack.client.get("/")).text  # the search box on every page
