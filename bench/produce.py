"""Producer and consumer throughput of the event backbone against the real broker.

Measures, for a small (chat-sized) and a large (4 KiB) event:
- encode and decode alone (EventCodec against bare fastavro on the same record; decode both into the
  same dataclass and into fastavro's dict only),
- publish with acknowledgement (EventPublisher.publish_many: encode, send, wait for acks=all),
- single-event publish latency (await each ack, as an API call does),
- consume + decode (EventConsumer from the beginning),
and the same with raw aiokafka on pre-encoded bytes (same acks/idempotence/compression) as the
baseline measured in the same run. Figures are medians over several runs.

    python bench/produce.py [--runs 5] [--events 20000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fastavro
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from events.avro_mapping import from_avro_converter, to_avro_converter
from events.base import Event
from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.topics import partition_key, spec, topic_for
from infra.gc_tuning import tune_for_throughput
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicAdmin, TopicNames
from infra.settings import KafkaSettings, Settings
from schemas import SCHEMAS_DIR
from tests.unit.event_samples import sample_event

CHUNK = 1000  # events in flight per publish_many call (what a busy edge node batches)


def make_events(count: int, text_size: int) -> list[Event]:
    template = sample_event(ChatMessageAccepted)
    text = ("gg wp " * (text_size // 6 + 1))[:text_size]
    return [
        dataclasses.replace(template, event_id=uuid.uuid4(), stream_id=f"stream-{i % 64}", text=text)  # type: ignore[call-arg]
        for i in range(count)
    ]


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def publish_ours(settings: KafkaSettings, codec: EventCodec, events: list[Event]) -> None:
    async with EventPublisher(settings, codec, producer="bench") as publisher:
        for start in range(0, len(events), CHUNK):
            await publisher.publish_many(events[start : start + CHUNK])


async def publish_raw(settings: KafkaSettings, topic: str, encoded: list[tuple[bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        compression_type=settings.compression,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_size,
    )
    async with producer:
        for start in range(0, len(encoded), CHUNK):
            futures = [await producer.send(topic, v, key=k) for v, k in encoded[start : start + CHUNK]]
            await asyncio.gather(*futures)


async def single_latencies(settings: KafkaSettings, codec: EventCodec, events: list[Event]) -> list[float]:
    async with EventPublisher(settings, codec, producer="bench") as publisher:
        samples = []
        for event in events:
            started = time.perf_counter()
            await publisher.publish(event)
            samples.append(time.perf_counter() - started)
        return samples


async def consume_ours(
    settings: KafkaSettings, codec: EventCodec, dead: DeadLetters, topic: str, expected: int
) -> None:
    consumer = EventConsumer(
        settings,
        codec,
        topics=[topic],
        group_id=None,
        dead_letters=dead,
        from_beginning=True,  # batches of the services' size (the default max_records)
    )
    seen = 0
    async with consumer:
        async for batch in consumer.batches(timeout_ms=200):
            seen += len(batch)
            if seen >= expected:
                return


async def consume_raw(settings: KafkaSettings, physical_topic: str, expected: int) -> None:
    consumer = AIOKafkaConsumer(
        physical_topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    seen = 0
    async with consumer:
        while seen < expected:
            fetched = await consumer.getmany(timeout_ms=200, max_records=5000)
            seen += sum(len(records) for records in fetched.values())


async def fresh_namespace(base: KafkaSettings) -> KafkaSettings:
    settings = base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}."})
    async with TopicAdmin(settings) as admin:
        await admin.ensure([spec("chat.messages"), spec("deadletter")])
    return settings


async def drop_namespace(settings: KafkaSettings) -> None:
    names = TopicNames(settings.topic_prefix)
    async with TopicAdmin(settings) as admin:
        await admin.delete([names.physical("chat.messages"), names.physical("deadletter")])


async def one_run(base: KafkaSettings, codec: EventCodec, events: list[Event]) -> dict[str, float]:
    """Ours and the raw baseline, each into its own fresh topic, so the reads count the same records."""
    ours, raw = await fresh_namespace(base), await fresh_namespace(base)
    raw_topic = TopicNames(raw.topic_prefix).physical(topic_for(events[0]).name)
    encoded = [(codec.encode(e), partition_key(e)) for e in events]
    try:
        # The dead-letter publisher is built outside the timing: a service has it running already.
        async with EventPublisher(ours, codec, producer="bench") as dead_publisher:
            dead = DeadLetters(dead_publisher, TopicNames(ours.topic_prefix).physical("deadletter"))
            return {
                "publish_ours": len(events) / await timed(lambda: publish_ours(ours, codec, events)),
                "publish_raw": len(events) / await timed(lambda: publish_raw(raw, raw_topic, encoded)),
                "consume_ours": len(events)
                / await timed(lambda: consume_ours(ours, codec, dead, "chat.messages", len(events))),
                "consume_raw": len(events) / await timed(lambda: consume_raw(raw, raw_topic, len(events))),
            }
    finally:
        await drop_namespace(ours)
        await drop_namespace(raw)


def codec_rates(codec: EventCodec, event: Event, count: int) -> dict[str, float]:
    """Our encode/decode against bare fastavro on the same record (the floor the codec can reach):
    encode from the dict fastavro writes, decode into that dict and into the same dataclass (fastavro's
    dict, arrays made tuples and enums members, through the dataclass's ``__init__``)."""
    value = codec.encode(event)
    schema = fastavro.parse_schema(codec.schema_by_id(int.from_bytes(value[1:5], "big")))
    record, build = to_avro_converter(type(event))(event), from_avro_converter(type(event))
    body = value[5:]

    def rate(action: Callable[[], object]) -> float:
        started = time.perf_counter()
        for _ in range(count):
            action()
        return count / (time.perf_counter() - started)

    def bare_encode() -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, record)
        return buf.getvalue()

    def bare_decode() -> object:
        return fastavro.schemaless_reader(io.BytesIO(body), schema, None)

    return {
        "encode_ours": rate(lambda: codec.encode(event)),
        "encode_raw": rate(bare_encode),
        "decode_ours": rate(lambda: codec.decode(value)),
        "decode_raw": rate(lambda: build(bare_decode())),
        "decode dict_ours": rate(lambda: codec.decode(value)),
        "decode dict_raw": rate(bare_decode),
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(args: argparse.Namespace) -> None:
    base = Settings().kafka
    codec = EventCodec.load(SCHEMAS_DIR)
    tune_for_throughput()  # the collector as every service sets it once started
    print(
        f"# bench/produce.py: broker {base.bootstrap_servers}, {args.events} events x {args.runs} runs, "
        f"compression={base.compression}, linger_ms={base.linger_ms}, acks=all, idempotent"
    )
    print(f"{'event':<16} {'bytes':>6} {'measure':<26} {'ours/s':>10} {'raw/s':>10} {'ours/raw':>8}")
    for label, size in (("small (chat)", 80), ("large (4 KiB)", 4096)):
        events = make_events(args.events, size)
        cpu_before, runs = cpu_seconds(), []
        for index in range(args.runs):
            runs.append(await one_run(base, codec, events))
            print(f"  run {index + 1}/{args.runs} {label} done", file=sys.stderr)
        nbytes = len(codec.encode(events[0]))
        codec_runs = [codec_rates(codec, events[0], args.events) for _ in range(args.runs)]
        for measure, name in (
            ("encode", "encode (vs fastavro)"),
            ("decode", "decode (vs fastavro+init)"),
            ("decode dict", "decode (vs fastavro dict)"),
        ):
            ours = statistics.median(r[f"{measure}_ours"] for r in codec_runs)
            raw = statistics.median(r[f"{measure}_raw"] for r in codec_runs)
            print(f"{label:<16} {nbytes:>6} {name:<26} {ours:>10,.0f} {raw:>10,.0f} {ours / raw:>8.2f}")
        for measure in ("publish", "consume"):
            ours = statistics.median(r[f"{measure}_ours"] for r in runs)
            raw = statistics.median(r[f"{measure}_raw"] for r in runs)
            name = "publish+ack (batched)" if measure == "publish" else "consume+decode"
            print(f"{label:<16} {nbytes:>6} {name:<26} {ours:>10,.0f} {raw:>10,.0f} {ours / raw:>8.2f}")
        print(f"{'':<16} {'':>6} {'bench process CPU':<26} {cpu_seconds() - cpu_before:>9.1f}s")
    ours_settings = await fresh_namespace(base)
    try:
        latencies = await single_latencies(ours_settings, codec, make_events(args.latency_events, 80))
    finally:
        await drop_namespace(ours_settings)
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"single publish, await each ack ({args.latency_events} events): "
        f"p50 {quantiles[49] * 1000:.2f} ms, p99 {quantiles[98] * 1000:.2f} ms"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per figure; the median is reported")
    parser.add_argument("--events", type=int, default=20000, help="events per run")
    parser.add_argument("--latency-events", type=int, default=2000, help="events for the latency figure")
    parser.add_argument("--quick", action="store_true", help="2 runs of 2,000 events (a smoke check)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.events, args.latency_events = 2, 2000, 200
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
