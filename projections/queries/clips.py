"""Clips in the read model (``pg.catalog``): one clip, and a channel's ready clips (newest first)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from projections.queries import Reader

__all__ = ["ClipQueries"]

_CLIP = (
    "SELECT clip_id, stream_id, channel_id, requested_by, title, start_ms, requested_ms, duration_ms, url,"
    " reencoded, status, failure, requested_at, created_at FROM clips"
)


class ClipQueries(Reader):
    """Clips by id, a stream's clips and a channel's ready clips, newest first."""

    async def clip(self, clip_id: str) -> dict[str, Any] | None:
        return await self._one(f"{_CLIP} WHERE clip_id = %s", (clip_id,))

    async def of_stream_after(
        self, stream_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """A stream's clips whatever their status, newest request first, after ``(requested_at, clip_id)``;
        a clip whose request the projector has not read yet (only its outcome) is not listed."""
        where = ["stream_id = %s", "requested_at IS NOT NULL"]
        params: list[Any] = [stream_id]
        if after:
            where.append("(requested_at, clip_id) < (%s, %s)")
            params += list(after)
        return await self._all(
            f"{_CLIP} WHERE " + " AND ".join(where) + " ORDER BY requested_at DESC, clip_id DESC LIMIT %s",
            [*params, limit],
        )

    async def of_channel_after(
        self, channel_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """A channel's ready clips, newest first, after ``(created_at, clip_id)``."""
        where = ["channel_id = %s", "status = 'ready'"]
        params: list[Any] = [channel_id]
        if after:
            where.append("(created_at, clip_id) < (%s, %s)")
            params += list(after)
        return await self._all(
            f"{_CLIP} WHERE " + " AND ".join(where) + " ORDER BY created_at DESC, clip_id DESC LIMIT %s",
            [*params, limit],
        )
