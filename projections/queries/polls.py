"""Polls in the read model (``pg.polls``): accepted polls with their tallies, and open/close requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from projections.queries import Reader

__all__ = ["PollQueries"]

# A row gets its question once the projector has read the PollOpened as well as the first tally.
_POLL = (
    "SELECT poll_id, stream_id, question, options, counts, total, opened_by, opened_at, closes_at,"
    " closed_at, closed_by, final, CASE WHEN final THEN 'closed' ELSE 'open' END AS status"
    " FROM polls WHERE question IS NOT NULL"
)


class PollQueries(Reader):
    """Polls by id and by stream (newest first), and opening requests."""

    async def poll(self, poll_id: str) -> dict[str, Any] | None:
        return await self._one(f"{_POLL} AND poll_id = %s", (poll_id,))

    async def of_stream_after(
        self, stream_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """A stream's polls, newest first, after ``(opened_at, poll_id)``."""
        where = ["stream_id = %s"]
        params: list[Any] = [stream_id]
        if after:
            where.append("(opened_at, poll_id) < (%s, %s)")
            params += list(after)
        return await self._all(
            f"{_POLL} AND " + " AND ".join(where) + " ORDER BY opened_at DESC, poll_id DESC LIMIT %s",
            [*params, limit],
        )

    async def requested(self, poll_id: str) -> dict[str, Any] | None:
        """The opening as requested (the agent may not have accepted it yet, or refused it)."""
        return await self._one(
            "SELECT poll_id, stream_id, requested_at FROM poll_requests"
            " WHERE kind = 'open' AND poll_id = %s ORDER BY requested_at LIMIT 1",
            (poll_id,),
        )
