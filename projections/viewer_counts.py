"""The ``pg.viewers`` projector: concurrent viewers per stream as a 10 s time series in PostgreSQL.

From ``viewers.counts``: each ViewerCountChanged falls into the 10 s bucket of its ``occurred_at``
(aligned to the epoch); ``viewers`` keeps the highest count of the bucket and ``peak`` the stream's
highest peak, so applying a count twice, or counts of one bucket in any order, gives the same row.
Exactly-once comes from :class:`~projections.projector.PostgresProjector` as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.viewers import ViewerCountChanged
from projections.projector import Apply, Cursor, PostgresProjector, handles

__all__ = ["BUCKET_S", "HANDLERS", "NAME", "TOPICS", "bucket_of", "viewer_counts_projector"]

NAME = "pg.viewers"
TOPICS = ("viewers.counts",)
BUCKET_S = 10

UPSERT_COUNT = """
INSERT INTO viewer_counts AS v (stream_id, bucket, viewers, peak)
VALUES (%(stream)s, %(bucket)s, %(viewers)s, %(peak)s)
ON CONFLICT (stream_id, bucket) DO UPDATE SET
    viewers = GREATEST(v.viewers, EXCLUDED.viewers), peak = GREATEST(v.peak, EXCLUDED.peak)
"""


def bucket_of(moment: datetime) -> datetime:
    """The start of the 10 s bucket holding ``moment`` (UTC)."""
    seconds = int(moment.timestamp()) // BUCKET_S * BUCKET_S
    return datetime.fromtimestamp(seconds, tz=UTC)


async def count_changed(cur: Cursor, e: ViewerCountChanged) -> None:
    params = {
        "stream": e.stream_id,
        "bucket": bucket_of(e.occurred_at),
        "viewers": e.count,
        "peak": max(e.peak, e.count),
    }
    await cur.execute(UPSERT_COUNT, params)


HANDLERS: Mapping[type[Event], Apply] = dict([handles(ViewerCountChanged, count_changed)])


def viewer_counts_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The viewer-count time series projector writing into ``schema``."""
    return PostgresProjector(pool, name=NAME, topics=TOPICS, handlers=HANDLERS, schema=schema)
