"""What this adapter relies on in aiokafka 0.14's internals (pinned in pyproject; the tests that use these
fail first if an upgrade moves them), kept apart so the publisher and consumer read as ordinary code.

The producer's, for a bounded publish: the client keeps its connections in ``_conns`` by (node, group).
The accumulator keeps, per partition, a queue of batches (``_batches``); the sender drains a batch into a
produce request, which gives it its idempotent sequence numbers and makes ``retry_count`` 1 (0 = never
drained, never on the wire); drained batches in flight sit in ``_pending_batches``; each batch holds its
records' futures (``_msg_futures``).

The consumer's, for positions read synchronously (lag, catch-up; tests/integration/
test_kafka_consumer_progress.py): the subscription state holds each assigned partition's position, which
aiokafka's ``position()`` returns from a coroutine (it waits for an unknown one).

:func:`retrieved`, the done callback of background futures, is here because failing a batch needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import ConnectionGroup

from infra.kafka.errors import KafkaError, NotPublished, PublishInDoubt

__all__ = ["connected", "fail_queued", "next_offset", "retrieved", "take_back", "tear_down"]


def retrieved(task: asyncio.Future[Any]) -> None:
    """A done callback: mark a background failure as seen (its waiters, if any, got their own copy)."""
    if not task.cancelled():
        task.exception()


def connected(producer: AIOKafkaProducer, node: int) -> bool:
    """Whether the producer's connection to ``node`` is up (closed as soon as the broker's host resets it)."""
    connection = producer.client._conns.get((node, ConnectionGroup.DEFAULT))
    return connection is not None and connection.connected()


def take_back(producer: AIOKafkaProducer, futures: Sequence[asyncio.Future[Any]]) -> bool:
    """Remove the batches holding ``futures`` from the accumulator if none was drained yet (and fail them
    as NotPublished: other records in them were never sent either); True if all were removed."""
    accumulator = producer._message_accumulator
    wanted = {id(future) for future in futures}
    holding = [
        (tp, batch)
        for tp, queue in accumulator._batches.items()
        for batch in queue
        if any(id(future) in wanted for future, _ in batch._msg_futures)
    ]
    found = sum(1 for _, batch in holding for future, _ in batch._msg_futures if id(future) in wanted)
    if found < len(wanted) or any(batch.retry_count for _, batch in holding):
        return False
    for tp, batch in holding:
        queue = accumulator._batches[tp]
        queue.remove(batch)
        if not queue:
            del accumulator._batches[tp]
        fail_batch(batch, NotPublished("taken back at a publish deadline, never sent"))
    return True


def fail_queued(producer: AIOKafkaProducer) -> None:
    """Empty a retired producer's queue (never-drained batches: NotPublished; re-queued ones: in doubt)
    and refuse new records."""
    accumulator = producer._message_accumulator
    for queue in accumulator._batches.values():
        for batch in queue:
            if batch.retry_count:  # drained once: aiokafka's callback removes it from the in-flight set
                accumulator._pending_batches.add(batch)
            error = NotPublished("retired") if batch.retry_count == 0 else PublishInDoubt("retired")
            fail_batch(batch, error)
    accumulator._batches.clear()
    accumulator._exception = NotPublished("this producer was retired after a publish deadline")


def fail_batch(batch: Any, error: KafkaError) -> None:
    """Fail a batch's records; their waiters (if any are left) get the error, nobody else is warned."""
    batch.failure(error)
    for future in [batch._drain_waiter, *(future for future, _ in batch._msg_futures)]:
        retrieved(future)


async def tear_down(producer: AIOKafkaProducer, grace_s: float) -> None:
    """Stop a retired producer's sender, then cut its connections (RST: bytes the broker's host has not
    acknowledged are dropped, not delivered later), let in-flight requests fail, close it."""
    sender = producer._sender.sender_task
    try:
        if sender is not None:
            sender.cancel()
        for connection in list(producer.client._conns.values()):
            writer = connection._writer
            if writer is not None:
                writer.transport.abort()
            connection.close()
        if sender is not None:
            await asyncio.wait([sender], timeout=grace_s)
    finally:
        if sender is not None and not sender.done():
            sender.cancel()
        fail_queued(producer)
        for batch in list(producer._message_accumulator._pending_batches):
            fail_batch(batch, PublishInDoubt("retired while in flight"))
        producer._closed = True
        with contextlib.suppress(Exception):
            await producer.client.close()


def next_offset(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The offset ``consumer`` hands out next from ``tp``; None while it is not assigned or its position
    is being looked up."""
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    if assignment is None or tp not in assignment.tps:
        return None
    state = assignment.state_value(tp)
    return state.position if state.has_valid_position else None
