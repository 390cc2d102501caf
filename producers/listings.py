"""The read-model queries as the API serves them: each reader of :mod:`projections.queries` with its
listings paginated by opaque cursors (``producers.pagination``), which hold the sort key of the last
row returned (the live listing's, its offset).

The live listing is the hottest query and its viewer counts move every second anyway, so each
process keeps each of its pages, rows and response body, for ``live_cache_s``: N concurrent viewers
cost one Redis read and one JSON encoding per page per second instead of N, and concurrent misses
share one read. A client that names log positions (``X-Min-Position``) asks for a ``fresh`` page:
it is read after the wait for those positions, never served from an older copy.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from infra.redis import RedisClient
from producers.models.streams import LivePage
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


@dataclass(frozen=True, slots=True)
class _LivePage:
    """One page of the live listing as read, with its response body encoded once."""

    listing: LiveListing
    body: bytes
    expires_at: float


class StreamReader(StreamQueries):
    """Streams; the filtered and the live listings by cursor (live pages cached, see the module)."""

    MAX_CACHED_PAGES = 256  # (offset, limit) pairs; a client walking odd pages cannot grow it further

    def __init__(
        self, pool: AsyncConnectionPool, redis: RedisClient, *, prefix: str, live_cache_s: float = 1.0
    ) -> None:
        super().__init__(pool, redis, prefix=prefix)
        self._live_cache_s = live_cache_s  # 0 disables the cache
        self._live_pages: dict[tuple[int, int], _LivePage] = {}
        self._live_reads: dict[tuple[int, int], asyncio.Task[_LivePage]] = {}

    async def streams(
        self, *, state: str | None, channel: str | None, match: str | None, limit: int, cursor: str | None
    ) -> Page:
        rows = await self.streams_after(
            state=state, channel=channel, match=match, limit=limit, after=_after(cursor)
        )
        return _page(rows, limit, "created_at", "stream_id")

    async def live(self, *, limit: int, cursor: str | None, fresh: bool = False) -> LiveListing:
        """The rows, the next page's cursor and their source ("redis" or "postgres")."""
        return (await self._live_page(limit, cursor, fresh)).listing

    async def live_json(self, *, limit: int, cursor: str | None, fresh: bool = False) -> bytes:
        """The same page as the API's JSON body (:class:`~producers.models.streams.LivePage`)."""
        return (await self._live_page(limit, cursor, fresh)).body

    async def _live_page(self, limit: int, cursor: str | None, fresh: bool) -> _LivePage:
        key = (decode_cursor(cursor, (int,))[0] if cursor else 0, limit)
        cached = self._live_pages.get(key)
        if not fresh and cached is not None and cached.expires_at > time.monotonic():
            return cached
        if fresh:  # a read already in flight may have started before the positions were reached
            return self._keep(key, await self._read_live_page(*key))
        read = self._live_reads.get(key)
        if read is None:
            read = asyncio.create_task(self._read_live_page(*key))
            self._live_reads[key] = read
            read.add_done_callback(lambda _: self._live_reads.pop(key, None))
        # Shielded: one waiter cancelled (a client gone) must not cancel the others' read.
        return self._keep(key, await asyncio.shield(read))

    async def _read_live_page(self, offset: int, limit: int) -> _LivePage:
        rows, source = await self.live_from(offset, limit)
        next_cursor = encode_cursor(offset + limit) if len(rows) == limit else None
        body = LivePage.model_validate(
            {"items": rows, "next_cursor": next_cursor, "source": source}
        ).model_dump_json()
        return _LivePage((rows, next_cursor, source), body.encode(), time.monotonic() + self._live_cache_s)

    def _keep(self, key: tuple[int, int], page: _LivePage) -> _LivePage:
        if self._live_cache_s > 0:
            if len(self._live_pages) >= self.MAX_CACHED_PAGES:
                self._live_pages.clear()
            self._live_pages[key] = page
        return page


class TournamentReader(TournamentQueries):
    """Tournaments and matches; tournaments listed by cursor."""

    async def tournaments(self, *, game: str | None, limit: int, cursor: str | None) -> Page:
        rows = await self.tournaments_after(game=game, limit=limit, after=_after(cursor))
        return _page(rows, limit, "starts_at", "tournament_id")
