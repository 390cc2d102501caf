"""A local three-node Redis Cluster for tests (no tests here): Debian's redis-server, three processes.

:func:`local_cluster` starts ``redis-server`` three times in cluster mode on free loopback ports
(client and cluster-bus ports both picked free, so it runs beside the shared standalone Redis and
other tests' clusters), nothing persisted (no RDB, no AOF, data under a temporary directory), joins
them with ``redis-cli --cluster create ... --cluster-replicas 0`` (three primaries, the 16384 slots
split in three), waits until every node reports ``cluster_state:ok`` and knows the others, and
stops them (SIGTERM, then SIGKILL) when the block ends. :meth:`LocalCluster.settings` points
``Settings`` at it with ``redis.cluster`` set.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis

from infra.settings import Settings
from tests.ports import free_port

__all__ = ["LocalCluster", "local_cluster"]

NODES = 3
START_TIMEOUT_S = 60.0  # generous: a loaded 2-core box


@dataclass(frozen=True, slots=True)
class LocalCluster:
    """The running cluster: its nodes' client ports and where their logs are."""

    ports: tuple[int, ...]
    directory: Path

    def settings(self, base: Settings) -> Settings:
        """``base`` with Redis pointing at the cluster (the first node; the client finds the rest)."""
        update = {"host": "127.0.0.1", "port": self.ports[0], "db": 0, "cluster": True}
        return base.model_copy(update={"redis": base.redis.model_copy(update=update)})

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.directory.glob("*.log"))
        )


@contextmanager
def local_cluster(directory: Path, nodes: int = NODES) -> Iterator[LocalCluster]:
    """Start, join and (afterwards) stop a cluster of ``nodes`` primaries (see the module docstring)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    assert server and cli, "redis-server and redis-cli are needed (infra/local/install-system.sh)"
    ports = [free_port() for _ in range(2 * nodes)]
    cluster = LocalCluster(tuple(ports[:nodes]), directory)
    with ExitStack() as stack:
        for port, bus in zip(ports[:nodes], ports[nodes:], strict=True):
            stack.enter_context(_node(server, directory, port, bus))
        for port in cluster.ports:
            _wait(partial(_ping, port), f"redis-server on {port}", cluster)
        _create(cli, cluster)
        for port in cluster.ports:
            _wait(partial(_joined, port, nodes), f"cluster_state:ok on {port}", cluster)
        yield cluster


@contextmanager
def _node(server: str, directory: Path, port: int, bus: int) -> Iterator[None]:
    data = directory / str(port)
    data.mkdir(parents=True, exist_ok=True)
    command = [
        server,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--cluster-enabled", "yes",
        "--cluster-port", str(bus),
        "--cluster-config-file", str(data / "nodes.conf"),
        "--cluster-node-timeout", "5000",
        "--dir", str(data),
        "--appendonly", "no",
        "--save", "",
        "--daemonize", "no",
        "--logfile", str(directory / f"node-{port}.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _create(cli: str, cluster: LocalCluster) -> None:
    nodes = [f"127.0.0.1:{port}" for port in cluster.ports]
    command = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}\n{cluster.logs()}"


def _node_client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True)


def _ping(port: int) -> bool:
    with _node_client(port) as client:
        return bool(client.ping())


def _joined(port: int, nodes: int) -> bool:
    with _node_client(port) as client:
        info = client.cluster("INFO")
    if isinstance(info, str):  # older redis-py answers the raw text
        info = dict(line.split(":", 1) for line in info.split() if ":" in line)
    return (
        info.get("cluster_state") == "ok"
        and int(info.get("cluster_known_nodes", 0)) == nodes
        and int(info.get("cluster_slots_ok", 0)) == 16384
    )


def _wait(probe: Callable[[], bool], what: str, cluster: LocalCluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if probe():
                return
        except redis.RedisError:
            pass
        assert time.monotonic() < deadline, f"no {what} after {START_TIMEOUT_S:.0f} s\n{cluster.logs()}"
        time.sleep(0.05)
