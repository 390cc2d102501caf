"""The moderators' views (``pg.chat``): a stream's held messages still pending, and its moderation log.

Both are moderators' data (held text, blocked terms in settings rows): the API serves them to the
channel's owner, its moderators and admins only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from projections.queries import Reader

__all__ = ["ModerationQueries"]

_HELD = (
    "SELECT message_id, user_id, display_name, text, score, reasons, badges, media_time_ms,"
    " reply_to_message_id AS reply_to, held_at FROM held_messages"
)
_LOG = (
    "SELECT event_id::text AS event_id, action, actor_id, target_user_id, target_message_id, reason,"
    " duration_s, at, request_id::text AS request_id, details FROM moderation_log"
)


class ModerationQueries(Reader):
    """The ``held_messages`` and ``moderation_log`` tables of the read model."""

    async def pending_after(
        self, stream_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """Held messages nobody approved or denied yet, oldest first, after ``(held_at, message_id)``."""
        where = ["stream_id = %s", "status = 'pending'", "held_at IS NOT NULL"]
        params: list[Any] = [stream_id]
        if after:
            where.append("(held_at, message_id) > (%s, %s)")
            params += list(after)
        return await self._all(
            f"{_HELD} WHERE {' AND '.join(where)} ORDER BY held_at, message_id LIMIT %s", [*params, limit]
        )

    async def log_after(
        self, stream_id: str, *, limit: int, after: tuple[datetime, str] | None, action: str | None = None
    ) -> list[dict[str, Any]]:
        """The stream's moderation log, newest first, after ``(at, event_id)``; ``action`` filters."""
        where = ["stream_id = %s"]
        params: list[Any] = [stream_id]
        if action:
            where.append("action = %s")
            params.append(action)
        if after:
            where.append("(at, event_id) < (%s, %s::uuid)")
            params += list(after)
        return await self._all(
            f"{_LOG} WHERE {' AND '.join(where)} ORDER BY at DESC, event_id DESC LIMIT %s", [*params, limit]
        )
