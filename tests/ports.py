"""Free loopback ports for the services a test starts.

Ports are drawn below the kernel's ephemeral range, where outgoing connections take their local
ports: a port drawn from the kernel's own pick (bind to port 0) can be taken by any client's
connection between the probe and the service's bind, and was, in CI (an ingest node's RTMP port, its
origin and cache tier drawn the same port twice). Each xdist worker draws from its own slice of that
range, so two test processes never hand out the same port, and a port handed out here is never handed
out again by this process. A port is free when both a TCP and a UDP socket can bind it (SRT and WHIP
listen on UDP).
"""

from __future__ import annotations

import os
import random
import socket
from functools import cache
from pathlib import Path

__all__ = ["free_port"]

LOWEST = 10_000  # the project's default ports are all below
_handed_out: set[int] = set()


@cache
def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _slice() -> range:
    """This process's share of the ports below the ephemeral range (one per xdist worker)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker) if worker.isdigit() else 0
    size = (_ephemeral_start() - LOWEST) // max(workers, 1)
    return range(LOWEST + index * size, LOWEST + (index + 1) * size)


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A loopback port (TCP and UDP) that was free a moment ago and that no earlier call returned."""
    ports = _slice()
    for _ in range(1000):
        if len(ports) < 100:  # an unusual ephemeral range: the kernel's pick
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
        else:
            port = random.randrange(ports.start, ports.stop)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")
