"""The ``pg.points`` projector: predictions, balances, ledger entries and stakes in PostgreSQL.

From ``predictions`` (what streamers and moderators asked: open, lock, resolve, cancel),
``predictions.odds`` (PredictionUpdated: the prediction worker's pools, stakers, final state and
settlement) and ``points.ledger`` (what the ledger worker decided for each user). Tables in
``migrations/0017_points.sql``.

A prediction's ``status`` only moves forward (open, locked, then resolved or cancelled). The commands
move it as soon as they are read, so the API can refuse a second resolve at once; the worker's
odds move it too and win when both name a final state, since the worker is the authority. The two
topics are read by one consumer but not in one order (a rebuild, a lagging partition), so the odds
may create a prediction's row before its PredictionOpened fills in the opening, as for polls.

Every ledger entry is a row keyed by its event id, and the balance, the stake and its settlement are
written in the same statement, only when that row is new: a redelivered entry changes nothing even
outside the projector's stored offsets (exactly-once comes from
:class:`~projections.projector.PostgresProjector`). A balance is the ``balance`` of the user's latest
entry, as the ledger worker computed it: a user's entries all live on one partition, applied in log
order, so the latest applied is the latest written. The sum of a user's ``change`` column gives the
same figure and is what an audit compares it with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.points import (
    PointsGranted,
    PointsStaked,
    PredictionCancelled,
    PredictionLocked,
    PredictionOpened,
    PredictionResolved,
    PredictionUpdated,
    StakeRefunded,
    StakeRefused,
    StakeSettled,
)
from events.topics import Topic
from projections.projector import Apply, Cursor, PostgresProjector, handles

__all__ = ["HANDLERS", "NAME", "TOPICS", "points_projector"]

NAME = "pg.points"
TOPICS = (Topic.PREDICTIONS, Topic.PREDICTIONS_ODDS, Topic.POINTS_LEDGER)

# -- predictions --------------------------------------------------------------------------------------

UPSERT_OPENED = """
INSERT INTO predictions AS p (prediction_id, stream_id, channel_id, title, outcomes, locks_at,
    opened_by, opened_at, pools, stakers)
VALUES (%(prediction)s, %(stream)s, %(channel)s, %(title)s, %(outcomes)s, %(locks_at)s, %(actor)s,
    %(at)s, array_fill(0::bigint, ARRAY[%(n)s::int]), array_fill(0, ARRAY[%(n)s::int]))
ON CONFLICT (prediction_id) DO UPDATE SET channel_id = EXCLUDED.channel_id, title = EXCLUDED.title,
    outcomes = EXCLUDED.outcomes, locks_at = EXCLUDED.locks_at, opened_by = EXCLUDED.opened_by,
    opened_at = EXCLUDED.opened_at
WHERE p.title IS NULL
"""
# The commands of one prediction are in log order (one partition); whether one counts depends only
# on the commands before it (the first lock, the first resolve or cancel), never on the odds, so the
# result does not depend on which topic was applied first. A final state the worker's odds already
# gave (stage 2) is kept: the worker is the authority.
_STAGE = "CASE {} WHEN 'open' THEN 0 WHEN 'locked' THEN 1 ELSE 2 END"
_FIRST_FINAL = "prediction_id = %(prediction)s AND resolved_at IS NULL AND cancelled_at IS NULL"
LOCKED = f"""
UPDATE predictions SET locked_at = %(at)s, locked_by = %(actor)s,
    status = CASE status WHEN 'open' THEN 'locked' ELSE status END
WHERE {_FIRST_FINAL} AND locked_at IS NULL
"""
RESOLVED = f"""
UPDATE predictions SET resolved_at = %(at)s, resolved_by = %(actor)s,
    locked_at = COALESCE(locked_at, CASE WHEN %(at)s < locks_at THEN %(at)s END),
    status = CASE WHEN {_STAGE.format("status")} < 2 THEN 'resolved' ELSE status END,
    winning_outcome = CASE WHEN {_STAGE.format("status")} < 2 THEN %(outcome)s ELSE winning_outcome END
