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

_A_STREAM_WHERE = "EXISTS (SELECT 1 FROM streams s WHERE s.match_id = m.match_id AND {})"


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

    async def matches_after(
        self,
        *,
        state: str | None,
        game: str | None,
        tag: str | None,
        language: str | None,
        starts_after: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[dict[str, Any]]:
        """Scheduled matches of every tournament, soonest first, after ``(scheduled_start,
        match_id)``, each with its tournament's name and game. ``game`` is the tournament's; a match
        has a ``tag`` or ``language`` when one of its streams has it."""
        where = ["m.scheduled_start IS NOT NULL"]
        params: list[Any] = []
        for condition, value in (
            ("m.state = %s", state),
            ("t.game = %s", game),
            (_A_STREAM_WHERE.format("s.tags @> ARRAY[%s]::text[]"), tag),
            (_A_STREAM_WHERE.format("lower(s.language) = lower(%s)"), language),
            ("m.scheduled_start >= %s", starts_after),
        ):
            if value:
                where.append(condition)
                params.append(value)
        if after:
            where.append("(m.scheduled_start, m.match_id) > (%s, %s)")
            params += list(after)
        return await self._all(
            "SELECT m.*, t.name AS tournament_name, t.game FROM matches m"
            " JOIN tournaments t USING (tournament_id) WHERE "
            + " AND ".join(where)
            + " ORDER BY m.scheduled_start, m.match_id LIMIT %s",
            [*params, limit],
        )

    async def upcoming_games(self) -> list[tuple[str, int]]:
        """The games of tournaments with scheduled or live matches, with their number of such matches."""
        rows = await self._all(
            "SELECT t.game, count(*) AS n FROM matches m JOIN tournaments t USING (tournament_id)"
            " WHERE m.state IN ('scheduled', 'live') AND t.game <> '' GROUP BY t.game ORDER BY n DESC, t.game"
        )
        return [(row["game"], int(row["n"])) for row in rows]

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
