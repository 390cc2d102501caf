"""``esports report match ID``: a match's figures from the analytics views.

What it holds: the match (tournament, teams, state, times, winner), its combined audience (peak and
time-weighted average of distinct sessions across its streams), each of its streams (role, state,
peak and average viewers, chat), chat over the match's streams (per minute, per chatter), moderation
actions by kind, polls and predictions. Everything comes from the views of migrations 0008 and 0009
and the read model's tables, so the report of a rebuilt read model is the report of the live one.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from infra.postgres import translate
from projections.report.sections import (
    chat_section,
    fetch_all,
    fetch_one,
    moderation_section,
    plain,
    polls_section,
    predictions_section,
)

__all__ = ["MatchNotFound", "match_report"]

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


class MatchNotFound(LookupError):
    """No match with that id in the read model."""


async def match_report(pool: AsyncConnectionPool, match_id: str) -> dict[str, Any]:
    """The match's figures (see the module docstring); ``MatchNotFound`` if there is no such match."""
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            match = await fetch_one(cur, MATCH, (match_id,))
            if match is None:
                raise MatchNotFound(f"no match {match_id!r} in the read model")
            streams = await fetch_all(cur, STREAMS, {"match": match_id, "main": match["main_stream_id"]})
            ids = [s["stream_id"] for s in streams]
            audience = await fetch_one(cur, AUDIENCE, (match_id,))
            report = {
                "report": "match",
                "match": match,
                "audience": audience or {"peak_viewers": None, "avg_viewers": None, "buckets": 0},
                "streams": streams,
                "chat": await chat_section(cur, ids),
                "moderation": await moderation_section(cur, ids),
                "polls": await polls_section(cur, ids),
                "predictions": await predictions_section(cur, ids),
            }
    except psycopg.Error as e:
        raise translate(e, f"reading the report of match {match_id}") from e
    return plain(report)
