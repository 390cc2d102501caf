"""Ack-after-store batching for the agents that fold many records into one state write.

An agent reads its stream with ``stream.noack()`` and hands each event to a :class:`Batcher`, which
processes a batch once it is full or its oldest record waited ``within_s`` (the last records of a
burst). That wait runs in the batcher's own task, not in a Faust timer: on shutdown Faust's consumer
waits for every record read to be acked while its timers no longer fire, so a batch left to a timer
was never acked and the worker hung there until killed. A batch is processed (decided, published,
stored) and only then acked, so a crash at any point redelivers what was not stored, and the
processors' state is replace-by-key, so redelivery changes nothing.

Not Faust's ``stream.take_events``: when a record arrives while a batch is being processed and the
next batch starts before that record is added, Faust's take buffer drops the records that follow and
acks them unprocessed (a restart under load lost ~15 votes that way, and a benchmark burst of
heartbeats never reached its exact count).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from infra.kafka import partition_of_key

__all__ = ["BatchProcessor", "Batcher", "partition_of_key"]

log = logging.getLogger(__name__)


class BatchProcessor(Protocol):
    """What a :class:`Batcher` drives: one call per batch of raw Faust messages, in log order."""

    async def handle_batch(self, messages: Sequence[Any]) -> None: ...


class Batcher:
    """Batches of records read by an agent, processed, then acked: publish, store, ack.

    Batches are processed one at a time, in the order they were taken (a full batch from the agent
    and a due one from the timer never overlap), so acks follow the log too.
    """

    def __init__(
        self, processor: BatchProcessor, *, max_records: int, within_s: float, app: Any = None
    ) -> None:
        """With ``app`` (the Faust app), what is pending is processed and acked when the worker stops,
        before Faust commits its offsets (see :func:`stream_processors.app.faust_options`)."""
        self._processor = processor
        self._max = max_records
        self._within_s = within_s
        self._pending: list[tuple[Any, Any]] = []  # (stream, event) read, not yet processed or acked
        self._since = 0.0  # monotonic time the oldest pending record was read
        self._lock = asyncio.Lock()  # FIFO: batches are processed in the order they were taken
        self._waiter: asyncio.Task[None] | None = None  # flushes the pending batch when it is due
        if app is not None:
            app.on_before_shutdown.connect(self._drain)

    async def _drain(self, sender: Any, **kwargs: Any) -> None:
        await self.flush(due_only=False)

    async def add(self, stream: Any, event: Any) -> None:
        """Queue ``event`` (read from ``stream``); process the batch once it is full or due."""
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append((stream, event))
        if len(self._pending) >= self._max:
            await self.flush(due_only=False)
        elif self._waiter is None or self._waiter.done():
            self._waiter = asyncio.ensure_future(self._flush_when_due())
            self._waiter.add_done_callback(_log_failure)

    async def _flush_when_due(self) -> None:
        while self._pending:
            wait = self._since + self._within_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                await self.flush(due_only=True)

    async def flush(self, *, due_only: bool) -> None:
        """Process what is pending (with ``due_only``: only once the oldest waited ``within_s``)."""
        if not self._pending or (due_only and time.monotonic() - self._since < self._within_s):
            return
        batch, self._pending = self._pending, []  # taken before any await: batches stay in log order
        async with self._lock:
            await self._processor.handle_batch([event.message for _, event in batch])
            for stream, event in batch:
                await stream.ack(event)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("processing a due batch failed", exc_info=task.exception())
