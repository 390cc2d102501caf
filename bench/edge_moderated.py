"""Chat through moderation, end to end: submit on one edge node → receipt by every viewer on both.

The whole path a viewer's message takes, nothing published by the bench itself:

1. fresh topics (a unique prefix), the processors worker (``esports processors --only moderation``,
   as ``tests/integration/test_chat_e2e.py`` and ``bench/hot_stream.py`` run it) and ``StreamCreated``,
   waited for until the stream's moderation has synced every partition of ``chat.sent``;
2. two edge nodes as subprocesses, both pinned to core 0; N viewers (picows, the generator of
   ``bench/edge_fanout.py``) split evenly over them, pinned to core 1, all watching the stream;
3. 25 signed-in viewers on node A send M ``chat`` commands/s in all for T seconds, each carrying its
   send time: edge A publishes ``ChatMessageSent`` (``chat.sent``), the chat worker decides it and
   publishes ``ChatMessageAccepted`` (``chat.messages``), both nodes read it and write it to their
   viewers → p50/p99 submit → receipt over every (message, viewer), delivered %;
4. the baseline of the same run: the direct path of ``bench/edge_fanout.py`` on the same two nodes,
   ``ChatMessageAccepted`` published by the bench (no sender, no moderation), same viewers and rate.

Kafka, the worker and the bench's senders float over both cores (the machine has two); the edges
share core 0 as one edge per core would leave the generator nowhere to run.

    python bench/edge_moderated.py [--viewers 5000] [--rate 50] [--seconds 10] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _hot_stream_chat import OWNER, SOURCE, synced_everywhere
from _hot_stream_support import Sampler, Workers, namespace
from edge_fanout import Viewers, cpu_of, free_port, start_node, wait_healthy
from edge_fanout import publish_paced as publish_direct
from pydantic import SecretStr
from websockets.asyncio.client import connect

from events.codec import EventCodec
from events.streams import StreamCreated
from infra.kafka import EventPublisher
from infra.settings import Settings
from infra.tokens import AccessTokens
from schemas import SCHEMAS_DIR

PARTITIONS = 6
SECRET = "edge-moderated-bench-" + "x" * 32
# A node answers one connection's commands in turn, each after the broker's ack (~10 ms here, more
# under load): one sender at 50 msg/s would queue behind its own acks, as no viewer sends that fast.
SENDERS = 25


async def _send_chat(
    tokens: AccessTokens, port: int, stream: str, rate: int, seconds: float
) -> dict[str, int]:
    """``rate`` chat commands/s in all from :data:`SENDERS` signed-in viewers, each paced from its own
    start; sent, acked, refused."""
    counts = {"sent": 0, "acked": 0, "refused": 0}
    per_sender = rate / SENDERS
    await asyncio.gather(
        *(
            _sender(
                port, tokens.issue(f"viewer-{n}", "viewer"), stream, per_sender, seconds, n / rate, counts
            )
            for n in range(SENDERS)
        )
    )
    return counts


async def _sender(
    port: int, token: str, stream: str, rate: float, seconds: float, offset_s: float, counts: dict[str, int]
) -> None:
    async with connect(
        f"ws://127.0.0.1:{port}/", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:

        async def read() -> None:
            async for frame in ws:
                kind = json.loads(frame).get("type")
                counts["acked" if kind == "ack" else "refused"] += kind in ("ack", "error")

        reading = asyncio.create_task(read())
        loop = asyncio.get_running_loop()
        start = loop.time() + offset_s
        for i in range(round(rate * seconds)):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            text = f"t={time.time_ns()}"
            await ws.send(json.dumps({"type": "chat", "stream": stream, "text": text, "nonce": str(i)}))
            counts["sent"] += 1
        await asyncio.sleep(1.0)  # the last acks
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def _measured(
    ports: list[int], nodes: list[subprocess.Popen[bytes]], viewers: int, stream: str, load: Any
) -> dict[str, Any]:
    """``viewers`` of ``stream`` over ``ports``; ``load`` (a coroutine) run between the generator's GO
    and STOP; what it returns, what the viewers received, and the nodes' CPU."""
    generator = Viewers(ports, viewers, stream)
    try:
        await generator.ready()
        await asyncio.sleep(0.5)
        generator.go()
        cpu0, wall0 = [cpu_of(n.pid) for n in nodes], time.monotonic()
        sent = await load
        await asyncio.sleep(2.0)  # stragglers
        wall = time.monotonic() - wall0
        cpu = sum(cpu_of(n.pid) - c for n, c in zip(nodes, cpu0, strict=True))
        result = await generator.stop()
    finally:
        generator.kill()
    return {"sent": sent, "wall": wall, "nodes_cpu_s": cpu, **result}


def _figures(path: str, viewers: int, measured: dict[str, Any]) -> dict[str, Any]:
    received = measured["received"]
    return {
        "path": path,
        "delivered_pct": 100.0 * received / max(1, measured["sent"] * viewers),
        "p50_ms": measured["latencies_ns"]["p50"] / 1e6,
        "p99_ms": measured["latencies_ns"]["p99"] / 1e6,
        "nodes_cpu_pct": 100.0 * measured["nodes_cpu_s"] / measured["wall"],
        "node_us_per_delivery": 1e6 * measured["nodes_cpu_s"] / max(1, received),
        "generator_cpu_pct": 100.0 * measured["cpu_s"] / measured["wall_s"],
    }


