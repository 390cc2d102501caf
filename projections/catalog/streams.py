"""Streams: metadata from ``streams`` (the API), lifecycle decisions from ``streams.lifecycle``.

The two topics are consumed at their own pace, so a ``StreamWentLive`` can be applied before the
``StreamCreated`` it follows in real time. Each side therefore writes only its own columns, inserting
a placeholder row when it comes first (``created_at`` NULL until the ``StreamCreated``), and the
``state`` column is computed by PostgreSQL from ``scheduled_start``/``started_at``/``ended_at``: the
result is the same whatever the interleaving. Lifecycle decisions may be redelivered as new records
(same event id, new offset): they keep the first ``started_at``/``ended_at``, so a duplicate changes
nothing, and they never touch ``updated_at`` (the time of the last metadata change).
"""

from __future__ import annotations

from events.streams import (
    StreamCreated,
    StreamEnded,
    StreamEndRequested,
    StreamScheduled,
    StreamTransitionRejected,
    StreamUpdated,
    StreamVodDeleted,
    StreamWentLive,
)
from projections.projector import Cursor, handles

# A match's main stream is whichever stream first claims it, unless MatchScheduled named one.
LINK_MAIN_STREAM = """
UPDATE matches SET main_stream_id = s.stream_id FROM streams AS s
WHERE s.stream_id = %s AND s.role = 'main' AND s.match_id = matches.match_id
  AND matches.main_stream_id IS NULL
"""


async def stream_created(cur: Cursor, e: StreamCreated) -> None:
    """Insert, or fill the placeholder a lifecycle decision left (a duplicate changes nothing)."""
    await cur.execute(
        "INSERT INTO streams AS s (stream_id, channel_id, owner_id, title, game, tags, language, match_id,"
        " role, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s::text[], %s, %s, %s, %s, %s)"
        " ON CONFLICT (stream_id) DO UPDATE SET channel_id = EXCLUDED.channel_id,"
        " owner_id = EXCLUDED.owner_id, title = EXCLUDED.title, game = EXCLUDED.game,"
        " tags = EXCLUDED.tags, language = EXCLUDED.language, match_id = EXCLUDED.match_id,"
        " role = EXCLUDED.role, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at"
        " WHERE s.created_at IS NULL",
        (
            e.stream_id,
            e.channel_id,
            e.owner_id,
            e.title,
            e.game,
            list(e.tags),
            e.language,
            e.match_id,
            e.role.value,
            e.occurred_at,
            e.occurred_at,
        ),
    )
    await cur.execute(LINK_MAIN_STREAM, (e.stream_id,))


async def stream_updated(cur: Cursor, e: StreamUpdated) -> None:
    """A partial update: ``None`` keeps the column."""
    await cur.execute(
        "UPDATE streams SET title = COALESCE(%s, title), game = COALESCE(%s, game),"
        " tags = COALESCE(%s::text[], tags), match_id = COALESCE(%s, match_id),"
        " role = COALESCE(%s, role), language = COALESCE(%s, language),"
        " updated_at = GREATEST(updated_at, %s) WHERE stream_id = %s",
        (
            e.title,
            e.game,
            None if e.tags is None else list(e.tags),
            e.match_id,
            None if e.role is None else e.role.value,
            e.language,
            e.occurred_at,
            e.stream_id,
        ),
    )
    await cur.execute(LINK_MAIN_STREAM, (e.stream_id,))


async def stream_scheduled(cur: Cursor, e: StreamScheduled) -> None:
    """Set the planned start; an empty title or a missing match keeps the current one."""
    await cur.execute(
        "INSERT INTO streams AS s (stream_id, channel_id, title, match_id, scheduled_start, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (stream_id) DO UPDATE SET scheduled_start = EXCLUDED.scheduled_start,"
        " title = COALESCE(NULLIF(EXCLUDED.title, ''), s.title),"
        " match_id = COALESCE(EXCLUDED.match_id, s.match_id),"
        " updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at)",
        (e.stream_id, e.channel_id, e.title, e.match_id, e.scheduled_start, e.occurred_at),
    )


async def stream_went_live(cur: Cursor, e: StreamWentLive) -> None:
    await cur.execute(
        "INSERT INTO streams AS s (stream_id, channel_id, match_id, role, started_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (stream_id) DO UPDATE SET started_at = COALESCE(s.started_at, EXCLUDED.started_at)",
        (e.stream_id, e.channel_id, e.match_id, e.role.value, e.started_at, e.started_at),
    )


async def stream_ended(cur: Cursor, e: StreamEnded) -> None:
    await cur.execute(
        "INSERT INTO streams AS s (stream_id, channel_id, ended_at, end_reason, updated_at)"
        " VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (stream_id) DO UPDATE SET ended_at = COALESCE(s.ended_at, EXCLUDED.ended_at),"
        " end_reason = COALESCE(s.end_reason, EXCLUDED.end_reason)",
        (e.stream_id, e.channel_id, e.ended_at, e.reason.value, e.ended_at),
    )


async def stream_vod_deleted(cur: Cursor, e: StreamVodDeleted) -> None:
    """The replay is gone (owner or retention): the first deletion is kept, a repeat changes nothing.
    A placeholder row keeps it when the stream's other events are applied later (a replay)."""
    await cur.execute(
        "INSERT INTO streams AS s (stream_id, channel_id, vod_deleted_at, vod_deleted_reason, updated_at)"
        " VALUES (%s, '', %s, %s, %s)"
        " ON CONFLICT (stream_id) DO UPDATE"
        " SET vod_deleted_at = COALESCE(s.vod_deleted_at, EXCLUDED.vod_deleted_at),"
        " vod_deleted_reason = COALESCE(s.vod_deleted_reason, EXCLUDED.vod_deleted_reason)",
        (e.stream_id, e.occurred_at, e.reason.value, e.occurred_at),
    )


async def unchanged(cur: Cursor, e: StreamEndRequested | StreamTransitionRejected) -> None:
    """A request or a refusal: the state changes only when the lifecycle agent decides it did."""


HANDLERS = dict(
    [
        handles(StreamCreated, stream_created),
        handles(StreamUpdated, stream_updated),
        handles(StreamScheduled, stream_scheduled),
        handles(StreamEndRequested, unchanged),
        handles(StreamWentLive, stream_went_live),
        handles(StreamEnded, stream_ended),
        handles(StreamTransitionRejected, unchanged),
        handles(StreamVodDeleted, stream_vod_deleted),
    ]
)
