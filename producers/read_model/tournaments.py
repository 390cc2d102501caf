"""Tournaments and matches in the read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from producers.pagination import decode_cursor
from producers.read_model import Reader
from producers.read_model.catalog import Page, next_cursor


class TournamentReader(Reader):
    """Tournaments (cursor-paginated) and their matches."""

    async def tournament(self, tournament_id: str) -> dict[str, Any] | None:
        return await self._one("SELECT * FROM tournaments WHERE tournament_id = %s", (tournament_id,))

    async def tournaments(self, *, game: str | None, limit: int, cursor: str | None) -> Page:
        where, params = ["TRUE"], []
        if game:
            where.append("game = %s")
            params.append(game)
        if cursor:
            starts, tournament_id = decode_cursor(cursor, (datetime, str))
            where.append("(starts_at, tournament_id) < (%s, %s)")
            params += [starts, tournament_id]
        rows = await self._all(
            "SELECT * FROM tournaments WHERE "
            + " AND ".join(where)
            + " ORDER BY starts_at DESC, tournament_id DESC LIMIT %s",
            [*params, limit],
        )
        return rows, next_cursor(rows, limit, "starts_at", "tournament_id")

    async def matches(self, tournament_id: str) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT * FROM matches WHERE tournament_id = %s ORDER BY scheduled_start NULLS LAST, match_id",
            (tournament_id,),
        )

    async def match(self, match_id: str) -> dict[str, Any] | None:
        return await self._one("SELECT * FROM matches WHERE match_id = %s", (match_id,))
