"""Read-your-writes: has the read model applied the event at a given log position yet?

A command answers with the position of its event (``topic:partition:offset``); a query naming that
position waits until the PostgreSQL projector consuming the topic has stored a next offset beyond it.
The projector writes ``projection_offsets`` in the same transaction as its rows, so "reached" means
the rows are visible too.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from events.topics import Topic
from infra.kafka import Position
from infra.postgres import translate
from projections import catalog, chat, notifications, points, polls, viewer_counts, viewing_sessions
from projections.database import checked_schema

__all__ = [
    "POLL_INTERVAL_S",
    "PROJECTORS_BY_TOPIC",
    "parse_position",
    "position_reached",
    "wait_for_position",
]

POLL_INTERVAL_S = 0.02
# Which PostgreSQL projector makes a topic's events visible to queries.
PROJECTORS_BY_TOPIC: dict[str, str] = {
    topic: projector.NAME
    for projector in (catalog, chat, viewer_counts, polls, points, viewing_sessions)
    for topic in projector.TOPICS
}
# pg.notifications reads `users` too (NotificationsRead), but `users` positions stay pg.catalog's: the
# inbox route names pg.notifications for them (``projector=``).
PROJECTORS_BY_TOPIC[Topic.NOTIFICATIONS] = notifications.NAME

REACHED = (
    "SELECT next_offset > %s FROM {}.projection_offsets"
    " WHERE projector = %s AND topic = %s AND partition = %s"
)


def parse_position(text: str) -> Position:
    """``"topic:partition:offset"`` (``str(Position)``) back into a :class:`Position`; ``ValueError``
    if malformed. Topic names may contain dots but not colons."""
    topic, partition, offset = text.strip().rsplit(":", 2)
    if not topic or int(partition) < 0 or int(offset) < 0:
        raise ValueError(f"not a position: {text!r} (expected topic:partition:offset)")
    return Position(topic, int(partition), int(offset))


async def position_reached(
    conn: AsyncConnection, position: Position, *, schema: str = "public", projector: str | None = None
) -> bool:
    """Whether the read model (of ``projector``; default: the one :data:`PROJECTORS_BY_TOPIC` names for
    the topic) includes the event at ``position``.

    True for a topic no PostgreSQL projector consumes (there is nothing to wait for).
    """
    projector = projector or PROJECTORS_BY_TOPIC.get(position.topic)
    if projector is None:
        return True
    query = sql.SQL(REACHED).format(sql.Identifier(checked_schema(schema)))
    try:
        cur = await conn.execute(query, (position.offset, projector, position.topic, position.partition))
        row = await cur.fetchone()
    except psycopg.Error as e:
        raise translate(e, f"reading the position of {projector}") from e
    return bool(row and row[0])


async def wait_for_position(
    pool: AsyncConnectionPool,
    position: Position,
    timeout_s: float,
    *,
    schema: str = "public",
    projector: str | None = None,
) -> bool:
    """Wait until :func:`position_reached` (polling every 20 ms); False if ``timeout_s`` passed first.

    A connection is taken from the pool for each poll only, so waiting queries do not hold the pool.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with pool.connection() as conn:
                if await position_reached(conn, position, schema=schema, projector=projector):
                    return True
        except psycopg.Error as e:  # the pool's own errors (PoolTimeout...)
            raise translate(e, "waiting for a read-model position") from e
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL_S)
