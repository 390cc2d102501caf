"""Free loopback ports for the services a test starts.

The kernel hands an ephemeral port back as soon as the probing socket closes, so two calls in a row
can return the same port (seen in CI: a node's origin and CDN listeners on one port). A port handed
out here is never handed out again by this process.
"""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago and that no earlier call returned."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
