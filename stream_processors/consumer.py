"""Faust's consumer with the seek race closed, and a loud counter for records a commit skips.

The race (faust-streaming 0.15.3, the cause of acknowledged chat that was never decided, issue 12):
after a rebalance, table recovery resumes the source partitions and leaves the flow of records
running while it awaits ``perform_seek()`` (a round trip for the committed offsets). Records fetched
meanwhile from the group's position are delivered into the agents' buffers. Then

1. the seek resets the fetcher's *read offset* to the committed offset, but the drain loop goes on
   with the batch it was delivering and moves the read offset back up past it;
2. the jump from the committed offset to that batch's next record is recorded as a *gap* (Faust's
   remedy for offsets that do not exist: compaction, transaction markers), and gap offsets count as
   acknowledged when the commit offset is computed;
3. recovery then resumes flow control, which *clears* the agents' buffers: the records delivered
   before the seek are dropped unprocessed, and the ones fetched again after it are dropped as
   "already read" (below the read offset);
4. the next commit moves past them all. Nothing is logged above Faust's ``dev`` level.

Gap offsets that were also acknowledged sit twice in Faust's ack list, and its commit then advances
one offset per commit interval, so the next crash redelivers (and re-decides) a long backlog.

A partition with nothing committed yet (a new stream's, or one whose worker died before its first
commit) loses the same records another way: aiokafka's ``seek_to_committed`` does not move it at all,
so what was fetched and cleared before the "seek" is never fetched again, and the first commit after
it passes over those records.

The fix, at the consumer: :meth:`GuardedConsumer.perform_seek` first stops the flow and waits until
the drain loop has handed over the record it holds, then seeks (a partition with no commit back to
the beginning, where the group started), and leaves the flow stopped for the caller (recovery) to
resume after it has cleared the buffers. Every record delivered before the seek is then either still
being processed (and acked, at least once) or cleared and fetched again after it, and the read offset
is never moved by a stale batch.

A commit that still moves past a record no agent acknowledged (one that exists: the first offset
fetched after a seek marks where the log starts) is counted per agent in
``esports_processor_skipped_records_total`` and logged as an error with the range.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

__all__ = ["GuardedConsumer", "GuardedTransport", "SkipReport", "unacknowledged"]

log = logging.getLogger(__name__)

# The longest a seek waits for the drain loop to hand over its record (stop_flow frees a blocked one).
SEEK_QUIESCE_S = 10.0

SkipReport = Callable[[TP, int, int, int], None]  # (tp, committed before, committed now, never acked)


def unacknowledged(start: int, end: int, acked: set[int]) -> int:
    """How many offsets in ``[start, end)`` a commit to ``end`` passes without their ack."""
    return max(0, end - start) - sum(1 for offset in acked if start <= offset < end)


class GuardedConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose seeks wait for the drain loop, and whose commits are audited."""

    on_skipped: SkipReport | None = None  # set by the app: per-agent metric

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_hand = asyncio.Event()  # clear while the drain loop holds a record it was given
        self._in_hand.set()
        self._acked_since: dict[TP, set[int]] = defaultdict(set)  # acked, not yet committed past
        self._log_start: dict[TP, int] = {}  # first offset fetched after the last seek, per partition
        self._seeks = 0  # seeks in progress (one can start inside another's fetch)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109 (Faust's)
        """Faust's batch delivery; a record is *in hand* from its yield until the next is asked for."""
        async for tp, message in super().getmany(timeout):
            if self._seeks:
                return  # fetched before the seek: the sought position fetches it again
            self._log_start.setdefault(tp, message.offset)
            self._in_hand.clear()
            try:
                yield tp, message  # the drain loop delivers it, then sets its read offset
            finally:
                self._in_hand.set()

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset with no record in hand; flow stays stopped."""
        self._seeks += 1
        try:
            self.stop_flow()  # a delivery blocked on a full buffer returns at once
            try:
                await asyncio.wait_for(self._in_hand.wait(), SEEK_QUIESCE_S)
            except TimeoutError:
                log.warning("a record was still being delivered %ss into a seek", SEEK_QUIESCE_S)
            await super().perform_seek()  # overwrites the read offset the drain loop set last
            await self._rewind_uncommitted()
            self._log_start.clear()
        finally:
            self._seeks -= 1

    async def _rewind_uncommitted(self) -> None:
        """Seek the partitions with nothing committed back to where a new group starts.

        aiokafka's ``seek_to_committed`` leaves them where the fetcher is, past what it fetched before
        the seek: those records were never processed, and would never be fetched again.
        """
        fresh = [
            tp
            for tp in self.assignment()
            if not self._is_changelog_tp(tp) and self._committed_offset[tp] is None
        ]
        if fresh and self.app.conf.consumer_auto_offset_reset == "earliest":
            await self._thread.seek_to_beginning(*(faust_aiokafka.ensure_aiokafka_TP(tp) for tp in fresh))

    def ack(self, message: Message) -> bool:
        """Faust's ack, remembering the offset until a commit passes it."""
        acked = bool(super().ack(message))
        if acked:
            self._acked_since[message.tp].add(message.offset)
        return acked

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        before = {tp: self._committed_offset[tp] for tp in offsets}
        committed = bool(await super()._commit_offsets(offsets, start_new_transaction))
        for tp, offset in offsets.items():
            self._audit(tp, before[tp], offset)
        return committed

    def _audit(self, tp: TP, before: int | None, now: int) -> None:
        acked = self._acked_since[tp]
        start = max(before or 0, self._log_start.get(tp, 0))
        skipped = unacknowledged(start, now, acked)
        acked.difference_update([o for o in acked if o < now])
        if skipped > 0:
            log.error(
                "offset commit skipped %s records never acknowledged topic=%s partition=%s from=%s to=%s",
                skipped,
                tp.topic,
                tp.partition,
                start,
                now,
            )
            if self.on_skipped is not None:
                self.on_skipped(tp, start, now, skipped)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._acked_since.pop(tp, None)
            self._log_start.pop(tp, None)
        await super().on_partitions_revoked(revoked)


class GuardedTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`GuardedConsumer`."""

    Consumer = GuardedConsumer