async def _one_run(base: Settings, codec: EventCodec, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The moderated path, then the direct baseline on the same nodes (each with fresh viewers)."""
    async with namespace(base, PARTITIONS) as scoped:
        settings = scoped.model_copy(
            update={"auth": scoped.auth.model_copy(update={"jwt_secret": SecretStr(SECRET)})}
        )
        stream = f"bench-{uuid.uuid4().hex[:8]}"
        async with (
            EventPublisher(settings.kafka, codec, producer="bench") as publisher,
            _moderation(settings, codec, publisher, stream),
            _edge_nodes(settings) as (ports, nodes),
        ):
            tokens = AccessTokens(
                SECRET, issuer=settings.auth.jwt_issuer, audience=settings.auth.jwt_audience, ttl_s=3600
            )
            sending = _send_chat(tokens, ports[0], stream, args.rate, args.seconds)
            chat = await _measured(ports, nodes, args.viewers, stream, sending)
            sender = chat["sent"]
            moderated = _figures("moderated", args.viewers, {**chat, "sent": sender["sent"]})
            moderated["unacked"] = sender["sent"] - sender["acked"]
            # Another stream: a subscriber of the first would be sent its recent chat as backfill.
            other = f"{stream}-direct"
            publishing = publish_direct(publisher, other, args.rate, args.seconds)
            baseline = await _measured(ports, nodes, args.viewers, other, publishing)
            direct = _figures("direct (baseline)", args.viewers, baseline)
    return [moderated, direct]


@contextlib.asynccontextmanager
async def _moderation(
    settings: Settings, codec: EventCodec, publisher: EventPublisher, stream: str
) -> AsyncIterator[None]:
    """The moderation worker running, ``stream`` created and synced to every partition of chat.sent."""
    with tempfile.TemporaryDirectory(prefix="bench-edge-moderated-") as data:
        sampler = Sampler('esports_chat_events_total{type="ChatMessageSent"}')
        only, limits = ["--only", "moderation"], {"ESPORTS_CHAT__RATE_LIMIT_MESSAGES": "1000000"}
        workers = Workers(settings, codec, Path(data), sampler, "chat", SOURCE, only, limits)
        try:
            await publisher.publish(
                StreamCreated(stream_id=stream, channel_id="c", owner_id=OWNER, title="Final")
            )
            workers.start(1)
            await workers.ready(PARTITIONS)
            await synced_everywhere(settings, codec, stream, PARTITIONS, blocked=False)
            yield
        finally:
            sampler.stop()
            workers.kill()


@contextlib.asynccontextmanager
async def _edge_nodes(
    settings: Settings,
) -> AsyncIterator[tuple[list[int], list[subprocess.Popen[bytes]]]]:
    """Two edge nodes on core 0 that accept the bench's token and a fast sender; stopped on exit."""
    env = {
        "ESPORTS_AUTH__JWT_SECRET": SECRET,
        "ESPORTS_EDGE__CLIENT_MESSAGES_PER_S": "10000",
        "ESPORTS_EDGE__CLIENT_BURST": "10000",
    }
    ports = [free_port(), free_port()]
    nodes = [start_node(settings, port, "frames", core=0, env=env) for port in ports]
    try:
        for port, node in zip(ports, nodes, strict=True):
            await wait_healthy(port, node)
        yield ports, nodes
    finally:
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            await asyncio.to_thread(node.wait, 30)


def _report(args: argparse.Namespace, runs: list[list[dict[str, Any]]]) -> None:
    print(
        f"edge, moderated: {args.viewers} viewers over 2 edge nodes (core 0), picows generator (core 1), "
        f"{args.rate} msg/s for {args.seconds:g}s from {SENDERS} senders on node A; "
        f"medians of {len(runs)} run(s); latency = the sender's send time -> each viewer's receipt; "
        "CPU = both nodes"
    )
    keys = ["delivered_pct", "p50_ms", "p99_ms", "nodes_cpu_pct", "node_us_per_delivery", "generator_cpu_pct"]
    print("| path | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for i, path in enumerate(run[i]["path"] for run in runs[:1] for i in range(len(run))):
        values = [statistics.median(run[i][k] for run in runs) for k in keys]
        print(f"| {path} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    unacked = sum(run[0]["unacked"] for run in runs)
    if unacked:
        print(f"warning: {unacked} chat command(s) not acknowledged within 1 s of the last send")


async def _bench(args: argparse.Namespace) -> None:
    base, codec = Settings(), EventCodec.load(SCHEMAS_DIR)
    runs = [await _one_run(base, codec, args) for _ in range(args.runs)]
    _report(args, runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=5000, help="in all, half on each node")
    parser.add_argument("--rate", type=int, default=50, help="chat messages per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1000 viewers, 20 msg/s, 4 s, one run")
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.rate, args.seconds, args.runs = 1000, 20, 4.0, 1
    asyncio.run(_bench(args))


if __name__ == "__main__":
    main()
