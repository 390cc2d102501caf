"""Search: channels, tournaments and teams by the words of their names (PostgreSQL full-text search)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from producers.deps import Cursor, Limit, ReadYourWrites, ServicesDep
from producers.models.search import SearchHit, SearchPage
from producers.pagination import InvalidCursor, decode_cursor, encode_cursor
from producers.problems import documented
from producers.routes import API_PREFIX
from projections.queries.search import SEARCH_KINDS, SearchKind

router = APIRouter(prefix=API_PREFIX, tags=["search"], dependencies=[ReadYourWrites])
MAX_QUERY = 200
MAX_OFFSET = 1000  # deep pages of a ranked search are never read: the results end there


def _words(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise ValueError("the query has no words")
    return text


SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_QUERY,
        pattern=r"^[^\x00]*$",
        description='Words to find (web search syntax: "phrase", or, -word).',
    ),
    AfterValidator(_words),
]


@router.get("/search", response_model=SearchPage, responses=documented(400, 422))
async def search(
    services: ServicesDep,
    q: SearchText,
    kind: Annotated[SearchKind | None, Query(description="Only channels, tournaments or teams.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> SearchPage:
    """Channels, tournaments and teams whose names match ``q``, most relevant first (cursor-paginated)."""
    offset = decode_cursor(cursor, (int,))[0] if cursor else 0
    if offset >= MAX_OFFSET:  # this API never hands out such a cursor
        raise InvalidCursor(f"search results end at {MAX_OFFSET}")
    kinds = (kind,) if kind else SEARCH_KINDS
    rows = await services.catalog.search(q, kinds=kinds, limit=limit, offset=offset)
    more = len(rows) == limit and offset + limit < MAX_OFFSET
    return SearchPage(
        query=q,
        items=[SearchHit.model_validate({**row, "url": hit_url(row)}) for row in rows],
        next_cursor=encode_cursor(offset + limit) if more else None,
    )


def hit_url(row: dict[str, Any]) -> str:
    """The site page of a hit: the channel, the tournament, a team's latest tournament."""
    if row["kind"] == "channel":
        return f"/channels/{row['slug']}"
    return f"/tournaments/{row['tournament_id']}"
