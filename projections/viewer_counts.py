"""Viewer counts in the read models: 10 s time series in PostgreSQL, each match's audience in Redis.

``pg.viewers`` (PostgreSQL), from ``viewers.counts`` and ``viewers.match_counts``: each
ViewerCountChanged (MatchAudienceChanged) falls into the 10 s bucket of its ``occurred_at`` (aligned
to the epoch) of ``viewer_counts`` (``match_viewer_counts``); ``viewers`` keeps the highest count of
the bucket and ``peak`` the highest peak, so applying a count twice, or counts of one bucket in any
order, gives the same row. Exactly-once comes from :class:`~projections.projector.PostgresProjector`
as well.

``redis.match_viewers`` (Redis), from ``viewers.match_counts``: per match the hash
``{prefix}{redis.match_viewers}match:{match_id}:viewers``
(:class:`~projections.redis_keys.MatchViewerKeys`) with ``viewers``, ``peak`` and ``average`` of the
latest MatchAudienceChanged (the API's match objects read it), written with its offsets in one
MULTI/EXEC.
A stream's count, peak and average live in the ``redis.live`` stream hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.topics import Topic
from events.viewers import MatchAudienceChanged, ViewerCountChanged
from infra.kafka import ConsumedEvent
from infra.redis import RedisClient
from projections.projector import Apply, Cursor, PostgresProjector, handles
from projections.redis_keys import MatchViewerKeys
from projections.redis_projector import RedisProjector

__all__ = [
    "BUCKET_S",
    "HANDLERS",
    "MATCH_NAME",
    "MATCH_TOPICS",
    "NAME",
    "TOPICS",
    "MatchViewerKeys",
    "MatchViewersProjector",
    "bucket_of",
    "viewer_counts_projector",
]

NAME = "pg.viewers"
TOPICS = (Topic.VIEWERS_COUNTS, Topic.VIEWERS_MATCH_COUNTS)
MATCH_NAME = MatchViewerKeys.read_model
MATCH_TOPICS = (Topic.VIEWERS_MATCH_COUNTS,)
BUCKET_S = 10

UPSERT_COUNT = """
INSERT INTO viewer_counts AS v (stream_id, bucket, viewers, peak)
VALUES (%(stream)s, %(bucket)s, %(viewers)s, %(peak)s)
ON CONFLICT (stream_id, bucket) DO UPDATE SET
    viewers = GREATEST(v.viewers, EXCLUDED.viewers), peak = GREATEST(v.peak, EXCLUDED.peak)
"""

UPSERT_MATCH = """
INSERT INTO match_viewer_counts AS v (match_id, bucket, viewers, peak)
VALUES (%(match)s, %(bucket)s, %(viewers)s, %(peak)s)
ON CONFLICT (match_id, bucket) DO UPDATE SET
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


async def audience_changed(cur: Cursor, e: MatchAudienceChanged) -> None:
    params = {
        "match": e.match_id,
        "bucket": bucket_of(e.occurred_at),
        "viewers": e.count,
        "peak": max(e.peak, e.count),
    }
    await cur.execute(UPSERT_MATCH, params)


HANDLERS: Mapping[type[Event], Apply] = dict(
    [handles(ViewerCountChanged, count_changed), handles(MatchAudienceChanged, audience_changed)]
)


def viewer_counts_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The viewer-count time series projector (streams and matches) writing into ``schema``."""
    return PostgresProjector(pool, name=NAME, topics=TOPICS, handlers=HANDLERS, schema=schema)


def audience_hash(e: MatchAudienceChanged) -> dict[str, str]:
    """The match hash's fields after ``e`` (the latest count of a match replaces the previous one)."""
    return {"viewers": str(e.count), "peak": str(max(e.peak, e.count)), "average": f"{e.average:g}"}


class MatchViewersProjector(RedisProjector):
    """Projects ``viewers.match_counts`` into :class:`MatchViewerKeys` (exactly once, with offsets)."""

    name = MATCH_NAME
    topics: tuple[str, ...] = MATCH_TOPICS

    def __init__(self, client: RedisClient, *, prefix: str = "") -> None:
        self.keys = MatchViewerKeys(prefix)
        super().__init__(client, offsets_key=self.keys.offsets)

    async def _store(self, batch: Sequence[ConsumedEvent]) -> None:
        await self._store_fresh(batch, self._write)

    def _write(self, tx: Any, fresh: Sequence[ConsumedEvent]) -> None:
        latest: dict[str, dict[str, str]] = {}
        for consumed in fresh:  # in log order per match (keyed by match_id): the last one wins
            if isinstance(consumed.event, MatchAudienceChanged):
                latest[consumed.event.match_id] = audience_hash(consumed.event)
        for match_id, fields in sorted(latest.items()):
            tx.hset(self.keys.match(match_id), mapping=cast(Any, fields))  # redis-py's key type
