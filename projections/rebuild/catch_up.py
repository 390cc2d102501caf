"""Bringing shadow stores to target positions: one reader for all of them, each store writing its own
batches concurrently, with the exactly-once machinery of the live projectors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from infra.kafka import ConsumedEvent
from projections.projector import BatchStore, Partition, store_with_retries
from projections.rebuild.reader import Batches, FanOutReader, Spans

__all__ = ["READ_AHEAD", "CatchUp", "Interrupted", "RebuildFailed", "Tally"]

READ_AHEAD = 2  # batches the reader fetches and decodes for a projector while its store writes


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM): the rebuild stopped after the batch it was storing, before any swap."""


class RebuildFailed(Exception):
    """The rebuild could not finish; the shadow is kept, so running it again resumes."""


class Tally(Protocol):
    """Where applied offsets are counted (the progress line, or a worker's pipe to it)."""

    def advance(self, offsets: int) -> None: ...


class CatchUp:
    """Brings shadow stores to target positions: one reader for all of them, each store writing its
    own batches concurrently."""

    def __init__(self, reader: FanOutReader, progress: Tally, stop: asyncio.Event | None = None) -> None:
        self._reader = reader
        self._progress = progress
        self._stop = stop or asyncio.Event()  # set by Ctrl-C: each projector stops after its batch
        self.events = 0
        self.per_store: dict[str, int] = {}  # events applied per projector
        self.seconds: dict[str, float] = {}  # ... and the time it took, over every catch-up round

    async def run(self, stores: Sequence[BatchStore], targets: Mapping[str, Mapping[Partition, int]]) -> None:
        due = [s for s in stores if targets.get(s.name)]
        if not due:
            return
        starts = await asyncio.gather(*(s.start_positions(list(targets[s.name])) for s in due))
        spans = {
            s.name: {p: (start[p], end) for p, end in targets[s.name].items()}
            for s, start in zip(due, starts, strict=True)
        }
        queues: dict[str, Batches] = {s.name: asyncio.Queue(maxsize=READ_AHEAD) for s in due}
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._reader.feed(spans, queues), name="rebuild reader")
            for store in due:
                one = self._one(store, spans[store.name], queues[store.name])
                tasks.create_task(one, name=f"rebuild {store.name}")

    @property
    def stopping(self) -> asyncio.Event:
        """Set once a stop is asked for (Ctrl-C, SIGTERM): what a worker process of the catch-up obeys too."""
        return self._stop

    def add(self, events: int, per_store: Mapping[str, int], seconds: Mapping[str, float]) -> None:
        """Count what a catch-up elsewhere (a worker process) applied."""
        self.events += events
        for name, count in per_store.items():
            self.per_store[name] = self.per_store.get(name, 0) + count
        for name, spent in seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + spent

    async def remaining(
        self, stores: Sequence[BatchStore], targets: Mapping[str, Mapping[Partition, int]]
    ) -> dict[str, int]:
        """Per store, the offsets between its stored positions and ``targets``."""
        wanted = [targets.get(store.name, {}) for store in stores]
        starts = await asyncio.gather(
            *(s.start_positions(list(w)) for s, w in zip(stores, wanted, strict=True))
        )
        return {
            store.name: sum(max(0, offset - start[p]) for p, offset in w.items())
            for store, w, start in zip(stores, wanted, starts, strict=True)
        }

    async def _one(self, store: BatchStore, spans: Spans, batches: Batches) -> None:
        reached = {p: start for p, (start, _) in spans.items()}
        started = time.monotonic()
        while (batch := await batches.get()) is not None:
            if self._stop.is_set():
                raise Interrupted(f"{store.name} stopped at {reached}")
            await store_with_retries(store, batch)
            self.events += len(batch)
            self.per_store[store.name] = self.per_store.get(store.name, 0) + len(batch)
            self._progress.advance(_advance(reached, batch))
        skipped = sum(max(0, end - reached[p]) for p, (_, end) in spans.items())
        self._progress.advance(skipped)  # records without events (markers, undecodable)
        self.seconds[store.name] = self.seconds.get(store.name, 0.0) + time.monotonic() - started


def _advance(reached: dict[Partition, int], batch: Sequence[ConsumedEvent]) -> int:
    """Move ``reached`` past ``batch`` (log order per partition); the offsets it moved by."""
    last: dict[Partition, int] = {}
    for consumed in batch:
        position = consumed.position
        last[(position.topic, position.partition)] = position.offset
    moved = 0
    for p, offset in last.items():
        after = max(reached[p], offset + 1)
        moved += after - reached[p]
        reached[p] = after
    return moved
