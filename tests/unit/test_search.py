"""Search as the API serves it: where each kind of hit links, and which queries are refused (422)
before reaching PostgreSQL."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from producers.routes.search import SearchText, hit_url


def test_hits_link_to_their_pages() -> None:
    assert (
        hit_url({"kind": "channel", "slug": "team-liquid", "tournament_id": None}) == "/channels/team-liquid"
    )
    assert hit_url({"kind": "tournament", "slug": None, "tournament_id": "t1"}) == "/tournaments/t1"
    assert hit_url({"kind": "team", "slug": None, "tournament_id": "t2"}) == "/tournaments/t2"


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "a\x00b", "x" * 201])
def test_queries_without_words_or_too_long_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(SearchText).validate_python(text)


def test_whitespace_is_folded() -> None:
    assert TypeAdapter(SearchText).validate_python("  team   liquid ") == "team liquid"
