"""The baselines the benchmarks measure beside the platform: a bare aiokafka consumer reading whole
topic-partitions from the start, raw or with the project's Avro decode (the floor of any reader)."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.codec import EventCodec
from infra.settings import Settings

__all__ = ["read_partitions"]


async def read_partitions(
    settings: Settings, tps: Sequence[TopicPartition], codec: EventCodec | None, *, max_records: int = 500
) -> int:
    """Records read from the start to the end offsets of ``tps`` (physical topics), decoded if ``codec``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    total = 0
    try:
        ends = await consumer.end_offsets(list(tps))
        consumer.assign(list(tps))
        await consumer.seek_to_beginning(*tps)
        due = {tp for tp in tps if ends[tp] > 0}
        while due:
            fetched = await consumer.getmany(*due, timeout_ms=500, max_records=max_records)
            for tp, records in fetched.items():
                total += len(records)
                if codec is not None:
                    for record in records:
                        codec.decode(record.value or b"")
                if records and records[-1].offset + 1 >= ends[tp]:
                    due.discard(tp)
    finally:
        await consumer.stop()
    return total
