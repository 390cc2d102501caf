"""The chat archive (``pg.chat``): a stream's visible messages by media time, for replaying chat with a VOD.

Deletions, bans and clears are already applied in ``chat_messages`` (``visible``), so a replay shows
what live viewers were left with.
"""

from __future__ import annotations

from typing import Any

from projections.queries import Reader

__all__ = ["ChatQueries"]


class ChatQueries(Reader):
    """Visible messages of a stream between two media times, in media-time order."""

    async def messages_after(
        self, stream_id: str, from_ms: int, to_ms: int, *, limit: int, after: tuple[int, str] | None
    ) -> list[dict[str, Any]]:
        """Messages with ``from_ms <= media_time_ms < to_ms``, after ``(media_time_ms, message_id)``."""
        where = ["stream_id = %s", "visible", "media_time_ms >= %s", "media_time_ms < %s"]
        params: list[Any] = [stream_id, from_ms, to_ms]
        if after:
            where.append("(media_time_ms, message_id) > (%s, %s)")
            params += list(after)
        return await self._all(
            "SELECT message_id, user_id, display_name, text, sent_at, media_time_ms,"
            " reply_to_message_id AS reply_to FROM chat_messages WHERE "
            + " AND ".join(where)
            + " ORDER BY media_time_ms, message_id LIMIT %s",
            [*params, limit],
        )
