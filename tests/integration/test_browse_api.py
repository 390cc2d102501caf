"""Browsing live streams and matches by game, tag and language over the real stack (projector and
lifecycle agent running): the filters of GET /api/v1/streams/live, /api/v1/streams and
/api/v1/matches, a filtered live query never answered from the cached unfiltered page, and the
/browse page with its facets as links."""

from __future__ import annotations

import html
import uuid
from typing import Any

import pytest

from events.ingest import IngestConnected, IngestProtocol
from producers.pagination import encode_cursor
from tests.integration.test_api_support import ApiStack, User, api_stack, stream_state

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


def _word() -> str:
    return "g" + uuid.uuid4().hex[:10]


async def _channel(stack: ApiStack) -> tuple[User, dict[str, Any]]:
    owner = await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"br-{uuid.uuid4().hex[:12]}", "display_name": "Browse"}
    )
    return owner, channel


async def _live(stack: ApiStack, **fields: Any) -> str:
    owner, channel = await _channel(stack)
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Live", **fields}
    )
    stream_id = str(created["stream_id"])
    await stack.publisher.publish(
        IngestConnected(
            stream_id=stream_id, session_id=uuid.uuid4().hex, protocol=IngestProtocol.RTMP, node="t"
        )
    )
    await stream_state(stack, stream_id, "live")
    return stream_id


