"""What the viewer-count and match-audience agents share: presences in a Faust table, settled
under a lock by batches and by a wall-clock tick, each decided event published before its state is
stored (the lifecycle agent's order).

Decoded presences are kept beside the table, keyed by the very JSON object stored: a tick over
every owned audience (four times a second) would otherwise re-decode every session of every one of
them. A tick that only moves the clock stores nothing (the next tick moves it again): storing it
wrote every state to the changelog four times a second and starved the batches.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from events.base import Event
from events.codec import EventCodec
from stream_processors.batching import partition_of_key
from stream_processors.metrics import ProcessorMetrics
from stream_processors.runtime import DecisionPublisher, Processor
from stream_processors.viewers.counts import ViewerPresence

__all__ = ["PresenceProcessor"]


class PresenceProcessor(Processor):
    """Base of the count processors; subclasses decide (:meth:`_decide`) and handle batches."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        partitions: int,
    ) -> None:
        super().__init__(codec, publishing, table, metrics)
        self._partitions = partitions
        self._lock = asyncio.Lock()  # a batch and a tick each read, publish, then store states
        self._decoded: dict[bytes, tuple[Any, ViewerPresence]] = {}  # key -> (stored JSON, presence)

    def _decide(self, state: ViewerPresence, now_ms: int) -> tuple[ViewerPresence, Event | None]:
        raise NotImplementedError

    async def expire(self, tps: list[Any]) -> None:
        """The agent's tick: expire sessions that stopped sending heartbeats, also when none arrive."""
        if owned := {tp.partition for tp in tps}:
            await self.tick(owned)

    async def tick(self, owned: set[int]) -> None:
        """Settle every audience of the ``owned`` partitions at the wall clock."""
        async with self._lock:
            now_ms = int(time.time() * 1000)
            for key in list(self._table.keys()):
                if partition_of_key(key, self._partitions) in owned:
                    await self._settle(key, self._state(key), now_ms, tick=True)

    def _state(self, key: bytes) -> ViewerPresence:
        stored = self._table.get(key)
        if stored is None:
            return ViewerPresence(audience_id=key.decode())
        cached = self._decoded.get(key)
        if cached is not None and cached[0] is stored:
            return cached[1]
        state = ViewerPresence.from_json(stored)
        self._decoded[key] = (stored, state)
        return state

    async def _settle(self, key: bytes, state: ViewerPresence, now_ms: int, *, tick: bool = False) -> None:
        settled, decided = self._decide(state, now_ms)
        if tick and decided is None and settled.sessions is state.sessions:
            return  # only the clock moved (see the module docstring)
        if decided is not None:
            await self._publish_decided(decided)
        before = self._table.get(key)
        stored = settled.to_json()
        if stored != before:
            # Not table[key] = ...: Faust takes the changelog partition from the current event, and
            # the tick has none. The key's own partition is the source's (same key, same hash).
            self._table.data[key] = stored
            self._table.send_changelog(partition_of_key(key, self._partitions), key, stored)
            self._decoded[key] = (stored, settled)

    async def _publish_decided(self, decided: Event) -> None:
        await self._retrying("publishing a count", lambda: self._publishing.publisher.publish(decided))
        self._metrics.viewer_counts += 1
