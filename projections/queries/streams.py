"""Streams in the read model, and the live listing (Redis first, PostgreSQL when Redis is down)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from infra.redis import DRIVER_ERRORS, RedisClient
from projections.queries import Reader
from projections.redis_keys import LiveKeys

__all__ = ["LiveRows", "StreamQueries"]

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
    ) -> list[dict[str, Any]]:
        """Streams, newest first, after ``(created_at, stream_id)``."""
        where = ["created_at IS NOT NULL"]
        params: list[Any] = []
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
