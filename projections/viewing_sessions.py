"""The ``pg.viewing_sessions`` projector: who watched which stream, when and for how long.

From ``viewers.sessions`` (ViewingSessionStarted, ViewingSessionEnded: decided by the presence worker
where the session's heartbeats land, kept for good). One row per (stream, session, start) in
``viewing_sessions`` (``migrations/0018_viewing_sessions.sql``, with the audience and retention views
the reports print).

The same session event can be on the log twice (its id is derived from the session, so a worker that
decided it again republished it), and a rebuild reads every event again: every statement is
idempotent by key. A start inserts the row or changes nothing; an end inserts the whole row (an end
carries the start) or fills the end, keeping the later of two ends (a worker that took the partition
over and saw the session again ends it later), so the row does not depend on the order the events are
applied in. Exactly-once for the offsets comes from :class:`~projections.projector.PostgresProjector`.

A batch is applied with two statements (every start, then every end), each event's key once per
statement: PostgreSQL refuses to update one row twice in one ``INSERT ... ON CONFLICT``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.topics import Topic
from events.viewers import ViewingSessionEnded, ViewingSessionStarted
from projections.projector import Apply, Cursor, PostgresProjector, handles

__all__ = ["HANDLERS", "NAME", "TOPICS", "ends_by_key", "starts_by_key", "viewing_sessions_projector"]

NAME = "pg.viewing_sessions"
TOPICS = (Topic.VIEWERS_SESSIONS,)

Key = tuple[str, str, Any]  # (stream_id, session_id, started_at)

_COLUMNS = "stream_id, session_id, started_at, ended_at, watch_ms, edge_id, user_id, match_id, referrer"
INSERT_STARTS = f"""
INSERT INTO viewing_sessions ({_COLUMNS})
SELECT stream_id, session_id, started_at, NULL, NULL, edge_id, user_id, match_id, referrer
FROM unnest(%(stream)s::text[], %(session)s::text[], %(started)s::timestamptz[], %(edge)s::text[],
    %(user)s::text[], %(match)s::text[], %(referrer)s::text[])
    AS x(stream_id, session_id, started_at, edge_id, user_id, match_id, referrer)
ON CONFLICT (stream_id, session_id, started_at) DO NOTHING
"""
UPSERT_ENDS = f"""
INSERT INTO viewing_sessions AS s ({_COLUMNS})
SELECT * FROM unnest(%(stream)s::text[], %(session)s::text[], %(started)s::timestamptz[],
    %(ended)s::timestamptz[], %(watch)s::bigint[], %(edge)s::text[], %(user)s::text[], %(match)s::text[],
    %(referrer)s::text[])
ON CONFLICT (stream_id, session_id, started_at) DO UPDATE SET
    ended_at = EXCLUDED.ended_at, watch_ms = EXCLUDED.watch_ms
WHERE s.ended_at IS NULL OR s.ended_at < EXCLUDED.ended_at
"""


def _key(e: ViewingSessionStarted | ViewingSessionEnded) -> Key:
    return e.stream_id, e.session_id, e.started_at


def starts_by_key(events: Sequence[Event]) -> dict[Key, ViewingSessionStarted]:
    """The batch's starts, one per session row (the first: copies of one start are equal)."""
    starts: dict[Key, ViewingSessionStarted] = {}
    for e in events:
        if isinstance(e, ViewingSessionStarted):
            starts.setdefault(_key(e), e)
    return starts


def ends_by_key(events: Sequence[Event]) -> dict[Key, ViewingSessionEnded]:
    """The batch's ends, one per session row: the latest end, as the table keeps it."""
    ends: dict[Key, ViewingSessionEnded] = {}
    for e in events:
        if isinstance(e, ViewingSessionEnded):
            held = ends.get(_key(e))
            if held is None or held.ended_at < e.ended_at:
                ends[_key(e)] = e
    return ends


def _start_params(starts: Sequence[ViewingSessionStarted]) -> dict[str, list[Any]]:
    return {
        "stream": [e.stream_id for e in starts],
        "session": [e.session_id for e in starts],
        "started": [e.started_at for e in starts],
        "edge": [e.edge_id for e in starts],
        "user": [e.user_id for e in starts],
        "match": [e.match_id for e in starts],
        "referrer": [e.referrer for e in starts],
    }


def _end_params(ends: Sequence[ViewingSessionEnded]) -> dict[str, list[Any]]:
    return {
        "stream": [e.stream_id for e in ends],
        "session": [e.session_id for e in ends],
        "started": [e.started_at for e in ends],
        "ended": [e.ended_at for e in ends],
        "watch": [e.watch_ms for e in ends],
        "edge": [e.edge_id for e in ends],
        "user": [e.user_id for e in ends],
        "match": [e.match_id for e in ends],
        "referrer": [e.referrer for e in ends],
    }


async def apply_batch(cur: Cursor, events: Sequence[Event]) -> None:
    """Every start of the batch, then every end (the same rows as the handlers one by one)."""
    starts, ends = starts_by_key(events), ends_by_key(events)
    if starts:
        await cur.execute(INSERT_STARTS, _start_params(list(starts.values())))
    if ends:
        await cur.execute(UPSERT_ENDS, _end_params(list(ends.values())))


async def session_started(cur: Cursor, e: ViewingSessionStarted) -> None:
    await cur.execute(INSERT_STARTS, _start_params([e]))


async def session_ended(cur: Cursor, e: ViewingSessionEnded) -> None:
    await cur.execute(UPSERT_ENDS, _end_params([e]))


HANDLERS: Mapping[type[Event], Apply] = dict(
    [
        handles(ViewingSessionStarted, session_started),
        handles(ViewingSessionEnded, session_ended),
    ]
)


def viewing_sessions_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The viewing-sessions projector writing into ``schema``."""
    return PostgresProjector(
        pool, name=NAME, topics=TOPICS, handlers=HANDLERS, batch=apply_batch, schema=schema
    )
