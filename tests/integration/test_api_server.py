"""``web.server.run``: uvicorn with 1 and 2 workers serves /health and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from infra.settings import REPO_ROOT, Settings
from tests.integration.test_api_support import RUN_API, running_api
from tests.ports import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workers", [1, 2])
def test_server_runs_and_stops_on_sigterm(settings: Settings, workers: int) -> None:
    port = free_port()
    with running_api(port, ESPORTS_API__WORKERS=str(workers)) as process:
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert health.status_code == 200, health.text
        assert set(health.json()["checks"]) == {"kafka", "postgres", "redis"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_a_taken_port_is_named(settings: Settings) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "ESPORTS_API__PORT": str(taken.getsockname()[1])}
        result = subprocess.run(
            [sys.executable, "-c", RUN_API], env=env, cwd=REPO_ROOT, capture_output=True, timeout=60
        )
    assert result.returncode == 1
    assert b"ESPORTS_API__PORT" in result.stderr
