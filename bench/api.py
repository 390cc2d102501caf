"""REST API throughput and latency: the live listing (a query) and stream creation (a command).

Starts a real uvicorn (as ``esports api`` does: ``uvicorn.run(factory, workers=N)``) in a subprocess
serving the API in its own namespace (topic prefix, PostgreSQL schemas, Redis prefix), seeds the live
listing in Redis with the projection's key layout, registers a streamer with a channel, then loads
it with ``wrk`` from a separate process (``apt-get install wrk``) and reports requests/s and
p50/p99 latency, medians of several runs, for:

- ``GET /api/v1/streams/live`` (Redis zset + hashes read once a second per process, the page
  encoded once: see producers.listings),
- ``POST /api/v1/streams`` by the channel's owner (JWT check, the account's existence and the
  channel's claim, cached per process until PostgreSQL notifies a change of their rows, then a
  publish with acks=all waiting for the broker's acknowledgement: see producers.routes.stream_creation),
- the baseline, measured in the same run: a bare Starlette endpoint returning the same live
  listing JSON (pre-serialised) under the same uvicorn settings. Both servers run side by side and
  their runs alternate (baseline, GET, POST, baseline, ...), so each round's ratios compare like
  with like on a shared machine.

Beside each figure: the server's CPU time per request (user + system of the uvicorn process and its
workers, from ``/proc``, over the run: the robust figure when other work shares the machine), and the
generator's CPU time; then each endpoint's ratios to the baseline (req/s, and CPU per request). With
more than one core, the server and the generator are pinned to different cores (``taskset``).

    python bench/api.py [--workers 1 2] [--runs 5] [--duration 5] [--connections 64] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg
from psycopg import sql
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from events.topics import CATALOGUE
from infra.kafka import TopicAdmin, TopicNames
from infra.redis import make_client
from infra.settings import Settings
from projections.redis_keys import LiveKeys

REPO_ROOT = Path(__file__).resolve().parent.parent
LIVE_STREAMS = 100
NAMESPACE_ENV = "BENCH_API_NAMESPACE"  # read by the factories below (the bench is their composition root)


# --- the served apps (imported by uvicorn's worker processes) -----------------------------------


def api_factory() -> Any:
    """The real API app, in the bench's namespace."""
    from producers.services import Namespace
    from web.app import create_app
    from web.server import served

    return served(create_app(Settings(), namespace=Namespace(**json.loads(os.environ[NAMESPACE_ENV]))))


def baseline_factory() -> Any:
    """Bare Starlette: one endpoint answering the live listing's JSON, built once."""
    items = [_live_item(i) for i in range(20)]
    payload = json.dumps({"items": items, "next_cursor": "MjA", "source": "redis"}).encode()

    async def live(request: Any) -> Response:
        return Response(payload, media_type="application/json")

    return Starlette(routes=[Route("/api/v1/streams/live", live)])


def _live_item(i: int) -> dict[str, Any]:
    return {
        "stream_id": f"bench-stream-{i:04d}",
        "channel_id": f"bench-channel-{i:04d}",
        "title": f"Bench stream {i}",
        "game": "League of Legends",
        "started_at": "2025-06-01T18:00:00.000Z",
        "viewers": 100_000 - i,
    }