async def _get(stack: ApiStack, url: str, **params: Any) -> dict[str, Any]:
    response = await stack.client.get(url, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _ids(page: dict[str, Any], key: str = "stream_id") -> list[str]:
    return [item[key] for item in page["items"]]


async def test_live_streams_by_game_tag_and_language(api_stack: ApiStack) -> None:
    game, other = _word(), _word()
    lan = await _live(api_stack, game=game, tags=["lan", "finals"], language="en")
    german = await _live(api_stack, game=game, tags=["casual"], language="de")
    elsewhere = await _live(api_stack, game=other, tags=["lan"], language="en")
    # The unfiltered page is read (and cached) first: a filtered query must not be answered from it.
    everything = await _get(api_stack, "/api/v1/streams/live", limit=100)
    assert {lan, german, elsewhere} <= set(_ids(everything))

    by_game = await _get(api_stack, "/api/v1/streams/live", game=game, limit=100)
    assert set(_ids(by_game)) == {lan, german} and by_game["source"] == "postgres"
    assert all(item["viewers"] >= 0 and item["game"] == game for item in by_game["items"])
    assert _ids(await _get(api_stack, "/api/v1/streams/live", game=game, tag="lan")) == [lan]
    assert _ids(await _get(api_stack, "/api/v1/streams/live", game=game, language="DE")) == [german]
    assert _ids(await _get(api_stack, "/api/v1/streams/live", game=game, tag="nope")) == []

    first = await _get(api_stack, "/api/v1/streams/live", game=game, limit=1)
    second = await _get(api_stack, "/api/v1/streams/live", game=game, limit=1, cursor=first["next_cursor"])
    assert sorted(_ids(first) + _ids(second)) == sorted([lan, german])
    last = await _get(api_stack, "/api/v1/streams/live", game=game, limit=1, cursor=second["next_cursor"])
    assert last["items"] == [] and last["next_cursor"] is None

    listed = await _get(api_stack, "/api/v1/streams", state="live", game=game, tag="finals")
    assert _ids(listed) == [lan]
    assert _ids(await _get(api_stack, "/api/v1/streams", language="de", game=game)) == [german]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("game=", 422),
        ("tag=" + "x" * 26, 422),
        ("language=english!", 422),
        ("game=a%00b", 422),
        ("game=CS2&limit=0", 422),
        ("game=CS2&cursor=" + encode_cursor(20), 400),  # an unfiltered page's cursor
    ],
)
async def test_bad_filters_are_refused_as_problems(api_stack: ApiStack, query: str, status: int) -> None:
    response = await api_stack.client.get(f"/api/v1/streams/live?{query}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_matches_by_game_tag_and_language_soonest_first(api_stack: ApiStack) -> None:
    game = _word()
    organizer, channel = await _channel(api_stack)
    created = await api_stack.command(
        "POST",
        "/api/v1/tournaments",
        organizer,
        {"name": "Browse Cup", "game": game, "starts_at": "2030-06-14T10:00:00Z"},
        expect=201,
    )
    tid = created["tournament_id"]
    await api_stack.query(f"/api/v1/tournaments/{tid}", after=created["positions"])
    later, sooner = [
        await api_stack.command(
            "POST",
            f"/api/v1/tournaments/{tid}/matches",
            organizer,
            {"teams": ["A", "B"], "scheduled_start": f"2030-06-{day}T17:00:00Z", "round_name": "Group"},
            expect=201,
        )
        for day in (16, 15)
    ]
    # The stream names a match, which the API checks in the read model: wait for it there.
    await api_stack.query(f"/api/v1/matches/{later['match_id']}", after=later["positions"])
    stream = await api_stack.command(
        "POST",
        "/api/v1/streams",
        organizer,
        {
            "channel_id": channel["channel_id"],
            "title": "Cast",
            "match_id": later["match_id"],
            "tags": ["lan"],
            "language": "fr",
        },
    )
    positions = [*later["positions"], *sooner["positions"], *stream["positions"]]
    page = await api_stack.query(f"/api/v1/matches?game={game}&state=scheduled", after=positions)
    assert _ids(page, "match_id") == [sooner["match_id"], later["match_id"]]
    assert page["items"][0]["tournament_name"] == "Browse Cup" and page["items"][0]["game"] == game
    assert _ids(await _get(api_stack, "/api/v1/matches", game=game, tag="lan"), "match_id") == [
        later["match_id"]
    ]
    assert _ids(await _get(api_stack, "/api/v1/matches", game=game, language="FR"), "match_id") == [
        later["match_id"]
    ]
    after = await _get(api_stack, "/api/v1/matches", game=game, starts_after="2030-06-16T00:00:00Z")
    assert _ids(after, "match_id") == [later["match_id"]]
    first = await _get(api_stack, "/api/v1/matches", game=game, limit=1)
    second = await _get(api_stack, "/api/v1/matches", game=game, limit=1, cursor=first["next_cursor"])
    assert _ids(first, "match_id") + _ids(second, "match_id") == [sooner["match_id"], later["match_id"]]
    assert _ids(await _get(api_stack, "/api/v1/matches", game=game, state="live"), "match_id") == []
    bad = await api_stack.client.get("/api/v1/matches?starts_after=2030-06-16T00:00:00")  # no zone
    assert bad.status_code == 422


async def test_the_browse_page_filters_by_facet_links(api_stack: ApiStack) -> None:
    game = _word()
    shown = await _live(api_stack, game=game, tags=["bootcamp"], language="pt")
    hidden = await _live(api_stack, game=_word(), tags=["bootcamp"], language="pt")

    everything = await api_stack.client.get("/browse")
    assert everything.status_code == 200 and "Content-Security-Policy" in everything.headers
    link = f'href="/browse?game={game}"'
    assert link in everything.text  # the game is offered as a facet link
    filtered = await api_stack.client.get(f"/browse?game={game}")
    page = filtered.text
    assert filtered.status_code == 200
    assert f'data-stream-id="{shown}"' in page and f'data-stream-id="{hidden}"' not in page
    assert f'<a href="/browse" aria-current="true" class="selected">{game}</a>' in page  # click: clear
    assert html.escape(f"/browse?game={game}&tag=bootcamp") in page  # the tag link keeps the game
    both = await api_stack.client.get(f"/browse?game={game}&tag=bootcamp&language=PT")
    assert f'data-stream-id="{shown}"' in both.text
    assert (await api_stack.client.get("/browse?language=english!")).status_code == 404
    assert 'href="/browse"' in (await api_stack.client.get("/")).text  # the nav leads there
