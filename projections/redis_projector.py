"""What every Redis projector shares: offsets stored beside the data, applied in one MULTI/EXEC.

A projector keeps its next offset per partition in a hash written in the same transaction as its
changes, WATCHing the keys it read; a concurrent writer makes the transaction fail and the batch is
re-read and re-applied, so a batch is applied exactly once even with two instances running.

Which keys a projector owns (what ``esports rebuild`` replaces) follows from its key layout, a
:class:`~projections.redis_keys.ReadModelKeys` in ``keys``: every string attribute is a key, and every
one-argument method a family of keys (``keys.stream("*")``). The layout puts all of them in one
Redis Cluster hash slot, so the WATCH and the MULTI/EXEC of a batch run on one node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis.exceptions

from infra.kafka import ConsumedEvent
from infra.redis import DRIVER_ERRORS, CacheUnavailable, RedisClient, translate
from projections.projector import Partition, ProjectorStats, partition_of
from projections.redis_keys import ReadModelKeys, glob_escape

__all__ = [
    "WATCH_ATTEMPTS",
    "RedisProjector",
    "glob_escape",
    "next_offsets",
    "offset_fields",
    "owned_key_patterns",
]

log = logging.getLogger(__name__)

WATCH_ATTEMPTS = 5


class RedisProjector:
    """Base of the Redis projectors: resume positions and the WATCH-retry loop; subclasses `_store`."""

    name: str
    topics: tuple[str, ...]

    def __init__(self, client: RedisClient, *, offsets_key: str) -> None:
        self._client = client
        self._offsets_key = offsets_key
        self.stats = ProjectorStats()

    async def start_positions(self, partitions: list[Partition]) -> dict[Partition, int]:
        """Stored next offsets; 0 (the beginning) where nothing was applied yet."""
        try:
            stored = await self._client.hmget(self._offsets_key, [f"{t}:{p}" for t, p in partitions])
        except DRIVER_ERRORS as e:
            raise translate(e, f"reading {self.name} offsets") from e
        return {p: int(value or 0) for p, value in zip(partitions, stored, strict=True)}

    @property
    def offsets_key(self) -> str:
        """The hash of this projector's next offsets ("topic:partition" -> offset)."""
        return self._offsets_key

    async def store(self, batch: Sequence[ConsumedEvent]) -> None:
        """Apply ``batch`` and its offsets in one MULTI/EXEC (re-read if a watched key changed)."""
        try:
            for _ in range(WATCH_ATTEMPTS):
                try:
                    return await self._store(batch)
                except redis.exceptions.WatchError:
                    log.info("projector=%s: a watched key changed, re-reading the batch", self.name)
        except DRIVER_ERRORS as e:
            raise translate(e, f"projector {self.name}") from e
        raise CacheUnavailable(f"projector {self.name}: keys kept changing under {WATCH_ATTEMPTS} attempts")

    async def _store(self, batch: Sequence[ConsumedEvent]) -> None:
        raise NotImplementedError

    async def _store_fresh(
        self, batch: Sequence[ConsumedEvent], write: Callable[[Any, Sequence[ConsumedEvent]], None]
    ) -> None:
        """``_store`` for a projector whose writes read nothing stored but its offsets: WATCH the
        offsets, drop what was already applied, queue ``write(tx, fresh)`` and the new offsets in one
        MULTI/EXEC."""
        partitions = sorted({partition_of(c) for c in batch})
        async with self._client.pipeline(transaction=True) as tx:
            await tx.watch(self._offsets_key)
            stored = await tx.hmget(self._offsets_key, [f"{t}:{p}" for t, p in partitions])
            applied_up_to = {p: int(v or 0) for p, v in zip(partitions, stored, strict=True)}
            fresh = [c for c in batch if c.position.offset >= applied_up_to[partition_of(c)]]
            tx.multi()
            write(tx, fresh)
            tx.hset(self._offsets_key, mapping=offset_fields(next_offsets(applied_up_to, batch)))
            await tx.execute()
        self.stats.record(len(fresh), len(batch) - len(fresh), next_offsets(applied_up_to, batch))


def next_offsets(
    applied_up_to: Mapping[Partition, int], batch: Sequence[ConsumedEvent]
) -> dict[Partition, int]:
    """The offsets to store after ``batch``: one past the last record seen per partition."""
    after = dict(applied_up_to)
    for consumed in batch:
        key = partition_of(consumed)
        after[key] = max(after[key], consumed.position.offset + 1)
    return after


def offset_fields(offsets: Mapping[Partition, int]) -> dict[Any, int]:
    """The offsets hash's fields ("topic:partition") and values."""
    return {f"{topic}:{partition}": offset for (topic, partition), offset in offsets.items()}


def owned_key_patterns(projector: RedisProjector) -> list[str]:
    """The MATCH patterns of every key ``projector`` writes (its prefix included), offsets too.

    From its ``keys`` layout object (see the module docstring); ``ValueError`` without one, since a
    rebuild could not replace its keys.
    """
    keys = getattr(projector, "keys", None)
    if not isinstance(keys, ReadModelKeys):
        raise ValueError(f"{projector.name}: no `keys` layout, so its keys are unknown")
    return sorted({glob_escape(projector.offsets_key), *keys.patterns()})
