"""Clips (on ``streams``, keyed by ``stream_id``): requested by the API, cut by an ingest node.

Each event writes only its own columns and inserts the row when it comes first, so any order gives
the same row: ``ready`` (ClipCreated) wins over ``failed`` (ClipFailed, from a node that held the
stream but not the range) and over ``pending``; a repeat changes nothing.
"""

from __future__ import annotations

from events.streams import ClipCreated, ClipFailed, ClipRequested
from projections.projector import Cursor, handles


async def clip_requested(cur: Cursor, e: ClipRequested) -> None:
    await cur.execute(
        "INSERT INTO clips AS c (clip_id, stream_id, channel_id, requested_by, title, start_ms,"
        " requested_ms, requested_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (clip_id) DO UPDATE SET requested_ms = EXCLUDED.requested_ms,"
        " requested_at = EXCLUDED.requested_at",
        (
            e.clip_id,
            e.stream_id,
            e.channel_id,
            e.requested_by,
            e.title,
            e.start_ms,
            e.duration_ms,
            e.occurred_at,
        ),
    )


async def clip_created(cur: Cursor, e: ClipCreated) -> None:
    await cur.execute(
        "INSERT INTO clips AS c (clip_id, stream_id, channel_id, requested_by, title, start_ms,"
        " duration_ms, url, reencoded, status, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " 'ready', %s)"
        " ON CONFLICT (clip_id) DO UPDATE SET channel_id = EXCLUDED.channel_id,"
        " requested_by = EXCLUDED.requested_by, title = EXCLUDED.title, start_ms = EXCLUDED.start_ms,"
        " duration_ms = EXCLUDED.duration_ms, url = EXCLUDED.url, reencoded = EXCLUDED.reencoded,"
        " status = 'ready', failure = NULL, created_at = EXCLUDED.created_at WHERE c.status <> 'ready'",
        (
            e.clip_id,
            e.stream_id,
            e.channel_id,
            e.requested_by,
            e.title,
            e.start_ms,
            e.duration_ms,
            e.url,
            e.reencoded,
            e.occurred_at,
        ),
    )


async def clip_failed(cur: Cursor, e: ClipFailed) -> None:
    await cur.execute(
        "INSERT INTO clips AS c (clip_id, stream_id, status, failure) VALUES (%s, %s, 'failed', %s)"
        " ON CONFLICT (clip_id) DO UPDATE SET status = 'failed', failure = EXCLUDED.failure"
        " WHERE c.status = 'pending'",
        (e.clip_id, e.stream_id, e.reason),
    )


HANDLERS = dict(
    [
        handles(ClipRequested, clip_requested),
        handles(ClipCreated, clip_created),
        handles(ClipFailed, clip_failed),
    ]
)
