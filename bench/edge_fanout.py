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
                                [--client picows|raw] [--generators N] [--workers N] [--linger-ms 0]

The node holds a file descriptor per viewer, so ``--viewers`` must stay below the hard
``RLIMIT_NOFILE`` (``ulimit -Hn``, which the bench raises the soft limit to) less
:data:`FD_HEADROOM`, per worker process of the node (``--workers N``: N processes on one port,
``edge.workers``; node CPU and memory are the sum over its processes). The viewers' own sockets
are spread over as many generator processes as that limit needs (``--generators`` for more), all
on core 1. The picows client makes a Python call per frame received, which at 20,000 viewers and
100 msg/s is more than one core can do; the ``raw`` client makes one per read (see
:class:`_RawViewer`; the node's websocket pings are turned off for it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.topics import CATALOGUE
from infra.kafka import EventPublisher, TopicAdmin, TopicNames
from infra.settings import REPO_ROOT, Settings
from schemas import SCHEMAS_DIR

MODES = ("frames", "broadcast", "naive")
TEXT_MARK = b'"text":"t='
# Descriptors a node holds besides its viewers' sockets: 16 here (listener, epoll, Kafka, stdio, ...);
# a generator process holds fewer. With the hard limit of 20,000, one node holds at most 19,950 viewers.
FD_HEADROOM = 50
# SO_REUSEPORT hashes each connection to a worker: a worker may get a few per cent over its share.
WORKER_SHARE = 1.05


# --- the load generator (its own processes, picows or raw sockets) --------------------------------


def generator_main(ports: list[int], first: int, count: int, stream: str, client: str, out: str) -> None:
    import uvloop

    _raise_fd_limit()
    uvloop.run(_generate(ports, first, count, stream, client, out))


async def _generate(ports: list[int], first: int, count: int, stream: str, client: str, out: str) -> None:
    """Viewers ``first`` .. ``first + count`` of the run (viewer ``i`` on node ``i % len(ports)``), all
    watching ``stream``; what they received goes to the file ``out`` (see :class:`Viewers`)."""
    urls = [("127.0.0.1", port) for port in ports]
    state = {"subscribed": 0, "closed": 0, "received": 0}
    all_subscribed = asyncio.Event()
    records = array("q")
    connect = _picows_viewer if client == "picows" else _raw_viewer
    closers = []
    for start in range(first, first + count, 200):
        batch = range(start, min(first + count, start + 200))
        closers += await asyncio.gather(
            *(connect(urls[i % len(urls)], stream, records, state, count, all_subscribed) for i in batch)
        )
    await all_subscribed.wait()
    print(f"READY {count}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # GO
    with quiet_collector():
        cpu0, wall0 = _cpu_self(), time.monotonic()
        await loop.run_in_executor(None, sys.stdin.readline)  # STOP
        cpu, wall = _cpu_self() - cpu0, time.monotonic() - wall0
    for close in closers:
        close()
    Path(out).write_bytes(records.tobytes())
    result = {"received": state["received"], "cpu_s": cpu, "wall_s": wall, "closed_early": state["closed"]}
    print(json.dumps(result), flush=True)


async def _picows_viewer(
    url: tuple[str, int],
    stream: str,
    latencies: array[int],
    state: dict[str, int],
    viewers: int,
    all_subscribed: asyncio.Event,
) -> Any:
    """A picows client: a Python callback per frame; records each message's latency in ns."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    subscribe = json.dumps({"type": "subscribe", "stream": stream}).encode()

    class Viewer(WSListener):
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
                state["received"] += 1
            elif b'"subscribed"' in data:
                _subscribed(state, viewers, all_subscribed)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            state["closed"] += 1

    transport, _ = await ws_connect(Viewer, f"ws://{url[0]}:{url[1]}/")
    return transport.disconnect


def _subscribed(state: dict[str, int], viewers: int, all_subscribed: asyncio.Event) -> None:
    state["subscribed"] += 1
    if state["subscribed"] >= viewers:
        all_subscribed.set()


# A chat frame's send time, as the bench writes it: "text":"t=<19 digits of time_ns>
TOKEN = len(TEXT_MARK) + 19


class _RawViewer(asyncio.Protocol):
    """A websocket viewer without a websocket library, for loads where a Python call per frame would
    make the generator the bottleneck: the handshake by hand, then per *read* one record (receipt
    time, send time of the first message in it, messages in it). A viewer receives every message of
    the stream in order, so the orchestrator knows which ones those were. It does not answer pings
    (the bench turns them off for it)."""

    def __init__(self, host: str, stream: str, records: array[int], state: dict[str, int], done: Any) -> None:
        self._host = host
        self._subscribe = _client_frame(json.dumps({"type": "subscribe", "stream": stream}).encode())
        self._records = records
        self._state = state
        self._done = done  # called once subscribed
        self._buffer = b""  # the handshake's answer until it is complete; then the unmatched tail
        self._upgraded = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not registered as one
        key = base64.b64encode(os.urandom(16))
        self._transport.write(
            b"GET / HTTP/1.1\r\nHost: " + self._host.encode() + b"\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        chunk = self._buffer + data
        if not self._upgraded:
            end = chunk.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = chunk
                return
            assert chunk.startswith(b"HTTP/1.1 101"), chunk[:80]
            self._upgraded = True
            assert self._transport is not None
            self._transport.write(self._subscribe)
            chunk = chunk[end + 4 :]
        limit = len(chunk) - TOKEN + 1  # a token starting before this is complete
        if limit <= 0:
            self._buffer = chunk
            return
        count = chunk.count(TEXT_MARK, 0, limit + len(TEXT_MARK) - 1)
        if count:
            at = chunk.find(TEXT_MARK) + len(TEXT_MARK)
            self._records.extend((now, int(chunk[at : at + 19]), count))
            self._state["received"] += count
        elif self._done is not None and b'"subscribed"' in chunk:
            self._done()
            self._done = None
        self._buffer = chunk[limit:]

    def connection_lost(self, exc: Exception | None) -> None:
        self._state["closed"] += 1


def _client_frame(payload: bytes) -> bytes:
    """A masked client text frame (a zero mask: the payload as is)."""
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload


async def _raw_viewer(
    url: tuple[str, int],
    stream: str,
    records: array[int],
    state: dict[str, int],
    viewers: int,
    all_subscribed: asyncio.Event,
) -> Any:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(
        lambda: _RawViewer(
            url[0], stream, records, state, lambda: _subscribed(state, viewers, all_subscribed)
        ),
        url[0],
        url[1],
    )
    return transport.abort


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """No garbage collection in a bench process while it measures (the generator receiving, the
    orchestrator stamping and publishing): a full collection over thousands of connections' objects
    stopped a generator for 50 to 180 ms, which its viewers' receipt times (or the messages' send
    times) then carried as if the node had been late. Measured windows last seconds; what they
    allocate is freed by reference counting."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


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
    """Resident memory of ``pid`` and its descendants (a node's workers), KiB."""
    total = 0
    for one in tree(pid):
        try:
            lines = Path(f"/proc/{one}/status").read_text().splitlines()
        except FileNotFoundError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return total


def cpu_of(pid: int) -> float:
    """CPU seconds of ``pid`` and every live process under it (a node's workers)."""
    total = 0
    for one in tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def start_node(
    settings: Settings, port: int, mode: str, core: int = 0, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """An edge node (``esports edge``, workers too) pinned to ``core``; ``env`` adds ESPORTS_* settings."""
    env = {
        **os.environ,
        "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "ESPORTS_EDGE__FANOUT": mode,
        "ESPORTS_EDGE__MAX_CONNECTIONS_PER_IP": "1000000",
        "ESPORTS_EDGE__SEND_BUFFER_BYTES": str(4 * 1024 * 1024),
        "ESPORTS_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    argv = [sys.executable, "-m", "infra.cli", "edge", "--port", str(port)]  # `esports edge`
    return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, preexec_fn=_pin(core))


class Viewers:
    """The load generator: ``processes`` processes pinned to core 1 holding ``viewers`` connections in
    all (each process under the open-file limit), spread evenly over the nodes at ``ports``.

    ``client="picows"`` records every (message, viewer) latency as it parses each frame;
    ``client="raw"`` records one line per read (see :class:`_RawViewer`) and needs the send times
    (``sent_ns``, in publish order) to turn them into latencies."""

    def __init__(
        self, ports: list[int], viewers: int, stream: str, *, client: str = "picows", processes: int = 1
    ) -> None:
        self.client = client
        self._dir = tempfile.TemporaryDirectory(prefix="bench-edge-viewers-")
        self._outs = [f"{self._dir.name}/{n}.bin" for n in range(processes)]
        shares = [viewers * (n + 1) // processes - viewers * n // processes for n in range(processes)]
        firsts = [viewers * n // processes for n in range(processes)]
        ports_arg = ",".join(map(str, ports))
        self._procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--generator",
                    ports_arg,
                    str(first),
                    str(share),
                    stream,
                    client,
                    out,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                preexec_fn=_pin(1),
            )
            for first, share, out in zip(firsts, shares, self._outs, strict=True)
        ]

    async def ready(self) -> None:
        for proc in self._procs:
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line.startswith(b"READY"), line

    def _tell(self, word: bytes) -> None:
        for proc in self._procs:
            assert proc.stdin is not None
            proc.stdin.write(word + b"\n")
            proc.stdin.flush()

    def go(self) -> None:
        self._tell(b"GO")

    async def stop(self, sent_ns: list[int] | None = None) -> dict[str, Any]:
        """Stop measuring; received, latency percentiles, the generators' CPU (in all) and wall."""
        self._tell(b"STOP")
        results = []
        for proc in self._procs:
            assert proc.stdout is not None
            results.append(json.loads(await asyncio.to_thread(proc.stdout.readline)))
        histogram = Histogram()
        for out in self._outs:
            records = array("q", Path(out).read_bytes())
            if self.client == "picows":
                histogram.add_all(records)
            else:
                histogram.add_reads(records, sent_ns or [])
        return {
            "latencies_ns": histogram.percentiles(),
            "received": sum(r["received"] for r in results),
            "cpu_s": sum(r["cpu_s"] for r in results),
            "wall_s": max(r["wall_s"] for r in results),
            "closed_early": sum(r["closed_early"] for r in results),
        }

    def kill(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        self._dir.cleanup()


class Histogram:
    """Latencies in 0.1 ms bins (millions of them fit; the percentiles are exact to a bin)."""

    BIN_NS = 100_000

    def __init__(self) -> None:
        self._bins: dict[int, int] = {}
        self.count = 0

    def add_all(self, latencies_ns: array[int]) -> None:
        bins, width = self._bins, self.BIN_NS
        for latency in latencies_ns:
            key = latency // width
            bins[key] = bins.get(key, 0) + 1
        self.count += len(latencies_ns)

    def add_reads(self, records: array[int], sent_ns: list[int]) -> None:
        """(receipt, first send time, messages) per read: the messages are consecutive in ``sent_ns``."""
        index = {sent: i for i, sent in enumerate(sent_ns)}
        bins, width = self._bins, self.BIN_NS
        for n in range(0, len(records), 3):
            received, first, count = records[n], records[n + 1], records[n + 2]
            start = index[first]
            for sent in sent_ns[start : start + count]:
                key = (received - sent) // width
                bins[key] = bins.get(key, 0) + 1
            self.count += count

    def percentiles(self) -> dict[str, float]:
        if not self.count:
            return {"p50": float("nan"), "p99": float("nan")}
        found: dict[str, float] = {}
        seen = 0
        for key in sorted(self._bins):
            seen += self._bins[key]
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                if name not in found and seen > q * self.count:
                    found[name] = (key + 0.5) * self.BIN_NS
        return found


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


async def publish_paced(
    publisher: EventPublisher, stream: str, rate: int, seconds: float, sent_ns: list[int] | None = None
) -> int:
    """``rate`` messages per second for ``seconds``, each carrying its send time (not awaited serially);
    the send times are appended to ``sent_ns``."""
    loop = asyncio.get_running_loop()
    start, total, pending = loop.time(), int(rate * seconds), []
    sent_ns = [] if sent_ns is None else sent_ns
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        event = ChatMessageAccepted(
            message_id=uuid.uuid4().hex,
            stream_id=stream,
            user_id="bench",
            display_name="bench",
            text=f"t={_stamp(sent_ns)}",
        )
        pending.append(asyncio.ensure_future(publisher.publish(event)))
    await asyncio.gather(*pending)
    return total


def _stamp(sent_ns: list[int]) -> int:
    sent_ns.append(time.time_ns())
    return sent_ns[-1]


async def _one_run(
    settings: Settings, codec: EventCodec, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    port, stream = free_port(), f"bench-{uuid.uuid4().hex[:8]}"
    env = {**client_env(args.client), "ESPORTS_EDGE__WORKERS": str(args.workers)}
    node = start_node(settings, port, mode, env=env)
    viewers, sent_ns = None, list[int]()
    try:
        await wait_healthy(port, node)
        rss0 = _rss_kib(node.pid)
        viewers = Viewers([port], args.viewers, stream, client=args.client, processes=args.generators)
        await viewers.ready()
        await asyncio.sleep(0.5)
        rss1 = _rss_kib(node.pid)
        kafka = settings.kafka.model_copy(update={"linger_ms": args.linger_ms})
        async with EventPublisher(kafka, codec, producer="bench") as publisher:
            viewers.go()
            with quiet_collector():
                cpu0, wall0, busy0 = cpu_of(node.pid), time.monotonic(), machine_busy_s()
                sent = await publish_paced(publisher, stream, args.rate, args.seconds, sent_ns)
                await asyncio.sleep(args.settle)
                node_cpu, wall = cpu_of(node.pid) - cpu0, time.monotonic() - wall0
                busy = machine_busy_s() - busy0
        result = await viewers.stop(sent_ns)
    finally:
        if viewers is not None:
            viewers.kill()
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
        # CPU of everything else on the machine (the broker, other benchmarks), in cores
        "others_cores": max(0.0, busy - node_cpu - result["cpu_s"]) / wall,
    }


def client_env(client: str) -> dict[str, str]:
    """Node settings a generator client needs: the raw client does not answer websocket pings."""
    return {"ESPORTS_EDGE__PING_INTERVAL_S": "3600"} if client == "raw" else {}


def machine_busy_s() -> float:
    """CPU seconds every core has spent busy since boot (``/proc/stat``)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


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
        f"medians of {args.runs} run(s); node ({args.workers} worker process(es)) on core 0, "
        f"{args.generators} {args.client} generator process(es) on core 1; Kafka on the same host; "
        "ChatMessageAccepted published directly (moderation agent not in the path), "
        f"bench publisher linger_ms {args.linger_ms}"
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
        "others_cores",
    ]
    print("| writer | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for mode, runs in results.items():
        print(f"| {mode} | " + " | ".join(f"{_median(runs, k):.1f}" for k in keys) + " |")
        for run in runs if len(runs) > 1 else []:
            print(f"| ({mode}, one run) | " + " | ".join(f"{run[k]:.1f}" for k in keys) + " |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generator":
        ports, first, count, stream, client, out = sys.argv[2:8]
        generator_main([int(port) for port in ports.split(",")], int(first), int(count), stream, client, out)
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
    parser.add_argument(
        "--client",
        choices=("picows", "raw"),
        default="picows",
        help="picows: a Python call per frame; raw: per read (for loads picows cannot take on one core)",
    )
    parser.add_argument(
        "--generators",
        type=int,
        default=0,
        help="generator processes (default: as few as the fd limit allows)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes of the node (ESPORTS_EDGE__WORKERS)"
    )
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=0,
        help="the bench publisher's linger_ms (0: each message sent at once; the README's figures "
        "before 2026-12 used the settings' default, 5)",
    )
    parser.add_argument("--quick", action="store_true", help="1000 viewers, 20 msg/s, 4 s, one run")
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.rate, args.seconds, args.runs = 1000, 20, 4.0, 1
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per_worker = int(args.viewers * WORKER_SHARE / args.workers) if args.workers > 1 else args.viewers
    if per_worker + FD_HEADROOM > fd_limit:
        parser.error(
            f"each worker of the node holds up to {per_worker} viewers (the kernel spreads them over "
            f"the {args.workers} workers, not exactly evenly), plus about {FD_HEADROOM} descriptors, "
            f"over ulimit -Hn ({fd_limit}): use more --workers"
        )
    args.generators = args.generators or -(-args.viewers // (fd_limit - FD_HEADROOM))
    asyncio.run(_bench(args))


if __name__ == "__main__":
    main()
