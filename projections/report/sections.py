"""What every report has, over any set of streams (a match's, one stream, a channel's in a range):
chat per minute and per chatter, moderation actions, polls and predictions; and the reading helpers
the reports share (one row, all rows, JSON-ready values).

The figures come from the analytics views (migrations 0008, 0009) and the read model's tables
(``chat_messages``, ``predictions``): a rebuilt read model reports the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

__all__ = [
    "Cur",
    "Row",
    "chat_section",
    "fetch_all",
    "fetch_one",
    "moderation_section",
    "plain",
    "polls_section",
    "predictions_section",
]

Row = dict[str, Any]
Cur = psycopg.AsyncCursor[Row]

CHAT_MINUTES = """
SELECT minute, sum(messages)::int AS messages FROM chat_minutes WHERE stream_id = ANY(%s)
GROUP BY minute ORDER BY minute
"""
CHATTERS = "SELECT count(DISTINCT user_id)::int AS chatters FROM chat_messages WHERE stream_id = ANY(%s)"
MODERATION = """
SELECT action, sum(actions)::int AS actions FROM moderation_actions WHERE stream_id = ANY(%s)
GROUP BY action ORDER BY actions DESC, action
"""
POLLS = """
SELECT poll_id, stream_id, question, option_index, option, votes, share, total, final, status, opened_at,
       closed_at
FROM poll_results WHERE stream_id = ANY(%s) ORDER BY opened_at, poll_id, option_index
"""
PREDICTIONS = """
SELECT prediction_id, stream_id, title, outcomes, status, winning_outcome, pools, stakers, opened_at,
       locked_at, resolved_at, cancelled_at
FROM predictions WHERE stream_id = ANY(%s) AND title IS NOT NULL ORDER BY opened_at, prediction_id
"""
POLL_FIELDS = ("poll_id", "stream_id", "question", "status", "total", "final", "opened_at", "closed_at")


async def fetch_one(cur: Cur, query: str, params: Any) -> Row | None:
    await cur.execute(query, params)
    return await cur.fetchone()


async def fetch_all(cur: Cur, query: str, params: Any) -> list[Row]:
    await cur.execute(query, params)
    return await cur.fetchall()


async def chat_section(cur: Cur, streams: Sequence[str], live_s: float | None = None) -> Row:
    """Chat over ``streams``: messages, chatters, per chatter, per minute (over the minutes with chat,
    and over ``live_s`` seconds live when known), the busiest minute and the series per minute."""
    minutes = await fetch_all(cur, CHAT_MINUTES, (list(streams),))
    chatters = (await fetch_one(cur, CHATTERS, (list(streams),)) or {}).get("chatters", 0)
    return chat_summary(minutes, chatters, live_s)


def chat_summary(minutes: list[Row], chatters: int, live_s: float | None = None) -> Row:
    """The chat figures from its messages per minute (in time order) and its distinct chatters (pure)."""
    total = sum(row["messages"] for row in minutes)
    peak = max(minutes, key=lambda row: row["messages"], default=None)  # the earliest of equal minutes
    live_minutes = live_s / 60 if live_s else None
    return {
        "messages": total,
        "chatters": chatters,
        "per_chatter": round(total / chatters, 2) if chatters else 0,
        "active_minutes": len(minutes),
        "per_minute_avg": round(total / len(minutes), 2) if minutes else 0,
        "per_live_minute": round(total / live_minutes, 2) if live_minutes else None,
        "peak_minute": peak["minute"] if peak else None,
        "per_minute_peak": peak["messages"] if peak else 0,
        "per_minute": [{"minute": row["minute"], "messages": row["messages"]} for row in minutes],
    }


async def moderation_section(cur: Cur, streams: Sequence[str]) -> dict[str, int]:
    """Moderation actions over ``streams`` by kind, the most frequent first."""
    rows = await fetch_all(cur, MODERATION, (list(streams),))
    return {row["action"]: row["actions"] for row in rows}


async def polls_section(cur: Cur, streams: Sequence[str]) -> list[Row]:
    """The polls of ``streams`` in the order they opened, each with its options' votes and shares."""
    polls: dict[str, Row] = {}
    for row in await fetch_all(cur, POLLS, (list(streams),)):
        poll = polls.setdefault(row["poll_id"], {key: row[key] for key in POLL_FIELDS} | {"options": []})
        poll["options"].append({"option": row["option"], "votes": row["votes"], "share": row["share"]})
    return list(polls.values())


async def predictions_section(cur: Cur, streams: Sequence[str]) -> list[Row]:
    """The predictions of ``streams`` in the order they opened: status, winner, points and stakers per
    outcome (the latest odds)."""
    out = []
    for row in await fetch_all(cur, PREDICTIONS, (list(streams),)):
        outcomes, pools, stakers = row.pop("outcomes"), row.pop("pools"), row.pop("stakers")
        winner = row.pop("winning_outcome")
        row["winner"] = outcomes[winner] if winner is not None and 0 <= winner < len(outcomes) else None
        row["points"] = sum(pools)
        row["outcomes"] = [
            {"outcome": name, "points": _at(pools, i), "stakers": _at(stakers, i)}
            for i, name in enumerate(outcomes)
        ]
        out.append(row)
    return out


def _at(values: Sequence[int], index: int) -> int:
    return values[index] if index < len(values) else 0


def plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO 8601, decimals as floats."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value
