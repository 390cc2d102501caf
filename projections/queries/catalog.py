"""Users, channels and moderators in the read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from projections.queries.search import SearchQueries

__all__ = ["CatalogQueries"]


class CatalogQueries(SearchQueries):
    """Users, channels and channel moderators; the search over channels, tournaments and teams."""

    async def user(self, user_id: str) -> dict[str, Any] | None:
        return await self._one("SELECT * FROM users WHERE user_id = %s", (user_id,))

    async def channel(self, slug_or_id: str) -> dict[str, Any] | None:
        return await self._one(
            "SELECT * FROM channels WHERE slug = %s OR channel_id = %s ORDER BY slug = %s DESC LIMIT 1",
            (slug_or_id, slug_or_id, slug_or_id),
        )

    async def channels_by_id(self, channel_ids: list[str]) -> list[dict[str, Any]]:
        """The channels with these ids, in one query (unknown ids are left out)."""
        return await self._all("SELECT * FROM channels WHERE channel_id = ANY(%s)", (channel_ids,))

    async def channels_after(
        self, *, owner: str | None, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """Channels, newest first, after ``(created_at, channel_id)``."""
        where = ["TRUE"]
        params: list[Any] = []
        if owner:
            where.append("owner_id = %s")
            params.append(owner)
        if after:
            where.append("(created_at, channel_id) < (%s, %s)")
            params += list(after)
        return await self._all(
            "SELECT * FROM channels WHERE "
            + " AND ".join(where)
            + " ORDER BY created_at DESC, channel_id DESC"
            " LIMIT %s",
            [*params, limit],
        )

    async def moderators(self, channel_id: str) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT m.user_id, u.username, m.appointed_by, m.appointed_at FROM channel_moderators m"
            " LEFT JOIN users u USING (user_id) WHERE m.channel_id = %s ORDER BY m.appointed_at",
            (channel_id,),
        )

    async def is_moderator(self, channel_id: str, user_id: str) -> bool:
        row = await self._one(
            "SELECT 1 AS yes FROM channel_moderators WHERE channel_id = %s AND user_id = %s",
            (channel_id, user_id),
        )
        return row is not None

    async def follows(self, user_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        channels = await self._all(
            "SELECT f.channel_id, c.slug, c.display_name, f.followed_at FROM channel_follows f"
            " LEFT JOIN channels c USING (channel_id) WHERE f.user_id = %s ORDER BY f.followed_at DESC",
            (user_id,),
        )
        tournaments = await self._all(
            "SELECT f.tournament_id, t.name, f.followed_at FROM tournament_follows f"
            " LEFT JOIN tournaments t USING (tournament_id) WHERE f.user_id = %s ORDER BY f.followed_at DESC",
            (user_id,),
        )
        return channels, tournaments
