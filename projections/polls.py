"""The ``pg.polls`` projector: polls, their latest tally and their final result in PostgreSQL.

From ``polls`` (PollOpened, PollClosed: what moderators asked for; votes are read past) and
``polls.tallies`` (PollTallyUpdated: what the poll agent decided). Only the agent knows who may run
polls, so a poll enters ``polls`` with its first tally (the agent publishes an all-zero one when it
accepts an open) and never for a refused open; every open and close request is kept in
``poll_requests`` (the audit record, refused ones included).

The two topics are read by one consumer but not in one order: a tally can be applied before its
PollOpened (a rebuild, a lagging partition). Each handler therefore completes what the other left:
the tally takes the opening's fields from ``poll_requests`` when they are there, and a PollOpened
fills them into a row a tally created first. Likewise for ``closed_by``: the final tally is stamped
with the close's time (the accepted PollClosed's ``occurred_at``, or ``closes_at`` when the deadline
closed it), so the close request of that poll (or of every open one, :data:`~events.polls.ALL_OPEN`:
``/endpoll``) at that very millisecond is the one the agent accepted, whichever of the two is applied
first. A final tally is never replaced (a running tally re-published after an agent restart comes
after it in the log).

Exactly-once comes from :class:`~projections.projector.PostgresProjector`; every statement is also
idempotent by key.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.polls import ALL_OPEN, PollClosed, PollOpened, PollTallyUpdated
from events.topics import Topic
from projections.projector import Apply, Cursor, PostgresProjector, handles

__all__ = ["HANDLERS", "NAME", "TOPICS", "polls_projector"]

NAME = "pg.polls"
TOPICS = (Topic.POLLS, Topic.POLLS_TALLIES)

INSERT_OPEN = """
INSERT INTO poll_requests
    (event_id, kind, poll_id, stream_id, actor, requested_at, question, options, closes_at)
VALUES (%(event)s, 'open', %(poll)s, %(stream)s, %(actor)s, %(at)s, %(question)s, %(options)s, %(closes)s)
ON CONFLICT (event_id) DO NOTHING
"""
FILL_OPENING = """
UPDATE polls SET question = %(question)s, options = %(options)s, opened_by = %(actor)s,
    opened_at = %(at)s, closes_at = %(closes)s
WHERE poll_id = %(poll)s AND stream_id = %(stream)s AND question IS NULL
"""
INSERT_CLOSE = """
INSERT INTO poll_requests (event_id, kind, poll_id, stream_id, actor, requested_at)
VALUES (%(event)s, 'close', %(poll)s, %(stream)s, %(actor)s, %(at)s)
ON CONFLICT (event_id) DO NOTHING
"""
FILL_CLOSER = """
UPDATE polls SET closed_by = %(actor)s
WHERE stream_id = %(stream)s AND (poll_id = %(poll)s OR %(every_open)s) AND final
    AND closed_by IS NULL AND closed_at = %(at)s
"""
UPSERT_TALLY = """
INSERT INTO polls AS p (poll_id, stream_id, question, options, opened_by, opened_at, closes_at,
    closed_at, closed_by, counts, total, final)
SELECT %(poll)s, %(stream)s, o.question, o.options, o.actor, o.requested_at, o.closes_at,
    %(closed_at)s, c.actor, %(counts)s, %(total)s, %(final)s
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT question, options, actor, requested_at, closes_at FROM poll_requests
    WHERE kind = 'open' AND poll_id = %(poll)s AND stream_id = %(stream)s
    ORDER BY requested_at, event_id LIMIT 1
) AS o ON true
LEFT JOIN LATERAL (
    SELECT actor FROM poll_requests
    WHERE kind = 'close' AND stream_id = %(stream)s AND poll_id IN (%(poll)s, %(all_open)s)
        AND requested_at = %(closed_at)s
    ORDER BY event_id LIMIT 1
) AS c ON true
ON CONFLICT (poll_id) DO UPDATE SET
    counts = EXCLUDED.counts, total = EXCLUDED.total, final = EXCLUDED.final,
    closed_at = EXCLUDED.closed_at, closed_by = EXCLUDED.closed_by
WHERE NOT p.final
"""


async def poll_opened(cur: Cursor, e: PollOpened) -> None:
    params = {
        "event": e.event_id,
        "poll": e.poll_id,
        "stream": e.stream_id,
        "actor": e.opened_by,
        "at": e.occurred_at,
        "question": e.question,
        "options": list(e.options),
        "closes": e.closes_at,
    }
    await cur.execute(INSERT_OPEN, params)
    await cur.execute(FILL_OPENING, params)


async def poll_closed(cur: Cursor, e: PollClosed) -> None:
    params = {
        "event": e.event_id,
        "poll": e.poll_id,
        "stream": e.stream_id,
        "actor": e.closed_by,
        "at": e.occurred_at,
        "every_open": e.poll_id == ALL_OPEN,
    }
    await cur.execute(INSERT_CLOSE, params)
    await cur.execute(FILL_CLOSER, params)


async def tally_updated(cur: Cursor, e: PollTallyUpdated) -> None:
    params = {
        "poll": e.poll_id,
        "stream": e.stream_id,
        "counts": list(e.counts),
        "total": e.total,
        "final": e.final,
        "closed_at": e.occurred_at if e.final else None,
        "all_open": ALL_OPEN,
    }
    await cur.execute(UPSERT_TALLY, params)


HANDLERS: Mapping[type[Event], Apply] = dict(
    [
        handles(PollOpened, poll_opened),
        handles(PollClosed, poll_closed),
        handles(PollTallyUpdated, tally_updated),
    ]
)


def polls_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The polls projector writing into ``schema``."""
    return PostgresProjector(pool, name=NAME, topics=TOPICS, handlers=HANDLERS, schema=schema)
