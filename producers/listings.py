"""The read-model queries as the API serves them: each reader of :mod:`projections.queries` with its
listings paginated by opaque cursors (``producers.pagination``), which hold the sort key of the last
row returned (the live listing's, its offset).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from producers.pagination import decode_cursor, encode_cursor, sort_key
from projections.queries.catalog import CatalogQueries
from projections.queries.polls import PollQueries
from projections.queries.streams import StreamQueries
from projections.queries.tournaments import TournamentQueries

__all__ = ["CatalogReader", "LiveListing", "Page", "PollReader", "StreamReader", "TournamentReader"]

Page = tuple[list[dict[str, Any]], str | None]  # the rows and the cursor of the next page
LiveListing = tuple[list[dict[str, Any]], str | None, str]  # ... and where they came from


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    """The ``(time, id)`` sort key a cursor holds; None (the first page) without one."""
    return sort_key(cursor, (datetime, str))


def _page(rows: list[dict[str, Any]], limit: int, *keys: str) -> Page:
    """The rows and the cursor after the last one, when the page came back full (there may be more)."""
    return rows, encode_cursor(*(rows[-1][k] for k in keys)) if len(rows) == limit else None


class CatalogReader(CatalogQueries):
    """Users, channels and moderators; channels listed by cursor."""

    async def channels(self, *, owner: str | None, limit: int, cursor: str | None) -> Page:
        rows = await self.channels_after(owner=owner, limit=limit, after=_after(cursor))
        return _page(rows, limit, "created_at", "channel_id")


class PollReader(PollQueries):
    """Polls; a stream's polls listed by cursor."""

    async def of_stream(self, stream_id: str, *, limit: int, cursor: str | None) -> Page:
        rows = await self.of_stream_after(stream_id, limit=limit, after=_after(cursor))
        return _page(rows, limit, "opened_at", "poll_id")


class StreamReader(StreamQueries):
    """Streams; the filtered and the live listings by cursor."""

    async def streams(
        self, *, state: str | None, channel: str | None, match: str | None, limit: int, cursor: str | None
    ) -> Page:
        rows = await self.streams_after(
            state=state, channel=channel, match=match, limit=limit, after=_after(cursor)
        )
        return _page(rows, limit, "created_at", "stream_id")

    async def live(self, *, limit: int, cursor: str | None) -> LiveListing:
        offset = decode_cursor(cursor, (int,))[0] if cursor else 0
        rows, source = await self.live_from(offset, limit)
        return rows, encode_cursor(offset + limit) if len(rows) == limit else None, source


class TournamentReader(TournamentQueries):
    """Tournaments and matches; tournaments listed by cursor."""

    async def tournaments(self, *, game: str | None, limit: int, cursor: str | None) -> Page:
        rows = await self.tournaments_after(game=game, limit=limit, after=_after(cursor))
        return _page(rows, limit, "starts_at", "tournament_id")