def serve(factory: str, port: int, workers: int) -> None:
    """``python bench/api.py --serve api|baseline``: uvicorn as `esports api` runs it."""
    import uvicorn

    from infra import logs

    logs.configure("WARNING")
    uvicorn.run(
        f"bench.api:{factory}_factory",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # as `esports api` (web.server) runs it
        log_level="warning",
    )


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    generator_cpu_s: float
    server_cpu_us: float  # per request


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (uvicorn's workers), from /proc."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        # After the command: state, ppid, ... utime and stime are the 12th and 13th (stat(5) 14, 15).
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinning(role: str, workers: int) -> list[str]:
    """taskset prefixes: server on the first cores, the generator on the last one, if there is room."""
    cores = os.cpu_count() or 1
    if not shutil.which("taskset") or cores < 2:
        return []
    if role == "generator":
        return ["taskset", "-c", str(cores - 1)]
    server_cores = max(1, min(workers, cores - 1))
    return ["taskset", "-c", f"0-{server_cores - 1}"]


class Server:
    """A uvicorn subprocess serving one of the factories."""

    def __init__(self, factory: str, workers: int, env: dict[str, str]) -> None:
        self.port = free_port()
        self.workers = workers
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            __file__,
            "--serve",
            factory,
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.process = subprocess.Popen([*pinning("server", workers), *command], env=env, cwd=REPO_ROOT)

    def cpu_s(self) -> float:
        return process_tree_cpu_s(self.process.pid)

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited"
            try:
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.url} not ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)  # wrk --latency distribution
_REQUESTS = re.compile(r"^\s+(\d+) requests in ", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(server: Server, path: str, *, duration: int, connections: int, script: Path | None) -> Figures:
    """One wrk run from its own (pinned) process; the generator's CPU from the children's rusage, the
    server's from /proc."""
    workers = server.workers
    command = [
        *pinning("generator", workers),
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
    ]
    if script:
        command += ["-s", str(script)]
    before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), server.cpu_s()
    output = subprocess.run([*command, server.url + path], capture_output=True, text=True, check=True).stdout
    after, server_after = resource.getrusage(resource.RUSAGE_CHILDREN), server.cpu_s()
    latency = {p: float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(output)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    requests = int(_REQUESTS.search(output).group(1))  # type: ignore[union-attr]
    server_cpu_us = (server_after - server_before) / max(requests, 1) * 1e6
    return Figures(
        rps, latency["50"], latency["99"], int(errors.group(1)) if errors else 0, cpu, server_cpu_us
    )


def median_figures(runs: list[Figures]) -> Figures:
    return Figures(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        statistics.median(r.generator_cpu_s for r in runs),
        statistics.median(r.server_cpu_us for r in runs),
    )


def post_script(directory: Path, token: str, channel_id: str) -> Path:
    script = directory / "create_stream.lua"
    body = json.dumps(
        {"channel_id": channel_id, "title": "Bench stream", "game": "Valorant", "tags": ["bench"]}
    )
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    return script


# --- namespace set-up and tear-down ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchNamespace:
    tag: str

    @property
    def topic_prefix(self) -> str:
        return f"bench-{self.tag}."

    @property
    def redis_prefix(self) -> str:
        return f"bench-{self.tag}:"

    @property
    def schemas(self) -> dict[str, str]:
        return {"read_schema": f"rm_bench_{self.tag}", "command_schema": f"cmd_bench_{self.tag}"}

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ESPORTS_KAFKA__TOPIC_PREFIX": self.topic_prefix,
            "ESPORTS_LOG_LEVEL": "WARNING",
            NAMESPACE_ENV: json.dumps({**self.schemas, "redis_prefix": self.redis_prefix}),
            "PYTHONPATH": str(REPO_ROOT),
        }


