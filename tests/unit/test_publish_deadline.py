"""What a bounded publish relies on in aiokafka's producer internals (infra/kafka/aiokafka_internals.py),
on real aiokafka objects without a broker: a record the sender has not drained can be taken back (and is
then failed as NotPublished), a drained one cannot, and retiring a producer fails what it queued without
upsetting aiokafka's own bookkeeping. aiokafka is pinned; these fail first if an upgrade moves the
internals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from infra.kafka import NotPublished, PublishInDoubt
from infra.kafka.aiokafka_internals import connected, fail_queued, take_back

TP = TopicPartition("t", 0)


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer that is never started: its accumulator is driven by hand."""
    made = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", enable_idempotence=True, acks="all")
    made._txn_manager.set_pid_and_epoch(7, 0)  # what InitProducerId would have set
    made.client.cluster.leader_for_partition = lambda tp: 1  # type: ignore[method-assign]
    yield made
    await made.stop()


async def queued(producer: AIOKafkaProducer, value: bytes) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = await producer._message_accumulator.add_message(TP, b"k", value, 1.0)
    return future


def drain(producer: AIOKafkaProducer) -> Any:
    """What the sender does: pop the partition's batch into a produce request (sequence numbers set)."""
    nodes, _ = producer._message_accumulator.drain_by_nodes(ignore_nodes=set())
    return nodes[1][TP]


async def test_a_record_not_drained_is_taken_back_and_never_sent(producer: AIOKafkaProducer) -> None:
    first, second = await queued(producer, b"1"), await queued(producer, b"2")  # one batch
    assert take_back(producer, [first])
    for future in (first, second):  # the whole batch goes: nothing of it was ever sent
        assert isinstance(future.exception(), NotPublished)
    assert TP not in producer._message_accumulator._batches
    assert producer._txn_manager.sequence_number(TP) == 0  # no gap: the next batch starts at 0


async def test_a_drained_record_is_not_taken_back(producer: AIOKafkaProducer) -> None:
    future = await queued(producer, b"1")
    batch = drain(producer)
    assert batch.retry_count == 1 and batch in producer._message_accumulator._pending_batches
    assert not take_back(producer, [future]) and not future.done()
    producer._message_accumulator.reenqueue(batch)  # the request failed: back in the queue, drained
    assert not take_back(producer, [future]) and not future.done()


async def test_retiring_fails_the_queue_by_what_may_have_been_sent(producer: AIOKafkaProducer) -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
    sent = await queued(producer, b"1")
    producer._message_accumulator.reenqueue(drain(producer))
    joined = await queued(producer, b"2")  # appended to the re-queued batch: in doubt with it
    other = await producer._message_accumulator.add_message(TopicPartition("t", 1), b"k", b"3", 1.0)
    fail_queued(producer)
    await asyncio.sleep(0)  # aiokafka's done callbacks run
    assert isinstance(sent.exception(), PublishInDoubt) and isinstance(joined.exception(), PublishInDoubt)
    assert isinstance(other.exception(), NotPublished)
    assert not producer._message_accumulator._pending_batches and errors == []
    with pytest.raises(NotPublished):  # a retired producer takes nothing more
        await producer._message_accumulator.add_message(TP, b"k", b"4", 1.0)
    asyncio.get_running_loop().set_exception_handler(None)


async def test_a_producer_without_a_connection_to_the_leader_is_not_connected(
    producer: AIOKafkaProducer,
) -> None:
    assert producer.client._conns == {} and not connected(producer, 1)
