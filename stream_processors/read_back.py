"""Reading partitions of a topic back to their end: what a partition worker does when it takes a
partition over and its state is a topic (the ledger, the chat senders' keys, the viewing sessions).

One reader without a consumer group, assigned the partitions, positioned first (from the beginning,
or from the first record at or after a time), then read to the end offsets found once positioned:
what the previous owner wrote before it gave the partition up is below those ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from infra.kafka import client_options
from infra.settings import KafkaSettings

__all__ = ["Fold", "read_back"]

# What to do with a partition's fetched records, in log order.
Fold = Callable[[int, Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[None]]


async def read_back(
    kafka: KafkaSettings,
    client_id: str,
    topic: str,
    partitions: Collection[int],
    fold: Fold,
    *,
    from_ms: int | None = None,
    max_records: int = 5000,
) -> dict[int, int]:
    """Fold every record of ``partitions`` of the physical ``topic`` from the beginning (or from
    ``from_ms``: the first record at or after it) to the end found now; records read per partition."""
    read = dict.fromkeys(partitions, 0)
    if not read:
        return read
    reader = AIOKafkaConsumer(**client_options(kafka, client_id), enable_auto_commit=False)
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in read]
        reader.assign(tps)
        if from_ms is None:
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
        else:
            starts = await reader.offsets_for_times({tp: from_ms for tp in tps})
            ends = await reader.end_offsets(tps)
            for tp in tps:
                start = starts.get(tp)
                reader.seek(tp, start.offset if start is not None else ends[tp])
        while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
            for tp, records in (await reader.getmany(timeout_ms=1000, max_records=max_records)).items():
                await fold(tp.partition, records)
                read[tp.partition] += len(records)
        return read
    finally:
        await reader.stop()
