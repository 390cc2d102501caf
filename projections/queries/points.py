"""Predictions, stakes, balances and ledger entries in the read model (``pg.points``).

A prediction takes stakes until ``locks_at``; the prediction worker publishes the lock when its
timer fires, a moment later. Readers see an ``open`` prediction whose ``locks_at`` has passed as
``locked`` already (:func:`as_seen`): a rule applied when reading, like the clips' timeout, so the
API never offers a stake the ledger worker is bound to refuse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from projections.queries import Reader

__all__ = ["ACTIVE", "FINAL", "LEDGER_PAGE", "PointsQueries", "as_seen"]

ACTIVE = ("open", "locked")  # a stream has at most one prediction in these states
FINAL = ("resolved", "cancelled")
LEDGER_PAGE = 50

_PREDICTION = (
    "SELECT prediction_id, stream_id, channel_id, title, outcomes, locks_at, opened_by, opened_at,"
    " status, winning_outcome, locked_at, locked_by, resolved_at, resolved_by, cancelled_at,"
    " cancelled_by, pools, stakers, settled,"
    " (SELECT s.match_id FROM streams AS s WHERE s.stream_id = predictions.stream_id) AS match_id"
    " FROM predictions WHERE title IS NOT NULL"
)
_STAKE = (
    "SELECT prediction_id, outcome, amount, payout, refunded, staked_at, settled_at"
    " FROM prediction_stakes WHERE user_id = %s"
)


def as_seen(row: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """``row`` as readers see it: an ``open`` prediction is ``locked`` from its ``locks_at`` on."""
    prediction = dict(row)
    if prediction["status"] == "open" and now >= prediction["locks_at"]:
        prediction["status"] = "locked"
    return prediction


class PointsQueries(Reader):
    """Predictions by id and by stream (newest first), a user's stakes, balance and ledger."""

    async def prediction(self, prediction_id: str) -> dict[str, Any] | None:
        return await self._one(f"{_PREDICTION} AND prediction_id = %s", (prediction_id,))

    async def active_on(self, stream_id: str) -> dict[str, Any] | None:
        """The stream's prediction that is neither resolved nor cancelled, if any."""
        return await self._one(
            f"{_PREDICTION} AND stream_id = %s AND status IN ('open', 'locked')"
            " ORDER BY opened_at DESC LIMIT 1",
            (stream_id,),
        )

    async def of_stream_after(
        self, stream_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """A stream's predictions, newest first, after ``(opened_at, prediction_id)``."""
        where = "stream_id = %s"
        params: list[Any] = [stream_id]
        if after:
            where += " AND (opened_at, prediction_id) < (%s, %s)"
            params += list(after)
        return await self._all(
            f"{_PREDICTION} AND {where} ORDER BY opened_at DESC, prediction_id DESC LIMIT %s",
            [*params, limit],
        )

    async def stakes(self, user_id: str, prediction_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The user's stake in each of these predictions that they staked on, by prediction id."""
        if not prediction_ids:
            return {}
        rows = await self._all(f"{_STAKE} AND prediction_id = ANY(%s)", (user_id, list(prediction_ids)))
        return {row["prediction_id"]: row for row in rows}

    async def balance(self, user_id: str) -> int:
        """The user's balance (0 before their first ledger entry)."""
        row = await self._one("SELECT balance FROM points_balances WHERE user_id = %s", (user_id,))
        return int(row["balance"]) if row else 0

    async def ledger(self, user_id: str, *, limit: int = LEDGER_PAGE) -> list[dict[str, Any]]:
        """The user's latest ledger entries, newest first."""
        return await self._all(
            "SELECT event_id, kind, amount, change, balance, reason, prediction_id, stream_id, outcome,"
            " occurred_at FROM points_ledger WHERE user_id = %s ORDER BY user_seq DESC LIMIT %s",
            (user_id, limit),
        )
