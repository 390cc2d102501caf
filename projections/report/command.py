"""``esports report match ID``: a match's figures from the analytics views, for people or as JSON.

What it prints: the match (tournament, teams, state, times, winner), its combined audience (peak
and time-weighted average of distinct sessions across its streams), each of its streams (role,
state, peak and average viewers, chat), chat per minute over the match's streams, moderation
actions by kind, and poll results. Everything comes from the views of migrations 0008 and 0009,
so the report of a rebuilt read model is the report of the live one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from infra.postgres import DatabaseError, translate
from infra.settings import Settings
from projections.database import checked_schema, make_pool

__all__ = ["MatchNotFound", "match_report", "render_text", "run"]

Row = dict[str, Any]

MATCH = """
SELECT m.match_id, m.tournament_id, t.name AS tournament, m.teams, m.round_name, m.best_of, m.state,
       m.scheduled_start, m.started_at, m.ended_at, m.winner, m.scores, m.main_stream_id
FROM matches m LEFT JOIN tournaments t USING (tournament_id) WHERE m.match_id = %s
"""
STREAMS = """
SELECT s.stream_id, s.role, s.title, s.state, s.started_at, s.ended_at,
       v.peak_viewers, v.avg_viewers,
       c.messages, c.visible_messages, c.hidden_messages, c.chatters, c.active_minutes, c.per_minute_avg,
       c.per_minute_peak, c.peak_minute
FROM streams s
LEFT JOIN stream_viewer_stats v USING (stream_id)
LEFT JOIN stream_chat_stats c USING (stream_id)
WHERE s.match_id = %(match)s OR s.stream_id = %(main)s
ORDER BY (s.stream_id = %(main)s) DESC, s.role, s.stream_id
"""
AUDIENCE = "SELECT peak_viewers, avg_viewers, buckets FROM match_viewer_stats WHERE match_id = %s"
CHAT = """
SELECT minute, sum(messages)::int AS messages FROM chat_minutes WHERE stream_id = ANY(%s)
GROUP BY minute ORDER BY messages DESC, minute
"""
MODERATION = """
SELECT action, sum(actions)::int AS actions FROM moderation_actions WHERE stream_id = ANY(%s)
GROUP BY action ORDER BY actions DESC, action
"""
POLLS = """
SELECT poll_id, stream_id, question, option_index, option, votes, share, total, final, status, opened_at,
       closed_at
FROM poll_results WHERE stream_id = ANY(%s) ORDER BY opened_at, poll_id, option_index
"""


class MatchNotFound(LookupError):
    """No match with that id in the read model."""


async def match_report(pool: AsyncConnectionPool, match_id: str) -> dict[str, Any]:
    """The match's figures (see the module docstring); ``MatchNotFound`` if there is no such match."""
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            match = await _one(cur, MATCH, (match_id,))
            if match is None:
                raise MatchNotFound(f"no match {match_id!r} in the read model")
            streams = await _all(cur, STREAMS, {"match": match_id, "main": match["main_stream_id"]})
            ids = [s["stream_id"] for s in streams]
            audience = await _one(cur, AUDIENCE, (match_id,))
            minutes = await _all(cur, CHAT, (ids,))
            moderation = await _all(cur, MODERATION, (ids,))
            polls = await _all(cur, POLLS, (ids,))
    except psycopg.Error as e:
        raise translate(e, f"reading the report of match {match_id}") from e
    return _plain(
        {
            "match": match,
            "audience": audience or {"peak_viewers": None, "avg_viewers": None, "buckets": 0},
            "streams": streams,
            "chat": _chat_summary(minutes),
            "moderation": {row["action"]: row["actions"] for row in moderation},
            "polls": _polls(polls),
        }
    )


async def _one(cur: psycopg.AsyncCursor[Row], query: str, params: Any) -> Row | None:
    await cur.execute(query, params)
    return await cur.fetchone()


