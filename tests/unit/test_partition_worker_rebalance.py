"""A fetch that outlives its assignment is not folded into the new owner's states.

aiokafka runs the rebalance callbacks (``taken``/``given_up``) beside the worker's loop. A fetch being
absorbed across an await (a chat partition's read-back of ``chat.messages``) can therefore see its
partitions sought back and given fresh states halfway through; the rest of it comes round again from
the new positions, so :meth:`PartitionWorker._absorb` stops there instead of folding it in twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from events.codec import EventCodec
from infra.settings import Settings
from schemas import SCHEMAS_DIR
from stream_processors.metrics import ProcessorMetrics
from stream_processors.partition_worker import PartitionWorker, Record
from stream_processors.runtime import DecisionPublisher

TOPIC = "chat.sent"


class Folding(PartitionWorker[list[int]]):
    """Keeps the offsets it absorbed; partition 0's absorb waits on ``gate`` (like a read-back)."""

    role = "folding"
    source = TOPIC

    def __init__(self, **kwargs: Any) -> None:
        settings = Settings()
        codec = EventCodec.load(SCHEMAS_DIR)
        super().__init__(
            settings, codec, DecisionPublisher(settings.kafka, codec), ProcessorMetrics(), 1, **kwargs
        )
        self.gate = asyncio.Event()

    def new_state(self) -> list[int]:
        return []

    async def absorb(self, partition: int, state: list[int], records: Sequence[Record]) -> None:
        if partition == 0:
            await self.gate.wait()
        state.extend(r.offset for r in records)


def _record(partition: int, offset: int) -> Record:
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])


def _fetch() -> dict[TopicPartition, list[Record]]:
    return {TopicPartition(TOPIC, p): [_record(p, 10 + p), _record(p, 11 + p)] for p in (0, 1)}


async def test_a_fetch_is_folded_into_every_owned_partition() -> None:
    worker = Folding()
    worker.owned.update({0: [], 1: []})
    worker.gate.set()
    await worker._absorb(_fetch())
    assert worker.owned == {0: [10, 11], 1: [11, 12]}
    assert worker.rebalances == 0


async def test_a_rebalance_during_the_fetch_leaves_the_rest_of_it_to_the_next_fetch() -> None:
    worker = Folding()
    worker.owned.update({0: [], 1: []})
    absorbing = asyncio.create_task(worker._absorb(_fetch()))
    await asyncio.sleep(0)  # parked in partition 0's read-back
    worker.given_up({TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)})  # the eager protocol: all
    worker.owned.update({0: [], 1: []})  # taken again: fresh states, sought back (the next fetch)
    fresh = dict(worker.owned)
    worker.gate.set()
    await absorbing
    assert worker.owned[1] == [] and worker.owned[1] is fresh[1], (
        "the stale records stay out of the new state"
    )
    assert worker.rebalances == 1