WHERE {_FIRST_FINAL}
"""
CANCELLED = f"""
UPDATE predictions SET cancelled_at = %(at)s, cancelled_by = %(actor)s,
    status = CASE WHEN {_STAGE.format("status")} < 2 THEN 'cancelled' ELSE status END,
    winning_outcome = CASE WHEN {_STAGE.format("status")} < 2 THEN NULL ELSE winning_outcome END
WHERE {_FIRST_FINAL}
"""
UPSERT_ODDS = f"""
INSERT INTO predictions AS p (prediction_id, stream_id, status, pools, stakers, winning_outcome,
    settled, odds_at)
VALUES (%(prediction)s, %(stream)s, %(status)s, %(pools)s, %(stakers)s, %(winner)s, %(settled)s, %(at)s)
ON CONFLICT (prediction_id) DO UPDATE SET pools = EXCLUDED.pools, stakers = EXCLUDED.stakers,
    settled = p.settled OR EXCLUDED.settled, odds_at = EXCLUDED.odds_at,
    status = CASE WHEN {_STAGE.format("EXCLUDED.status")} >= {_STAGE.format("p.status")}
        THEN EXCLUDED.status ELSE p.status END,
    winning_outcome = CASE EXCLUDED.status WHEN 'resolved' THEN EXCLUDED.winning_outcome
        WHEN 'cancelled' THEN NULL ELSE p.winning_outcome END
"""


async def prediction_opened(cur: Cursor, e: PredictionOpened) -> None:
    params = {
        "prediction": e.prediction_id,
        "stream": e.stream_id,
        "channel": e.channel_id,
        "title": e.title,
        "outcomes": list(e.outcomes),
        "n": len(e.outcomes),
        "locks_at": e.locks_at,
        "actor": e.opened_by,
        "at": e.occurred_at,
    }
    await cur.execute(UPSERT_OPENED, params)


async def prediction_locked(cur: Cursor, e: PredictionLocked) -> None:
    await cur.execute(LOCKED, {"prediction": e.prediction_id, "at": e.occurred_at, "actor": e.locked_by})


async def prediction_resolved(cur: Cursor, e: PredictionResolved) -> None:
    params = {
        "prediction": e.prediction_id,
        "outcome": e.outcome,
        "at": e.occurred_at,
        "actor": e.resolved_by,
    }
    await cur.execute(RESOLVED, params)


async def prediction_cancelled(cur: Cursor, e: PredictionCancelled) -> None:
    params = {"prediction": e.prediction_id, "at": e.occurred_at, "actor": e.cancelled_by}
    await cur.execute(CANCELLED, params)


async def prediction_updated(cur: Cursor, e: PredictionUpdated) -> None:
    params = {
        "prediction": e.prediction_id,
        "stream": e.stream_id,
        "status": e.status,
        "pools": list(e.pools),
        "stakers": list(e.stakers),
        "winner": e.winning_outcome if e.status == "resolved" and e.winning_outcome >= 0 else None,
        "settled": e.settled,
        "at": e.occurred_at,
    }
    await cur.execute(UPSERT_ODDS, params)


# -- points.ledger ------------------------------------------------------------------------------------

# The entry, then (only if it is new) what it changes: one statement, so nothing runs twice.
_ENTRY = """
WITH entry AS (
    INSERT INTO points_ledger (event_id, user_seq, user_id, kind, amount, change, balance, reason,
        prediction_id, stream_id, outcome, occurred_at)
    VALUES (%(event)s,
        (SELECT coalesce(max(user_seq), 0) + 1 FROM points_ledger WHERE user_id = %(user)s),
        %(user)s, %(kind)s, %(amount)s, %(change)s, %(balance)s, %(reason)s,
        %(prediction)s, %(stream)s, %(outcome)s, %(at)s)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING user_id, balance, occurred_at
), moved AS (
    INSERT INTO points_balances AS b (user_id, balance, updated_at)
    SELECT user_id, balance, occurred_at FROM entry
    ON CONFLICT (user_id) DO UPDATE SET balance = EXCLUDED.balance, updated_at = EXCLUDED.updated_at
)
"""
ENTRY = _ENTRY + "SELECT 1"
STAKED = (
    _ENTRY
    + """
