"""The ``pg.catalog`` projector: users, channels, streams (and their clips) and tournaments into PostgreSQL.

One small ``apply(cur, event)`` per event type, in one module per family; this module assembles
the dispatch table and builds the projector.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.topics import Topic
from projections.catalog import channels, clips, streams, tournaments, users
from projections.projector import Apply, PostgresProjector

__all__ = ["HANDLERS", "NAME", "TOPICS", "catalog_projector"]

NAME = "pg.catalog"
TOPICS = (Topic.USERS, Topic.CHANNELS, Topic.STREAMS, Topic.STREAMS_LIFECYCLE, Topic.TOURNAMENTS)
HANDLERS: Mapping[type[Event], Apply] = {
    **users.HANDLERS,
    **channels.HANDLERS,
    **streams.HANDLERS,
    **clips.HANDLERS,
    **tournaments.HANDLERS,
}


def catalog_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The catalog projector writing into ``schema``."""
    return PostgresProjector(pool, name=NAME, topics=TOPICS, handlers=HANDLERS, schema=schema)
