"""The notification inbox (``pg.notifications``): a user's notifications, newest first, and how many
are unread."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from projections.queries import Reader

__all__ = ["InboxQueries"]

_COLUMNS = "notification_id, kind, title, url, body, created_at, read_at IS NOT NULL AS read"


class InboxQueries(Reader):
    """The ``notifications`` table of the read model."""

    async def page_after(
        self, user_id: str, *, unread: bool, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """A user's notifications (``unread``: only those not read), newest first, after
        ``(created_at, notification_id)``."""
        where: list[str] = ["user_id = %s"]
        params: list[Any] = [user_id]
        if unread:
            where.append("read_at IS NULL")
        if after:
            where.append("(created_at, notification_id) < (%s, %s)")
            params += list(after)
        return await self._all(
            f"SELECT {_COLUMNS} FROM notifications WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, notification_id DESC LIMIT %s",
            [*params, limit],
        )

    async def unread_count(self, user_id: str) -> int:
        counted = await self._one(
            "SELECT count(*) AS n FROM notifications WHERE user_id = %s AND read_at IS NULL", (user_id,)
        )
        return int(counted["n"]) if counted else 0
