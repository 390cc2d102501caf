"""The live-state projector: which streams are live, and a small hash per stream, in Redis.

Keys (:class:`~projections.redis_keys.LiveKeys`: ``prefix`` is a constructor parameter, "" by
default, and every key carries the hash tag ``{redis.live}``, so a batch's MULTI/EXEC stays in one
Redis Cluster slot):

- ``{prefix}{redis.live}live:streams``: sorted set of the live streams, member stream_id, score =
  current viewers (the hash's ``viewers``: 0 when a stream goes live before any count);
- ``{prefix}{redis.live}stream:{stream_id}``: hash with ``state``, ``title``, ``channel_id``,
  ``game``, ``started_at`` and ``ended_at`` (ISO 8601, UTC), ``viewers`` and, from the first count
  on, ``peak_viewers`` and ``average_viewers`` (time-weighted mean since the stream's first count);
- ``{prefix}{redis.live}offsets:redis.live``: hash ``"topic:partition"`` -> next offset to apply.

``viewers.counts`` (ViewerCountChanged) sets the hash's ``viewers`` and, while the stream is live,
its score in ``live:streams`` (a count never puts a stream in the listing; a count that arrives
before the stream goes live is kept and becomes its score then). Counts are applied in log order
per stream (keyed by stream_id), and a redelivered batch is skipped by its offsets like every other
event.

Each batch is written in one MULTI/EXEC together with its offsets (exactly-once, like PostgreSQL),
under WATCH of the keys it read, so a concurrent writer makes it re-read instead of overwriting.
The state only moves forward (created < scheduled < live < ended), so the result does not depend
on how the ``streams`` and ``streams.lifecycle`` topics interleave, and a redelivered lifecycle
decision changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from events.base import Event
from events.streams import StreamCreated, StreamEnded, StreamScheduled, StreamUpdated, StreamWentLive
from events.topics import Topic
from events.viewers import ViewerCountChanged
from infra.kafka import ConsumedEvent
from infra.redis import RedisClient
from projections.projector import Partition, partition_of
from projections.redis_keys import LiveKeys
from projections.redis_projector import RedisProjector, next_offsets, offset_fields

__all__ = ["NAME", "STATE_RANK", "TOPICS", "LiveKeys", "LiveProjector", "next_hash"]

log = logging.getLogger(__name__)

NAME = LiveKeys.read_model
TOPICS = (Topic.STREAMS, Topic.STREAMS_LIFECYCLE, Topic.VIEWERS_COUNTS)
STATE_RANK = {"created": 0, "scheduled": 1, "live": 2, "ended": 3}

StreamHash = dict[str, str]
E = TypeVar("E", bound=Event)
Change = Callable[[StreamHash, Any], None]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _advance(stream: StreamHash, state: str) -> None:
    if STATE_RANK[state] >= STATE_RANK.get(stream.get("state", ""), -1):
        stream["state"] = state


def _created(stream: StreamHash, e: StreamCreated) -> None:
    stream.update(title=e.title, game=e.game, channel_id=e.channel_id)
    _advance(stream, "created")


def _updated(stream: StreamHash, e: StreamUpdated) -> None:
    if e.title is not None:
        stream["title"] = e.title
    if e.game is not None:
        stream["game"] = e.game


def _scheduled(stream: StreamHash, e: StreamScheduled) -> None:
    stream["channel_id"] = e.channel_id
    if e.title:
        stream["title"] = e.title
    _advance(stream, "scheduled")


def _went_live(stream: StreamHash, e: StreamWentLive) -> None:
    stream.setdefault("channel_id", e.channel_id)
    stream.setdefault("started_at", _iso(e.started_at))
    _advance(stream, "live")


def _ended(stream: StreamHash, e: StreamEnded) -> None:
    stream.setdefault("channel_id", e.channel_id)
    stream.setdefault("ended_at", _iso(e.ended_at))
    _advance(stream, "ended")


def _viewers(stream: StreamHash, e: ViewerCountChanged) -> None:
    stream["viewers"] = str(e.count)
    stream.update(peak_viewers=str(e.peak), average_viewers=f"{e.average:g}")  # v2 events carry the average


def _change(event_type: type[E], change: Callable[[StreamHash, E], None]) -> tuple[type[Event], Change]:
    return event_type, cast(Change, change)


CHANGES: Mapping[type[Event], Change] = dict(
    [
        _change(StreamCreated, _created),
        _change(StreamUpdated, _updated),
        _change(StreamScheduled, _scheduled),
        _change(StreamWentLive, _went_live),
        _change(StreamEnded, _ended),
        _change(ViewerCountChanged, _viewers),
    ]
)


def next_hash(current: Mapping[str, str], event: Event) -> StreamHash:
    """The stream's hash after ``event`` (pure; unchanged for events that do not concern it)."""
    stream = dict(current)
    change = CHANGES.get(type(event))
    if change is not None:
        change(stream, event)
        stream.setdefault("viewers", "0")
    return stream


