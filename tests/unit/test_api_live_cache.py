"""The live listing's per-process page cache (producers.listings.StreamReader): each page read once per
``live_cache_s``, concurrent misses sharing one read, a ``fresh`` read for clients naming positions."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from producers.listings import StreamReader
from projections.queries.streams import LiveRows


class CountingReader(StreamReader):
    """A reader whose live read counts its calls and returns ``limit`` rows (no Redis, no PostgreSQL)."""

    def __init__(self, live_cache_s: float = 60.0) -> None:
        super().__init__(None, None, prefix="", live_cache_s=live_cache_s)  # type: ignore[arg-type]
        self.reads = 0

    async def live_from(self, offset: int, limit: int) -> LiveRows:
        self.reads += 1
        await asyncio.sleep(0.01)  # a round trip, so concurrent callers overlap
        return [_row(offset + i, self.reads) for i in range(limit)], "redis"


def _row(i: int, viewers: int) -> dict[str, Any]:
    return {
        "stream_id": f"s-{i}",
        "channel_id": f"c-{i}",
        "title": "t",
        "game": "g",
        "started_at": datetime(2025, 6, 1, 18, tzinfo=UTC),
        "viewers": viewers,
        "peak_viewers": viewers,
        "average_viewers": 0.0,
    }


async def test_a_page_is_read_once_and_served_as_the_listing_json() -> None:
    reader = CountingReader()
    body = json.loads(await reader.live_json(limit=2, cursor=None))
    rows, next_cursor, source = await reader.live(limit=2, cursor=None)
    assert reader.reads == 1
    assert body["items"][0]["started_at"] == "2025-06-01T18:00:00Z"
    assert [i["stream_id"] for i in body["items"]] == [r["stream_id"] for r in rows] == ["s-0", "s-1"]
    assert body["next_cursor"] == next_cursor and body["source"] == source == "redis"


async def test_concurrent_misses_share_one_read() -> None:
    reader = CountingReader()
    bodies = await asyncio.gather(*(reader.live_json(limit=3, cursor=None) for _ in range(20)))
    assert reader.reads == 1 and len(set(bodies)) == 1


async def test_a_client_naming_positions_gets_a_fresh_read_which_others_then_see() -> None:
    reader = CountingReader()
    await reader.live_json(limit=1, cursor=None)
    fresh = json.loads(await reader.live_json(limit=1, cursor=None, fresh=True))
    assert reader.reads == 2 and fresh["items"][0]["viewers"] == 2
    assert json.loads(await reader.live_json(limit=1, cursor=None)) == fresh


async def test_pages_are_cached_apart_and_not_at_all_with_zero_seconds() -> None:
    reader = CountingReader()
    first = await reader.live(limit=2, cursor=None)
    second = await reader.live(limit=2, cursor=first[1])
    assert reader.reads == 2 and second[0][0]["stream_id"] == "s-2"
    uncached = CountingReader(live_cache_s=0)
    for _ in range(3):
        await uncached.live(limit=2, cursor=None)
    assert uncached.reads == 3