async def _all(cur: psycopg.AsyncCursor[Row], query: str, params: Any) -> list[Row]:
    await cur.execute(query, params)
    return await cur.fetchall()


def _chat_summary(minutes: list[Row]) -> dict[str, Any]:
    """Chat per minute over all the match's streams: minutes with chat, average and busiest."""
    total = sum(row["messages"] for row in minutes)
    peak = minutes[0] if minutes else None
    return {
        "messages": total,
        "active_minutes": len(minutes),
        "per_minute_avg": round(total / len(minutes), 2) if minutes else 0,
        "peak_minute": peak["minute"] if peak else None,
        "per_minute_peak": peak["messages"] if peak else 0,
    }


def _polls(rows: list[Row]) -> list[dict[str, Any]]:
    polls: dict[str, dict[str, Any]] = {}
    for row in rows:
        poll = polls.setdefault(
            row["poll_id"],
            {
                key: row[key]
                for key in (
                    "poll_id",
                    "stream_id",
                    "question",
                    "status",
                    "total",
                    "final",
                    "opened_at",
                    "closed_at",
                )
            }
            | {"options": []},
        )
        poll["options"].append({"option": row["option"], "votes": row["votes"], "share": row["share"]})
    return list(polls.values())


def _plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO 8601, decimals as floats."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


# --- text ---------------------------------------------------------------------------------------


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def render_text(report: dict[str, Any]) -> str:
    """The report for people (pure)."""
    m = report["match"]
    lines = [
        f"Match {m['match_id']}: {' vs '.join(m['teams']) or '?'}"
        f" ({m['tournament'] or m['tournament_id']}{', ' + m['round_name'] if m['round_name'] else ''})",
        f"  state {m['state']}, started {m['started_at'] or '-'}, ended {m['ended_at'] or '-'},"
        f" winner {m['winner'] or '-'}",
        f"  audience (all streams, distinct sessions): peak {_n(report['audience']['peak_viewers'])},"
        f" average {_n(report['audience']['avg_viewers'])}",
        "",
        "Streams",
        f"  {'stream':<24} {'role':<9} {'state':<9} {'peak':>7} {'avg':>9} {'chat':>7} {'per min':>8}",
    ]
    for s in report["streams"]:
        lines.append(
            f"  {s['stream_id']:<24} {s['role']:<9} {s['state']:<9} {_n(s['peak_viewers']):>7}"
            f" {_n(s['avg_viewers']):>9} {_n(s['messages'] or 0):>7} {_n(s['per_minute_avg']):>8}"
        )
    chat = report["chat"]
    lines += [
        "",
        f"Chat: {_n(chat['messages'])} messages over {chat['active_minutes']} minutes with chat,"
        f" {_n(chat['per_minute_avg'])} per minute on average,"
        f" busiest {chat['peak_minute'] or '-'} with {_n(chat['per_minute_peak'])}",
        "",
        "Moderation actions: "
        + (", ".join(f"{kind} {count}" for kind, count in report["moderation"].items()) or "none"),
        "",
        "Polls" if report["polls"] else "Polls: none",
    ]
    for poll in report["polls"]:
        final = ", final" if poll["final"] else ""
        lines.append(f"  {poll['question']} ({poll['status']}{final}, {poll['total']} votes)")
        for option in poll["options"]:
            share = f"{option['share']:.0%}" if option["share"] is not None else "-"
            lines.append(f"    {option['option']:<20} {option['votes']:>6} {share:>5}")
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------------


async def _report(settings: Settings, schema: str, match_id: str) -> dict[str, Any]:
    async with make_pool(settings.postgres, name="report", schema=schema, max_size=1) as pool:
        return await match_report(pool, match_id)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``esports report`` command: 0 printed, 1 no such match or database error, 2 usage."""
    try:
        schema = checked_schema(args.schema)
    except ValueError as e:
        print(f"esports report: {e}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_report(settings, schema, args.id))
    except (MatchNotFound, DatabaseError) as e:
        print(f"esports report: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.format == "json" else render_text(report))
    return 0
