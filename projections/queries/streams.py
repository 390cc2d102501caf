"""Streams in the read model, and the live listing (Redis first, PostgreSQL when Redis is down)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from infra.redis import DRIVER_ERRORS, RedisClient
from projections.queries import Reader
from projections.redis_keys import LiveKeys

__all__ = ["LiveRows", "StreamQueries", "browse_filters"]

log = logging.getLogger(__name__)

LiveRows = tuple[list[dict[str, Any]], str]  # the rows and where they came from: "redis" or "postgres"
_LIVE_FIELDS = ("channel_id", "title", "game", "started_at", "peak_viewers", "average_viewers")

_STREAM_COLUMNS = (
    "stream_id, channel_id, owner_id, title, game, tags, language, match_id, role, state, scheduled_start,"
    " started_at, ended_at, end_reason, created_at, updated_at, vod_deleted_at, vod_deleted_reason"
)


class StreamQueries(Reader):
    """Streams by id, by filters (newest first), by match, and the live listing."""

    def __init__(self, pool: AsyncConnectionPool, redis: RedisClient, *, prefix: str) -> None:
        super().__init__(pool)
        self._redis = redis
        self._keys = LiveKeys(prefix)

    async def stream(self, stream_id: str) -> dict[str, Any] | None:
        return await self._one(f"SELECT {_STREAM_COLUMNS} FROM streams WHERE stream_id = %s", (stream_id,))

    async def streams_after(
        self,
        *,
        state: str | None,
        channel: str | None,
        match: str | None,
        limit: int,
        after: tuple[datetime, str] | None,
        game: str | None = None,
        tag: str | None = None,
        language: str | None = None,
    ) -> list[dict[str, Any]]:
        """Streams, newest first, after ``(created_at, stream_id)``; ``game``, ``tag`` and ``language``
        as :func:`browse_filters` reads them."""
        where = ["created_at IS NOT NULL"]
        params: list[Any] = []
        browse_filters(where, params, game=game, tag=tag, language=language)
        if state:
            where.append("state = %s")
            params.append(state)
        if channel:
            where.append("channel_id IN (SELECT channel_id FROM channels WHERE slug = %s UNION SELECT %s)")
            params += [channel, channel]
        if match:
            where.append("match_id = %s")
            params.append(match)
        if after:
            where.append("(created_at, stream_id) < (%s, %s)")
            params += list(after)
        return await self._all(
            f"SELECT {_STREAM_COLUMNS} FROM streams WHERE "
            + " AND ".join(where)
            + " ORDER BY created_at DESC, stream_id DESC LIMIT %s",
            [*params, limit],
        )

    async def of_match(self, match_id: str) -> list[dict[str, Any]]:
        return await self._all(
            f"SELECT {_STREAM_COLUMNS} FROM streams WHERE match_id = %s ORDER BY role, created_at",
            (match_id,),
        )

    async def current_for_channel(self, channel_id: str) -> dict[str, Any] | None:
        """The stream an ingest connection for the channel belongs to: live, else scheduled, else created."""
        return await self._one(
            f"SELECT {_STREAM_COLUMNS} FROM streams WHERE channel_id = %s AND state <> 'ended'"
            " ORDER BY CASE state WHEN 'live' THEN 0 WHEN 'scheduled' THEN 1 ELSE 2 END,"
            " scheduled_start NULLS LAST, created_at DESC NULLS LAST LIMIT 1",
            (channel_id,),
        )

    async def live_from(self, offset: int, limit: int) -> LiveRows:
        """``limit`` live streams from ``offset``: by viewers (Redis), or by start time from
        PostgreSQL when Redis fails."""
        try:
            return await self._live_from_redis(offset, limit), "redis"
        except DRIVER_ERRORS as e:
            log.warning("live listing falls back to PostgreSQL: %s", e)
        rows = await self._all(
            f"SELECT {_STREAM_COLUMNS} FROM streams WHERE state = 'live'"
            " ORDER BY started_at DESC, stream_id LIMIT %s OFFSET %s",
            (limit, offset),
        )
        for row in rows:
            row["viewers"] = 0
        return rows, "postgres"

    async def live_filtered(
        self,
        *,
        game: str | None,
        tag: str | None,
        language: str | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[dict[str, Any]]:
        """Live streams of a game, tag or language, latest start first, after ``(started_at,
        stream_id)``: selected by PostgreSQL (Redis keeps no tags or languages), counted from Redis
        (zeros when Redis fails: a filtered page must not fail on its counts)."""
        where = ["state = 'live'", "started_at IS NOT NULL"]
        params: list[Any] = []
        browse_filters(where, params, game=game, tag=tag, language=language)
        if after:
            where.append("(started_at, stream_id) < (%s, %s)")
            params += list(after)
        rows = await self._all(
            "SELECT stream_id, channel_id, title, game, tags, language, started_at FROM streams WHERE "
            + " AND ".join(where)
            + " ORDER BY started_at DESC, stream_id DESC LIMIT %s",
            [*params, limit],
        )
        counts = await self._live_counts([row["stream_id"] for row in rows])
        return [{**row, **counts.get(row["stream_id"], _NO_COUNTS)} for row in rows]

    async def _live_counts(self, stream_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not stream_ids:
            return {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream_id in stream_ids:
                    pipe.zscore(self._keys.live, stream_id)
                    pipe.hmget(self._keys.stream(stream_id), ("peak_viewers", "average_viewers"))
                values = await pipe.execute()
        except DRIVER_ERRORS as e:
            log.warning("live counts unavailable for a filtered listing, showing 0: %s", e)
            return {}
        counts = {}
        for index, stream_id in enumerate(stream_ids):
            score, (peak, average) = values[2 * index], values[2 * index + 1]
            viewers = int(score or 0)
            counts[stream_id] = {
                "viewers": viewers,
                "peak_viewers": int(peak or viewers),
                "average_viewers": float(average or 0.0),
            }
        return counts

    async def browse_facets(self) -> dict[str, list[tuple[str, int]]]:
        """The games, tags and languages of live and scheduled streams, each with its number of
        streams, most streams first (what a browse page offers as filters)."""
        rows = await self._all(
            "WITH open AS (SELECT game, tags, lower(language) AS language FROM streams"
            " WHERE state IN ('live', 'scheduled') AND created_at IS NOT NULL)"
            " SELECT 'game' AS facet, game AS value, count(*) AS n FROM open WHERE game <> '' GROUP BY game"
            " UNION ALL SELECT 'tag', tag, count(*) FROM open, unnest(tags) AS tag GROUP BY tag"
            " UNION ALL SELECT 'language', language, count(*) FROM open GROUP BY language"
            " ORDER BY n DESC, value"
        )
        facets: dict[str, list[tuple[str, int]]] = {"game": [], "tag": [], "language": []}
        for row in rows:
            facets[row["facet"]].append((row["value"], int(row["n"])))
        return facets

    async def _live_from_redis(self, offset: int, limit: int) -> list[dict[str, Any]]:
        members: list[tuple[str, float]] = await self._redis.zrevrange(  # type: ignore[assignment]
            self._keys.live, offset, offset + limit - 1, withscores=True
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream_id, _ in members:
                pipe.hmget(self._keys.stream(stream_id), _LIVE_FIELDS)
            values = await pipe.execute()
        hashes = [dict(zip(_LIVE_FIELDS, row, strict=True)) for row in values]
        return [
            _live_row(stream_id, score, fields)
            for (stream_id, score), fields in zip(members, hashes, strict=True)
        ]


_NO_COUNTS: dict[str, Any] = {"viewers": 0, "peak_viewers": 0, "average_viewers": 0.0}


def browse_filters(
    where: list[str], params: list[Any], *, game: str | None, tag: str | None, language: str | None
) -> None:
    """Add the browse filters of a streams query: the exact game, one of its tags, its language
    (case-insensitive, as ``en`` and ``EN`` name the same language)."""
    if game:
        where.append("game = %s")
        params.append(game)
    if tag:
        where.append("tags @> ARRAY[%s]::text[]")
        params.append(tag)
    if language:
        where.append("lower(language) = lower(%s)")
        params.append(language)


def _live_row(stream_id: str, score: float, fields: dict[str, str | None]) -> dict[str, Any]:
    started = fields.get("started_at")
    return {
        "stream_id": stream_id,
        "channel_id": fields.get("channel_id") or "",
        "title": fields.get("title") or "",
        "game": fields.get("game") or "",
        "started_at": datetime.fromisoformat(started) if started else None,
        "viewers": int(score),
        "peak_viewers": int(fields.get("peak_viewers") or score),
        "average_viewers": float(fields.get("average_viewers") or 0.0),
    }