INSERT INTO prediction_stakes AS s (prediction_id, user_id, stream_id, outcome, amount, staked_at)
SELECT %(prediction)s, user_id, %(stream)s, %(outcome)s, %(amount)s, occurred_at FROM entry
ON CONFLICT (prediction_id, user_id) DO UPDATE SET amount = s.amount + EXCLUDED.amount
"""
)
SETTLED = (
    _ENTRY
    + """
UPDATE prediction_stakes SET payout = %(amount)s, settled_at = e.occurred_at
FROM entry AS e WHERE prediction_id = %(prediction)s AND prediction_stakes.user_id = e.user_id
"""
)
REFUNDED = (
    _ENTRY
    + """
UPDATE prediction_stakes SET refunded = true, settled_at = e.occurred_at
FROM entry AS e WHERE prediction_id = %(prediction)s AND prediction_stakes.user_id = e.user_id
"""
)


def _entry(
    e: Event, user_id: str, kind: str, amount: int, change: int, balance: int, **rest: Any
) -> dict[str, Any]:
    return {
        "event": e.event_id,
        "user": user_id,
        "kind": kind,
        "amount": amount,
        "change": change,
        "balance": balance,
        "reason": rest.get("reason", ""),
        "prediction": rest.get("prediction"),
        "stream": rest.get("stream", ""),
        "outcome": rest.get("outcome"),
        "at": e.occurred_at,
    }


async def points_granted(cur: Cursor, e: PointsGranted) -> None:
    params = _entry(e, e.user_id, "grant", e.amount, e.amount, e.balance, reason=e.reason, stream=e.stream_id)
    await cur.execute(ENTRY, params)


async def points_staked(cur: Cursor, e: PointsStaked) -> None:
    params = _entry(
        e,
        e.user_id,
        "stake",
        e.amount,
        -e.amount,
        e.balance,
        prediction=e.prediction_id,
        stream=e.stream_id,
        outcome=e.outcome,
    )
    await cur.execute(STAKED, params)


async def stake_refused(cur: Cursor, e: StakeRefused) -> None:
    params = _entry(
        e,
        e.user_id,
        "refused",
        e.amount,
        0,
        e.balance,
        reason=e.reason,
        prediction=e.prediction_id,
        stream=e.stream_id,
    )
    await cur.execute(ENTRY, params)


async def stake_settled(cur: Cursor, e: StakeSettled) -> None:
    reason = "won" if e.payout > 0 else "lost"
    params = _entry(
        e,
        e.user_id,
        "settled",
        e.payout,
        e.payout,
        e.balance,
        reason=reason,
        prediction=e.prediction_id,
        stream=e.stream_id,
    )
    await cur.execute(SETTLED, params)


async def stake_refunded(cur: Cursor, e: StakeRefunded) -> None:
    params = _entry(
        e,
        e.user_id,
        "refund",
        e.amount,
        e.amount,
        e.balance,
        reason="cancelled",
        prediction=e.prediction_id,
        stream=e.stream_id,
    )
    await cur.execute(REFUNDED, params)


HANDLERS: Mapping[type[Event], Apply] = dict(
    [
        handles(PredictionOpened, prediction_opened),
        handles(PredictionLocked, prediction_locked),
        handles(PredictionResolved, prediction_resolved),
        handles(PredictionCancelled, prediction_cancelled),
        handles(PredictionUpdated, prediction_updated),
        handles(PointsGranted, points_granted),
        handles(PointsStaked, points_staked),
        handles(StakeRefused, stake_refused),
        handles(StakeSettled, stake_settled),
        handles(StakeRefunded, stake_refunded),
    ]
)


def points_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The points and predictions projector writing into ``schema``."""
    return PostgresProjector(pool, name=NAME, topics=TOPICS, handlers=HANDLERS, schema=schema)
