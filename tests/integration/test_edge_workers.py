"""An edge node of two worker processes on one port (``esports edge --workers 2``), against the real
Kafka: connections land on both workers, each worker's own reader delivers chat to its viewers, one
scrape sees both, SIGTERM to the node drains and stops both, and a worker that dies is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from events.codec import EventCodec
from infra.kafka import EventPublisher
from infra.settings import REPO_ROOT, Settings
from tests.integration.test_edge_support import (
    Client,
    accepted,
    edge_settings,
    http_json,
    node_environment,
)
from tests.ports import free_port

pytestmark = pytest.mark.integration

VIEWERS = 40  # both workers get some: all 40 on one worker has odds of 2 in 2**40


class WorkersNode:
    """``esports edge --port P --workers N`` as a subprocess, with the test's settings."""

    def __init__(self, settings: Settings, port: int, workers: int, log_path: Path, **env_more: str) -> None:
        env = node_environment(settings, **env_more)
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        argv = [sys.executable, "-m", "infra.cli", "edge", "--port", str(port), "--workers", str(workers)]
        self.process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def health(self) -> dict[str, Any]:
        return dict(http_json(f"http://127.0.0.1:{self.port}/health"))

    async def wait_until(self, healthy: Any, timeout_s: float = 45.0) -> dict[str, Any]:
        """The node's /health once ``healthy(report)`` holds (any error answer counts as not yet)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        report: dict[str, Any] = {}
        while loop.time() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-2000:]
            try:
                report = await asyncio.to_thread(self.health)
                if healthy(report):
                    return report
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"node never got there: {report}\n{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(15)
        self._log.close()


def _all_ok(report: dict[str, Any]) -> bool:
    return report.get("status") == "ok" and report.get("workers_answering") == report.get("workers")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_two_workers_share_the_port_deliver_chat_and_stop_on_sigterm(
    namespace: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    settings = edge_settings(namespace)
    stream = f"s-{uuid.uuid4().hex[:8]}"
    node = WorkersNode(settings, free_port(), 2, tmp_path / "edge.log")
    try:
        health = await node.wait_until(_all_ok)
        pids = [health["per_worker"][i]["pid"] for i in ("0", "1")]
        assert len(set(pids)) == 2 and node.process.pid not in pids
        assert {health["per_worker"][i]["node"] for i in ("0", "1")} == {
            f"{health['node']}/{i}" for i in "01"
        }

        clients = [await Client.open(node.port) for _ in range(VIEWERS)]
        await asyncio.gather(*(c.subscribe(stream) for c in clients))
        health = await asyncio.to_thread(node.health)
        per_worker = [health["per_worker"][i]["connections"] for i in ("0", "1")]
        assert sum(per_worker) == health["connections"] == VIEWERS and min(per_worker) > 0, per_worker

        metrics = await asyncio.to_thread(_text, f"http://127.0.0.1:{node.port}/metrics")
        for worker, count in zip("01", per_worker, strict=True):
            assert (
                f'esports_edge_connections{{node="{health["node"]}",worker="{worker}"}} {count}.0' in metrics
            )
        assert metrics.count("# TYPE esports_edge_connections gauge") == 1
        assert f'esports_edge_workers_answering{{node="{health["node"]}"}} 2.0' in metrics

        async with EventPublisher(settings.kafka, codec, producer="tests") as publisher:
            await publisher.publish(accepted(stream, "hello from kafka", "m-1"))
        received = await asyncio.gather(*(c.wait_for(lambda m: m.get("id") == "m-1") for c in clients))
        assert {m["text"] for m in received} == {"hello from kafka"}

        node.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(c.task for c in clients if c.task is not None)), 20)
        assert all([m["code"] for m in c.of("notice")] == ["reconnect"] for c in clients)
        assert {c.ws.close_code for c in clients} == {1012}
        assert await asyncio.to_thread(node.process.wait, 30) == 0
        assert not [pid for pid in pids if _alive(pid)]
    finally:
        node.stop()


async def test_a_worker_that_dies_is_started_again(
    namespace: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    settings = edge_settings(namespace)
    node = WorkersNode(settings, free_port(), 2, tmp_path / "edge.log")
    try:
        health = await node.wait_until(_all_ok)
        survivor, victim = health["per_worker"]["0"]["pid"], health["per_worker"]["1"]["pid"]
        os.kill(victim, signal.SIGKILL)
        health = await node.wait_until(lambda r: _all_ok(r) and r["per_worker"]["1"]["pid"] != victim)
        assert health["per_worker"]["0"]["pid"] == survivor
        stream = f"s-{uuid.uuid4().hex[:8]}"
        clients = [await Client.open(node.port) for _ in range(VIEWERS)]
        await asyncio.gather(*(c.subscribe(stream) for c in clients))
        async with EventPublisher(settings.kafka, codec, producer="tests") as publisher:
            await publisher.publish(accepted(stream, "after the restart", "m-2"))
        await asyncio.gather(*(c.wait_for(lambda m: m.get("id") == "m-2") for c in clients))
        assert "starting it again" in node.log_path.read_text()
        await asyncio.gather(*(c.close() for c in clients))
    finally:
        node.stop()


async def test_a_worker_that_cannot_start_brings_the_node_down(namespace: Settings, tmp_path: Path) -> None:
    # The supervisor does not build a node; each worker does, and fails on this setting at once.
    bogus = {"ESPORTS_EDGE__FANOUT": "bogus"}
    node = WorkersNode(edge_settings(namespace), free_port(), 2, tmp_path / "edge.log", **bogus)
    try:
        assert await asyncio.to_thread(node.process.wait, 60) == 1
        log = node.log_path.read_text()
        assert "before the node was ready" in log and "edge.fanout must be one of" in log, log[-2000:]
    finally:
        node.stop()


def _text(url: str) -> str:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return str(response.read().decode())
