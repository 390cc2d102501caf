"""The ledger worker: decides the requests of its ``points.requests`` partitions into ``points.ledger``.

A :class:`~stream_processors.partition_worker.PartitionWorker` in its own consumer group
(:data:`~stream_processors.topology.POINTS_GROUP`). ``points.requests`` and ``points.ledger`` are both
keyed by user and have the same partition count (checked at start), so the requests of partition *p*
decide the entries of ledger partition *p*, and one worker owns both.

Exactly once, without a store of its own: the ledger partition is the state. A worker taking partition
*p* over reads ledger partition *p* back from its start into a
:class:`~stream_processors.points.ledger.PartitionLedger` (balances, open stakes, and the ids of the
requests decided lately), then resumes ``points.requests`` at its committed position. A request read
again (decided by the previous owner after its last commit) is found among the decided ids and changes
nothing. Per fetch: decide every request, publish the entries (acks=all, retried until the broker takes
them), and only then, at the next checkpoint, commit the position. A partition given up waits for the
publishing in flight (:meth:`LedgerWorker.releasing`), so its next owner reads back everything decided.

Cost of a takeover: one read of the partition's whole ledger (measured in ``bench/points.py``); a
compacted snapshot of the balances is the lever when ledgers grow past what that read allows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition

from events.base import Event
from events.codec import DecodeError
from stream_processors.partition_worker import PartitionWorker, Record, Report
from stream_processors.points.ledger import PartitionLedger
from stream_processors.read_back import read_back
from stream_processors.runtime import retrying
from stream_processors.topology import POINTS_GROUP, POINTS_LEDGER, POINTS_SOURCE

__all__ = ["LedgerWorker"]

log = logging.getLogger(__name__)


class LedgerWorker(PartitionWorker[PartitionLedger]):
    """Owns partitions of ``points.requests`` and the same partitions of ``points.ledger``."""

    role = "points"
    group = POINTS_GROUP
    source = POINTS_SOURCE
    every_s = 0.25  # positions committed this often (after the entries they decided are on the log)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ledger = self.names.physical(POINTS_LEDGER)
        self._decided: list[Event] = []  # decided in this fetch, published after it
        self._publishing_now = asyncio.Lock()

    def new_state(self) -> PartitionLedger:
        return PartitionLedger()

    def rebuild_from_ms(self) -> int:
        return 0  # not used: a partition resumes at its commit (see taken)

    async def taken(self, assigned: set[TopicPartition]) -> None:
        """Each new partition: its ledger read back, its requests resumed at the committed position."""
        consumer = self._consumer
        if consumer is None or not assigned:
            return
        self._rebalances += 1
        states = {tp.partition: PartitionLedger() for tp in assigned}
        await self._read_back(states)
        for tp in assigned:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
            state = states[tp.partition]
            self._owned[tp.partition] = state
            log.info(
                "points partition %s: %s entries read back, %s balances, %s open stakes; resuming at %s",
                tp.partition,
                state.entries,
                len(state.balances),
                len(state.stakes),
                committed,
            )

    async def _read_back(self, states: dict[int, PartitionLedger]) -> None:
        """Fold every entry of the ledger partitions of ``states`` into them, to the end found now."""

        async def fold(partition: int, records: Sequence[Record]) -> None:
            state = states[partition]
            for record in records:
                if record.value is None:
                    continue
                try:
                    state.apply(self._codec.decode(record.value))
                except DecodeError as e:  # not ours to dead-letter: it is the output
                    log.error("points.ledger %s@%s undecodable: %s", partition, record.offset, e)

        await read_back(self._kafka, "points-read-back", self._ledger, list(states), fold)

    async def absorb(self, partition: int, state: PartitionLedger, records: Sequence[Record]) -> None:
        for record in records:
            request = await self.decode(record)
            if request is None:
                continue
            self._metrics.points_requests[request.event_type()] += 1
            self._decided.extend(state.decide(request))

    async def _absorb(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        """A fetch of every owned partition decided, then its entries published at once."""
        async with self._publishing_now:
            fetched_in = self.rebalances
            await super()._absorb(fetched)
            decided, self._decided = self._decided, []
            if self.rebalances != fetched_in:
                # Reassigned while deciding (the rebalance runs beside this loop): decided on states
                # that are gone, and every partition kept was sought back to its commit and read back.
                log.info("%s: a fetch dropped, partitions reassigned while deciding it", self.role)
                return
            if decided:
                publisher = self._publishing.publisher
                await retrying(
                    "publishing ledger entries", lambda: publisher.publish_many(decided), self._metrics
                )
                for entry in decided:
                    self._metrics.points_entries[entry.event_type()] += 1

    async def releasing(self, revoked: set[TopicPartition]) -> None:
        async with self._publishing_now:  # what was decided is on the log before another owner reads it
            pass

    def report(self, now_ms: int, complete: set[int]) -> list[Report]:
        return []  # nothing but the commit of the positions, which follows every report
