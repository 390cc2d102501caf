"""Browsing: the live listing's fast path leaves every filtered query to the FastAPI route (which never
answers it from the cached unfiltered page), and the browse page's facets are links that toggle one
value and keep the others."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from producers.routes.streams import _plain_live_query
from web.finding import browse_url, facet_links


@pytest.mark.parametrize(
    "query",
    [b"game=CS2", b"tag=lan", b"language=en", b"limit=5&game=CS2", b"game=CS2&limit=5&cursor=abc"],
)
def test_a_filtered_live_query_is_not_the_fast_path(query: bytes) -> None:
    assert _plain_live_query(query) is None


def test_the_plain_live_query_still_is() -> None:
    assert _plain_live_query(b"") == (20, None)
    assert _plain_live_query(b"limit=5&cursor=abc") == (5, "abc")


def _query(href: str) -> dict[str, list[str]]:
    parts = urlsplit(href)
    assert parts.path == "/browse"
    return parse_qs(parts.query)


def test_facet_links_select_a_value_and_keep_the_other_facets() -> None:
    links = facet_links({"tag": "lan"}, "game", [("CS2", 3), ("Dota 2 & co", 1)])
    assert [(link["value"], link["count"], link["selected"]) for link in links] == [
        ("CS2", 3, False),
        ("Dota 2 & co", 1, False),
    ]
    assert _query(links[1]["href"]) == {"game": ["Dota 2 & co"], "tag": ["lan"]}


def test_a_selected_value_links_to_its_removal() -> None:
    (link,) = facet_links({"game": "CS2", "language": "en"}, "game", [("CS2", 3)])
    assert link["selected"] and _query(link["href"]) == {"language": ["en"]}


def test_browse_urls_are_canonical() -> None:
    assert browse_url({}) == "/browse"
    assert browse_url({"language": "en", "game": "CS2", "tag": ""}) == "/browse?game=CS2&language=en"
