"""``esports report stream ID`` and ``esports report channel SLUG --from --to``: a stream's figures, or a
channel's over the streams it went live with in a time range.

Both hold: the audience (peak and average concurrent viewers, unique viewers, views, watch time,
average view duration, watch time per viewer; defined in :mod:`projections.report.audience`),
concurrent viewers per minute, the retention curve, chat (messages, chatters, per chatter, per minute,
the series per minute), moderation actions by kind, polls and predictions. A channel's report also
lists each of its streams with its own figures.

A channel's range selects whole streams: those that went live at or after ``--from`` and before
``--to``, each counted with everything it had (a stream that crosses ``--to`` is not cut), as a
streamer's "streams this month" would.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from infra.postgres import translate
from projections.report.audience import audience_sections
from projections.report.sections import (
    Cur,
    Row,
    chat_section,
    fetch_all,
    fetch_one,
    moderation_section,
    plain,
    polls_section,
    predictions_section,
)

__all__ = ["ChannelNotFound", "StreamNotFound", "channel_report", "stream_report"]

STREAM = """
SELECT s.stream_id, s.channel_id, c.slug AS channel, c.display_name AS channel_name, s.title, s.game,
       s.state, s.role, s.match_id, s.started_at, s.ended_at,
       extract(epoch FROM s.ended_at - s.started_at)::float8 AS duration_s
FROM streams s LEFT JOIN channels c USING (channel_id) WHERE s.stream_id = %s
"""
CHANNEL = "SELECT channel_id, slug, display_name FROM channels WHERE slug = %s"
CHANNEL_STREAMS = """
SELECT s.stream_id, s.title, s.game, s.state, s.started_at, s.ended_at,
       extract(epoch FROM s.ended_at - s.started_at)::float8 AS duration_s,
       v.peak_viewers, v.avg_viewers, a.unique_viewers, a.views,
       a.watch_ms / 1000.0 AS watch_time_s, round(a.avg_view_ms / 1000.0, 1) AS avg_view_duration_s,
       coalesce(c.messages, 0) AS messages, coalesce(c.chatters, 0) AS chatters
FROM streams s
LEFT JOIN stream_viewer_stats v USING (stream_id)
LEFT JOIN stream_audience a USING (stream_id)
LEFT JOIN stream_chat_stats c USING (stream_id)
WHERE s.channel_id = %(channel)s AND s.started_at >= %(from)s AND s.started_at < %(to)s
ORDER BY s.started_at, s.stream_id
"""


class StreamNotFound(LookupError):
    """No stream with that id in the read model."""


class ChannelNotFound(LookupError):
    """No channel with that slug in the read model."""


async def stream_report(pool: AsyncConnectionPool, stream_id: str) -> dict[str, Any]:
    """The stream's figures (see the module docstring); ``StreamNotFound`` if there is no such stream."""
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            stream = await fetch_one(cur, STREAM, (stream_id,))
            if stream is None:
                raise StreamNotFound(f"no stream {stream_id!r} in the read model")
            report = {"report": "stream", "stream": stream}
            report |= await _figures(cur, [stream_id], stream["duration_s"])
    except psycopg.Error as e:
        raise translate(e, f"reading the report of stream {stream_id}") from e
    return plain(report)


async def channel_report(
    pool: AsyncConnectionPool, slug: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """The channel's figures over the streams it went live with in [``start``, ``end``) (see the
    module docstring); ``ChannelNotFound`` if there is no such channel."""
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            channel = await fetch_one(cur, CHANNEL, (slug,))
            if channel is None:
                raise ChannelNotFound(f"no channel {slug!r} in the read model")
            params = {"channel": channel["channel_id"], "from": start, "to": end}
            streams = await fetch_all(cur, CHANNEL_STREAMS, params)
            report: dict[str, Any] = {"report": "channel", "channel": channel, "from": start, "to": end}
            report["streams"] = streams
            report |= await _figures(cur, [s["stream_id"] for s in streams], _live_s(streams))
    except psycopg.Error as e:
        raise translate(e, f"reading the report of channel {slug}") from e
    return plain(report)


async def _figures(cur: Cur, streams: list[str], live_s: float | None) -> Row:
    return await audience_sections(cur, streams) | {
        "chat": await chat_section(cur, streams, live_s),
        "moderation": await moderation_section(cur, streams),
        "polls": await polls_section(cur, streams),
        "predictions": await predictions_section(cur, streams),
    }


def _live_s(streams: list[Row]) -> float | None:
    """Seconds live over the streams, if they all ended (a live one's time is not known yet)."""
    if not streams or any(s["duration_s"] is None for s in streams):
        return None
    return float(sum(s["duration_s"] for s in streams))