async def create_namespace(settings: Settings, ns: BenchNamespace) -> None:
    scoped = settings.kafka.model_copy(update={"topic_prefix": ns.topic_prefix})
    async with TopicAdmin(scoped) as admin:
        await admin.ensure(CATALOGUE)
    # The read model's tables, as the projector would create them (the live listing reads Redis only).
    from projections.database import make_pool, migrate

    pool = make_pool(settings.postgres, name="bench", schema=ns.schemas["read_schema"])
    async with pool:
        await migrate(pool, ns.schemas["read_schema"])
    client, keys = make_client(settings.redis, name="bench"), LiveKeys(ns.redis_prefix)
    try:
        for i in range(LIVE_STREAMS):
            item = _live_item(i)
            await client.zadd(keys.live, {item["stream_id"]: item["viewers"]})
            fields: dict[str | bytes, str | bytes] = {
                k: str(v) for k, v in item.items() if k not in ("stream_id", "viewers")
            }
            fields["state"] = "live"
            await client.hset(keys.stream(item["stream_id"]), mapping=fields)  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def drop_namespace(settings: Settings, ns: BenchNamespace) -> None:
    async with await psycopg.AsyncConnection.connect(settings.postgres.dsn, autocommit=True) as conn:
        for schema in ns.schemas.values():
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    client = make_client(settings.redis, name="bench")
    try:
        keys = [k async for k in client.scan_iter(match=f"{ns.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    names = TopicNames(ns.topic_prefix)
    async with TopicAdmin(settings.kafka.model_copy(update={"topic_prefix": ns.topic_prefix})) as admin:
        await admin.delete([names.physical(t.name) for t in CATALOGUE])


def streamer(url: str) -> tuple[str, str]:
    """Register a user, open a channel (the user becomes a streamer); returns (access token, channel id)."""
    username = f"bench{uuid.uuid4().hex[:10]}"
    password = "bench password 123"
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post(
            "/api/v1/auth/register", json={"username": username, "password": password}
        ).raise_for_status()
        token = client.post("/api/v1/auth/login", json={"username": username, "password": password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        channel = client.post(
            "/api/v1/channels",
            json={"slug": f"bench-{uuid.uuid4().hex[:10]}", "display_name": "Bench"},
            headers=headers,
        )
        channel.raise_for_status()
        return token["access_token"], channel.json()["channel_id"]


BASELINE = "baseline GET (bare Starlette)"
LIVE_PATH = "/api/v1/streams/live?limit=20"


@dataclass(frozen=True, slots=True)
class Load:
    """One figure's load: which server, which request (a wrk script for the POST)."""

    server: Server
    path: str
    script: Path | None = None


def measure(
    args: argparse.Namespace, workers: int, ns: BenchNamespace, scratch: Path
) -> tuple[dict[str, Figures], dict[str, list[Figures]]]:
    """Both servers up at once (an idle one costs nothing) and their runs interleaved, so that the
    baseline and the API see the same machine; the medians, and every run (for per-run ratios)."""
    baseline, api = Server("baseline", workers, ns.env()), Server("api", workers, ns.env())
    try:
        baseline.wait_ready("/api/v1/streams/live")
        api.wait_ready("/health")
        token, channel_id = streamer(api.url)
        loads = {
            BASELINE: Load(baseline, "/api/v1/streams/live"),
            "GET /streams/live": Load(api, LIVE_PATH),
            "POST /streams": Load(api, "/api/v1/streams", post_script(scratch, token, channel_id)),
        }
        for load in loads.values():  # warm-up
            wrk(load.server, load.path, duration=1, connections=args.connections, script=load.script)
        runs: dict[str, list[Figures]] = {name: [] for name in loads}
        for _ in range(args.runs):
            for name, load in loads.items():
                runs[name].append(
                    wrk(
                        load.server,
                        load.path,
                        duration=args.duration,
                        connections=args.connections,
                        script=load.script,
                    )
                )
    finally:
        api.stop()
        baseline.stop()
    return {name: median_figures(figures) for name, figures in runs.items()}, runs


def ratios(runs: dict[str, list[Figures]]) -> dict[str, tuple[float, float]]:
    """Each endpoint against the baseline of the same round: medians of req/s ratios and of CPU-per-
    request ratios (baseline CPU / endpoint CPU, so both read "x bare Starlette", higher is better)."""
    base = runs[BASELINE]
    return {
        name: (
            statistics.median(f.rps / b.rps for f, b in zip(figures, base, strict=True)),
            statistics.median(b.server_cpu_us / f.server_cpu_us for f, b in zip(figures, base, strict=True)),
        )
        for name, figures in runs.items()
        if name != BASELINE
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker counts to run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median is printed)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections of wrk")
    parser.add_argument("--quick", action="store_true", help="1 worker, 3 runs of 2 s (a smoke check)")
    parser.add_argument("--serve", choices=["api", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workers[0])
        return 0
    if not shutil.which("wrk"):
        print("bench/api.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 1
    if args.quick:
        args.workers, args.runs, args.duration = [1], 3, 2
    settings = Settings()
    ns = BenchNamespace(uuid.uuid4().hex[:8])
    asyncio.run(create_namespace(settings, ns))
    print(
        f"cores={os.cpu_count()} connections={args.connections} runs={args.runs}x{args.duration}s "
        f"(medians) generator=wrk -t2, pinned={'yes' if pinning('generator', 1) else 'no'}"
    )
    header = ("workers", "endpoint", "req/s", "p50 ms", "p99 ms", "non-2xx", "srv cpu us/req", "gen cpu s")
    print("{:>7}  {:<32} {:>9} {:>8} {:>8} {:>8} {:>14} {:>9}".format(*header))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for workers in args.workers:
                medians, runs = measure(args, workers, ns, Path(scratch))
                for name, f in medians.items():
                    print(
                        f"{workers:>7}  {name:<32} {f.rps:>9.0f} {f.p50_ms:>8.2f} {f.p99_ms:>8.2f} "
                        f"{f.errors:>8} {f.server_cpu_us:>14.0f} {f.generator_cpu_s:>9.2f}",
                        flush=True,
                    )
                for name, (rps, cpu) in ratios(runs).items():
                    print(
                        f"{workers:>7}  {name} vs bare Starlette (medians of per-round ratios): "
                        f"req/s {rps:.2f}x, CPU per request {cpu:.2f}x",
                        flush=True,
                    )
    finally:
        asyncio.run(drop_namespace(settings, ns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
