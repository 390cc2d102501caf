"""Tournaments and matches in the read model; each match's combined audience from Redis."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from infra.redis import DRIVER_ERRORS, RedisClient
from projections.queries import Reader
from projections.redis_keys import MatchViewerKeys

__all__ = ["TournamentQueries", "match_audiences"]

log = logging.getLogger(__name__)


class TournamentQueries(Reader):
    """Tournaments (newest first) and their matches."""

    async def tournament(self, tournament_id: str) -> dict[str, Any] | None:
        return await self._one("SELECT * FROM tournaments WHERE tournament_id = %s", (tournament_id,))

    async def tournaments_after(
        self, *, game: str | None, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """Tournaments, latest start first, after ``(starts_at, tournament_id)``."""
        where = ["TRUE"]
        params: list[Any] = []
        if game:
            where.append("game = %s")
            params.append(game)
        if after:
            where.append("(starts_at, tournament_id) < (%s, %s)")
            params += list(after)
        return await self._all(
            "SELECT * FROM tournaments WHERE "
            + " AND ".join(where)
            + " ORDER BY starts_at DESC, tournament_id DESC LIMIT %s",
            [*params, limit],
        )

    async def matches(self, tournament_id: str) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT * FROM matches WHERE tournament_id = %s ORDER BY scheduled_start NULLS LAST, match_id",
            (tournament_id,),
        )

    async def matches_of(self, tournament_ids: list[str]) -> list[dict[str, Any]]:
        """The matches of several tournaments in one query, each tournament's in ``matches`` order."""
        return await self._all(
            "SELECT * FROM matches WHERE tournament_id = ANY(%s)"
            " ORDER BY tournament_id, scheduled_start NULLS LAST, match_id",
            (tournament_ids,),
        )

    async def match(self, match_id: str) -> dict[str, Any] | None:
        return await self._one("SELECT * FROM matches WHERE match_id = %s", (match_id,))


async def match_audiences(redis: RedisClient, prefix: str, match_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each match's combined audience from Redis (``redis.match_viewers``): ``viewers``,
    ``peak_viewers``, ``average_viewers``; zeros for a match never counted, and for every match
    when Redis fails (a match page must not fail on its viewer count)."""
    keys = MatchViewerKeys(prefix)
    zero: dict[str, Any] = {"viewers": 0, "peak_viewers": 0, "average_viewers": 0.0}
    if not match_ids:
        return {}
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for match_id in match_ids:
                pipe.hmget(keys.match(match_id), ("viewers", "peak", "average"))
            values = await pipe.execute()
    except DRIVER_ERRORS as e:
        log.warning("match audiences unavailable, showing 0: %s", e)
        return {match_id: dict(zero) for match_id in match_ids}
    return {
        match_id: {
            "viewers": int(viewers or 0),
            "peak_viewers": int(peak or 0),
            "average_viewers": float(average or 0.0),
        }
        for match_id, (viewers, peak, average) in zip(match_ids, values, strict=True)
    }
