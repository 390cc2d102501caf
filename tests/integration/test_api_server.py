"""``producers.server.run``: uvicorn with 1 and 2 workers serves /health and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from infra.settings import REPO_ROOT, Settings
from tests.integration.test_api_support import free_port

pytestmark = pytest.mark.integration

RUN = (
    "import sys; from infra.settings import Settings; from producers import server; "
    "sys.exit(server.run(Settings()))"
)


@pytest.mark.parametrize("workers", [1, 2])
def test_server_runs_and_stops_on_sigterm(settings: Settings, workers: int) -> None:
    port = free_port()
    env = {**os.environ, "ESPORTS_API__PORT": str(port), "ESPORTS_API__WORKERS": str(workers)}
    process = subprocess.Popen([sys.executable, "-c", RUN], env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
        assert health.status_code == 200, health.text
        assert set(health.json()["checks"]) == {"kafka", "postgres", "redis"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_taken_port_is_named(settings: Settings) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "ESPORTS_API__PORT": str(taken.getsockname()[1])}
        result = subprocess.run(
            [sys.executable, "-c", RUN], env=env, cwd=REPO_ROOT, capture_output=True, timeout=60
        )
    assert result.returncode == 1
    assert b"ESPORTS_API__PORT" in result.stderr
