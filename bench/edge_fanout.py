"""Edge fan-out end to end: Kafka → edge node → thousands of websocket viewers in another process.

For each delivery writer of the node (``edge.fanout``: ``frames`` = frame once and write the same
bytes to every transport; ``broadcast`` = ``websockets.broadcast()``; ``naive`` = one awaited
``send()`` per viewer, the baseline) it runs, in the same run and against the same broker:

1. the node as a subprocess pinned to core 0, the load generator (picows clients) pinned to core 1;
2. N viewers connect and subscribe to one stream: node RSS before/after → memory per connection;
3. M chat messages/s for T seconds are published to ``chat.messages`` as ``ChatMessageAccepted``
   (the moderation agent is not in the path: the bench publishes its decisions directly), each
   carrying its send time; every viewer records receipt time → p50/p99 latency, deliveries/s;
4. node and generator CPU over the window (the generator must not be the bottleneck).

    python bench/edge_fanout.py [--viewers 5000] [--rate 50] [--seconds 10] [--runs 3] [--quick]

The node and the generator each hold a file descriptor per viewer: ``--viewers`` must stay below
the hard ``RLIMIT_NOFILE`` (``ulimit -Hn``), which the bench raises the soft limit to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.topics import CATALOGUE
from infra.kafka import EventPublisher, TopicAdmin, TopicNames
from infra.settings import REPO_ROOT, Settings
from schemas import SCHEMAS_DIR

MODES = ("frames", "broadcast", "naive")
TEXT_MARK = b'"text":"t='
FD_HEADROOM = 200  # descriptors a node or the generator holds besides its viewers' sockets


# --- the load generator (its own process, picows) ---------------------------------------------


def generator_main(ports: list[int], viewers: int, stream: str) -> None:
    import uvloop

    _raise_fd_limit()
    uvloop.run(_generate(ports, viewers, stream))


async def _generate(ports: list[int], viewers: int, stream: str) -> None:
    """``viewers`` connections spread evenly over the nodes at ``ports``, all watching ``stream``."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    latencies = array("q")
    state = {"subscribed": 0, "closed": 0}
    all_subscribed = asyncio.Event()
    subscribe = json.dumps({"type": "subscribe", "stream": stream}).encode()

    class Viewer(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send(WSMsgType.TEXT, subscribe)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type != WSMsgType.TEXT:
                return
            data = frame.get_payload_as_bytes()
            at = data.find(TEXT_MARK)
            if at >= 0:
                start = at + len(TEXT_MARK)
                latencies.append(time.time_ns() - int(data[start : data.index(b'"', start)]))
            elif b'"subscribed"' in data:
                state["subscribed"] += 1
                if state["subscribed"] >= viewers:
                    all_subscribed.set()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            state["closed"] += 1

    urls = [f"ws://127.0.0.1:{port}/" for port in ports]
    transports = []
    for first in range(0, viewers, 200):
        batch = await asyncio.gather(
            *(ws_connect(Viewer, urls[i % len(urls)]) for i in range(first, min(viewers, first + 200)))
        )
        transports += [t for t, _ in batch]
    await all_subscribed.wait()
    print(f"READY {viewers}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # GO
    cpu0, wall0 = _cpu_self(), time.monotonic()
    await loop.run_in_executor(None, sys.stdin.readline)  # STOP
    cpu, wall = _cpu_self() - cpu0, time.monotonic() - wall0
    for transport in transports:
        transport.disconnect()
    print(
        json.dumps(
            {
                "latencies_ns": _percentiles(latencies),
                "received": len(latencies),
                "cpu_s": cpu,
                "wall_s": wall,
                "closed_early": state["closed"],
            }
        ),
        flush=True,
    )


def _percentiles(values: array[int]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan")}
    ordered = sorted(values)
    return {
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _pin(core: int) -> Any:
    def pin() -> None:
        cores = os.sched_getaffinity(0)
        if len(cores) > 1:
            os.sched_setaffinity(0, {core % len(cores)})
        _raise_fd_limit()

    return pin


# --- the orchestrator -----------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_node(
    settings: Settings, port: int, mode: str, core: int = 0, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """An edge node (``python -m edge_ws.node``) pinned to ``core``; ``env`` adds ESPORTS_* settings."""
    env = {
        **os.environ,
        "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "ESPORTS_EDGE__FANOUT": mode,
        "ESPORTS_EDGE__MAX_CONNECTIONS_PER_IP": "1000000",
        "ESPORTS_EDGE__SEND_BUFFER_BYTES": str(4 * 1024 * 1024),
        "ESPORTS_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "edge_ws.node", str(port)], cwd=REPO_ROOT, env=env, preexec_fn=_pin(core)
    )


def start_generator(ports: list[int], viewers: int, stream: str) -> subprocess.Popen[bytes]:
    """The picows viewers (see :func:`generator_main`) pinned to core 1; ``READY`` once subscribed."""
    ports_arg = ",".join(map(str, ports))
    return subprocess.Popen(
        [sys.executable, __file__, "--generator", ports_arg, str(viewers), stream],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=_pin(1),
    )


async def wait_healthy(port: int, node: subprocess.Popen[bytes]) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(300):
        try:
            await asyncio.to_thread(opener.open, f"http://127.0.0.1:{port}/health", None, 2)
            return
        except OSError:
            if node.poll() is not None:
                raise RuntimeError("edge node exited") from None
            await asyncio.sleep(0.1)
    raise RuntimeError("edge node did not become healthy")


async def publish_paced(publisher: EventPublisher, stream: str, rate: int, seconds: float) -> int:
    """``rate`` messages per second for ``seconds``, each carrying its send time (not awaited serially)."""
    loop = asyncio.get_running_loop()
    start, total, pending = loop.time(), int(rate * seconds), []
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        event = ChatMessageAccepted(
            message_id=uuid.uuid4().hex,
            stream_id=stream,
            user_id="bench",
            display_name="bench",
            text=f"t={time.time_ns()}",
        )
        pending.append(asyncio.ensure_future(publisher.publish(event)))
    await asyncio.gather(*pending)
    return total


async def _one_run(
    settings: Settings, codec: EventCodec, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    port, stream = free_port(), f"bench-{uuid.uuid4().hex[:8]}"
    node = start_node(settings, port, mode)
    generator = None
    try:
        await wait_healthy(port, node)
        rss0 = _rss_kib(node.pid)
        generator = start_generator([port], args.viewers, stream)
        assert generator.stdin is not None and generator.stdout is not None
        ready = await asyncio.to_thread(generator.stdout.readline)
        assert ready.startswith(b"READY"), ready
        await asyncio.sleep(0.5)
        rss1 = _rss_kib(node.pid)
        async with EventPublisher(settings.kafka, codec, producer="bench") as publisher:
            generator.stdin.write(b"GO\n")
            generator.stdin.flush()
            cpu0, wall0 = cpu_of(node.pid), time.monotonic()
            sent = await publish_paced(publisher, stream, args.rate, args.seconds)
            await asyncio.sleep(args.settle)
            node_cpu, wall = cpu_of(node.pid) - cpu0, time.monotonic() - wall0
        generator.stdin.write(b"STOP\n")
        generator.stdin.flush()
        result = json.loads(await asyncio.to_thread(generator.stdout.readline))
    finally:
        if generator is not None and generator.poll() is None:
            generator.kill()
        node.send_signal(signal.SIGTERM)
        await asyncio.to_thread(node.wait, 30)
    expected = sent * args.viewers
    return {
        "mode": mode,
        "mem_per_conn_kib": (rss1 - rss0) / args.viewers,
        "node_rss_mib": rss1 / 1024,
        "delivered_pct": 100.0 * result["received"] / expected,
        "deliveries_per_s": result["received"] / wall,
        "p50_ms": result["latencies_ns"]["p50"] / 1e6,
        "p99_ms": result["latencies_ns"]["p99"] / 1e6,
        "node_cpu_pct": 100.0 * node_cpu / wall,
        "node_us_per_delivery": 1e6 * node_cpu / max(1, result["received"]),
        "generator_cpu_pct": 100.0 * result["cpu_s"] / result["wall_s"],
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


async def _bench(args: argparse.Namespace) -> None:
    base = Settings()
    prefix = f"bench-edge-{uuid.uuid4().hex[:8]}."
    settings = base.model_copy(update={"kafka": base.kafka.model_copy(update={"topic_prefix": prefix})})
    codec = EventCodec.load(SCHEMAS_DIR)
    async with TopicAdmin(settings.kafka) as admin:
        await admin.ensure(CATALOGUE)
    try:
        results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
        for _ in range(args.runs):
            for mode in args.modes:  # interleaved, so drift in the machine hits every mode alike
                results[mode].append(await _one_run(settings, codec, mode, args))
        _report(args, results)
    finally:
        async with TopicAdmin(settings.kafka) as admin:
            await admin.delete([TopicNames(prefix).physical(t.name) for t in CATALOGUE])


def _report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> None:
    print("deliveries_per_s = received / (publish window + settle); node CPU includes its Kafka reader")
    print(
        f"edge fan-out: {args.viewers} viewers of one stream, {args.rate} msg/s for {args.seconds}s, "
        f"medians of {args.runs} run(s); node on core 0, picows generator on core 1; Kafka on the same host; "
        "ChatMessageAccepted published directly (moderation agent not in the path)"
    )
    keys = [
        "mem_per_conn_kib",
        "node_rss_mib",
        "delivered_pct",
        "deliveries_per_s",
        "p50_ms",
        "p99_ms",
        "node_cpu_pct",
        "node_us_per_delivery",
        "generator_cpu_pct",
    ]
    print("| writer | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for mode, runs in results.items():
        print(f"| {mode} | " + " | ".join(f"{_median(runs, k):.1f}" for k in keys) + " |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generator":
        generator_main([int(port) for port in sys.argv[2].split(",")], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=50, help="chat messages per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait for stragglers")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--quick", action="store_true", help="1000 viewers, 20 msg/s, 4 s, one run")
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.rate, args.seconds, args.runs = 1000, 20, 4.0, 1
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if args.viewers + FD_HEADROOM > fd_limit:
        parser.error(f"{args.viewers} viewers need more file descriptors than ulimit -Hn ({fd_limit})")
    asyncio.run(_bench(args))


if __name__ == "__main__":
    main()
