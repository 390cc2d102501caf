"""Clips in the read model (``pg.catalog``): one clip, a stream's clips and a channel's ready clips.

A request that no ingest node answers (no node holds the stream's segments: the node that had them
is gone, or the publisher never reached one that keeps them) gets no event at all, so its row stays
``pending``. Readers see such a clip as ``failed`` once it has waited ``timeout_s``
(settings.api.clip_timeout_s), with the reason :data:`NO_NODE` (:func:`as_seen`).

That is a rule applied when reading, not an event, on purpose: the log keeps only facts, and "nobody
answered" is not something any service observed at one moment (a ClipFailed would need a timer
process writing on ``streams`` for every request and would stay on the log as an outcome even when a
node that was merely slow cuts the clip after all). Read time needs no writer and no timer, a rebuild
gives the same rows, and a ClipCreated that arrives late simply makes the row ``ready``: every view
(the API's lists and single clip, the clip page) then shows it ready. What the log then says of such
a request is exactly what happened: it was never answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from projections.queries import Reader

__all__ = ["NO_NODE", "ClipQueries", "as_seen"]

NO_NODE = "no ingest node holds this stream's segments (none answered within {timeout} s)"


def as_seen(row: Mapping[str, Any], *, now: datetime, timeout_s: float) -> dict[str, Any]:
    """``row`` as readers see it: still ``pending`` ``timeout_s`` after its request, it is ``failed``
    with the reason :data:`NO_NODE`; any other row is as the projector wrote it."""
    clip = dict(row)
    requested: datetime | None = clip.get("requested_at")
    if clip["status"] == "pending" and requested is not None:
        if now - requested >= timedelta(seconds=timeout_s):
            clip.update(status="failed", failure=NO_NODE.format(timeout=f"{timeout_s:g}"))
    return clip


_CLIP = (
    "SELECT clip_id, stream_id, channel_id, requested_by, title, start_ms, requested_ms, duration_ms, url,"
    " reencoded, status, failure, requested_at, created_at FROM clips"
)


class ClipQueries(Reader):
    """Clips by id, a stream's clips and a channel's ready clips, newest first; a request pending
    longer than ``timeout_s`` is read as failed (:func:`as_seen`)."""

    def __init__(self, pool: AsyncConnectionPool, *, timeout_s: float) -> None:
        super().__init__(pool)
        self._timeout_s = timeout_s

    def _seen(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [as_seen(r, now=now, timeout_s=self._timeout_s) for r in rows]

    async def clip(self, clip_id: str) -> dict[str, Any] | None:
        rows = self._seen(await self._all(f"{_CLIP} WHERE clip_id = %s", (clip_id,)))
        return rows[0] if rows else None

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
        rows = await self._all(
            f"{_CLIP} WHERE " + " AND ".join(where) + " ORDER BY requested_at DESC, clip_id DESC LIMIT %s",
            [*params, limit],
        )
        return self._seen(rows)

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