class LiveProjector(RedisProjector):
    """Projects ``streams``, ``streams.lifecycle`` and ``viewers.counts`` into :class:`LiveKeys`."""

    name = NAME
    topics: tuple[str, ...] = TOPICS

    def __init__(self, client: RedisClient, *, prefix: str = "") -> None:
        self.keys = LiveKeys(prefix)
        super().__init__(client, offsets_key=self.keys.offsets)

    async def _store(self, batch: Sequence[ConsumedEvent]) -> None:
        stream_ids = sorted({c.event.stream_id for c in batch if type(c.event) in CHANGES})  # type: ignore[attr-defined]
        async with self._client.pipeline(transaction=True) as tx:
            await tx.watch(self.keys.offsets, *(self.keys.stream(s) for s in stream_ids))
            applied_up_to, streams = await self._read(batch, stream_ids)
            fresh = [c for c in batch if c.position.offset >= applied_up_to[partition_of(c)]]
            changed = _apply_all(streams, fresh)
            tx.multi()
            for stream_id in sorted(changed):
                self._write_stream(tx, stream_id, streams[stream_id])
            tx.hset(self.keys.offsets, mapping=offset_fields(next_offsets(applied_up_to, batch)))
            await tx.execute()
        self.stats.record(len(fresh), len(batch) - len(fresh), next_offsets(applied_up_to, batch))

    async def _read(
        self, batch: Sequence[ConsumedEvent], stream_ids: list[str]
    ) -> tuple[dict[Partition, int], dict[str, StreamHash]]:
        partitions = sorted({partition_of(c) for c in batch})
        async with self._client.pipeline(transaction=False) as reads:
            reads.hmget(self.keys.offsets, [f"{t}:{p}" for t, p in partitions])
            for stream_id in stream_ids:
                reads.hgetall(self.keys.stream(stream_id))
            offsets, *hashes = await reads.execute()
        applied_up_to = {p: int(value or 0) for p, value in zip(partitions, offsets, strict=True)}
        return applied_up_to, dict(zip(stream_ids, hashes, strict=True))

    def _write_stream(self, tx: Any, stream_id: str, stream: StreamHash) -> None:
        tx.hset(self.keys.stream(stream_id), mapping=stream)
        if stream.get("state") == "live":
            tx.zadd(self.keys.live, {stream_id: int(stream.get("viewers", "0"))})
        else:
            tx.zrem(self.keys.live, stream_id)


def _apply_all(streams: dict[str, StreamHash], batch: Sequence[ConsumedEvent]) -> set[str]:
    changed: set[str] = set()
    for consumed in batch:
        stream_id = getattr(consumed.event, "stream_id", None)
        if stream_id is None or type(consumed.event) not in CHANGES:
            continue
        new = next_hash(streams[stream_id], consumed.event)
        if new != streams[stream_id]:
            streams[stream_id] = new
            changed.add(stream_id)
    return changed
