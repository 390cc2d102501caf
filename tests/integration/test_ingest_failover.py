"""Two ingest nodes on one machine; the first dies without a word, the publisher goes on with the second.

Node A is `python -m ingest_workers` configured by ESPORTS_* variables only (its own RTMP, SRT,
origin, cache-tier and hook ports and HLS folder, the run folder shared with node B), reaching the
API over HTTP; node B runs in the test (``open_ingest_env``); the lifecycle worker runs with
ESPORTS_INGEST__SILENCE_END_S=8. An FFmpeg publisher pushes to A: the stream goes live from A's
session. A's whole process tree is killed (SIGKILL: no disconnect, no last report), the publisher
pushes again to B: the API hands B the same live stream, B's connect takes it over, and it stays
live from B well past a silence after A's last report, with no second go-live and no end. When the
publisher stops, B's disconnect ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from events.ingest import IngestConnected, IngestDisconnected, IngestHealthReported
from events.streams import StreamEnded, StreamEndReason, StreamTransitionRejected, StreamWentLive
from infra.settings import REPO_ROOT, Settings
from ingest_workers.control import node_name
from tests.integration.test_api_support import eventually, stream_state
from tests.integration.test_ingest_support import (
    LADDER,
    IngestEnv,
    Pusher,
    TopicLog,
    fetch,
    open_ingest_env,
    push_command,
    reading,
    wait_playable,
)
from tests.ports import free_port
from web.app import create_app

pytestmark = pytest.mark.integration

SILENCE_S = 8.0  # the worker's ESPORTS_INGEST__SILENCE_END_S: the publisher reconnects well within it
HEALTH_INTERVAL_S = 1.0
DECISIONS = (StreamWentLive, StreamEnded, StreamTransitionRejected)  # what streams.lifecycle carries


@pytest.fixture
async def env(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    monkeypatch.setenv("ESPORTS_INGEST__SILENCE_END_S", str(SILENCE_S))  # the lifecycle worker's
    async with open_ingest_env(
        settings, tmp_path, lifecycle=True, health_interval_s=HEALTH_INTERVAL_S
    ) as env:
        yield env


@contextlib.asynccontextmanager
async def serving_api(env: IngestEnv) -> AsyncIterator[str]:
    """The stack's API over real HTTP (node A is another process), in this event loop."""
    port = free_port()
    app = create_app(env.stack.settings, env.stack.services)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


class NodeProcess:
    """`python -m ingest_workers` with its settings in ESPORTS_* variables only."""

    def __init__(self, env: IngestEnv, api_url: str) -> None:
        stack = env.stack.settings
        token = stack.auth.internal_token
        assert token is not None
        self.rtmp_port, self.cdn_port, self.hook_port = free_port(), free_port(), free_port()
        self.log_path = env.tmp / "node-a.log"
        self.variables = {
            "ESPORTS_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "ESPORTS_KAFKA__TOPIC_PREFIX": stack.kafka.topic_prefix,
            "ESPORTS_AUTH__INTERNAL_TOKEN": token.get_secret_value(),
            "ESPORTS_STACK__RUN_DIR": str(env.node.settings.stack.run_dir),  # node B's too
            "ESPORTS_INGEST__RTMP_PORT": str(self.rtmp_port),
            "ESPORTS_INGEST__SRT_PORT": str(free_port()),
            "ESPORTS_INGEST__ORIGIN_PORT": str(free_port()),
            "ESPORTS_INGEST__CDN_PORT": str(self.cdn_port),
            "ESPORTS_INGEST__HOOK_PORT": str(self.hook_port),
            "ESPORTS_INGEST__WHIP_PORT": str(free_port()),
            "ESPORTS_INGEST__LL_ORIGIN_PORT": str(free_port()),
            "ESPORTS_INGEST__HLS_DIR": str(env.tmp / "hls-a"),
            "ESPORTS_INGEST__PUBLIC_HLS_URL": f"http://127.0.0.1:{self.cdn_port}/hls",
            "ESPORTS_INGEST__API_URL": api_url,
            "ESPORTS_INGEST__SEGMENT_S": "1.0",
            "ESPORTS_INGEST__LADDER": json.dumps(LADDER),
            "ESPORTS_INGEST__X264_PRESET": "ultrafast",
            "ESPORTS_INGEST__HEALTH_INTERVAL_S": str(HEALTH_INTERVAL_S),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("ESPORTS_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ingest_workers"],
                env={**inherited, **self.variables},
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        async def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log_text()
            try:
                hook = await fetch(f"http://127.0.0.1:{self.hook_port}/health")
                cdn = await fetch(f"http://127.0.0.1:{self.cdn_port}/health")
            except httpx.HTTPError:
                return False
            return hook.status_code == cdn.status_code == 200

        await eventually(ready, timeout_s=timeout_s, interval_s=0.2)

    def kill_tree(self) -> list[int]:
        """SIGKILL the node and everything it started (its nginx run in sessions of their own)."""
        assert self.process is not None
        tree = _descendants(self.process.pid)
        for pid in tree:  # the node first: nothing of it speaks after this
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)
        return tree

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill_tree()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, parents first (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        tree.append(pid)
        todo.extend(children[pid])
    return tree


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def _connected_on(log: TopicLog, node: str) -> IngestConnected:
    async def probe() -> IngestConnected | None:
        return next((e for e in log.events if isinstance(e, IngestConnected) and e.node == node), None)

    return await eventually(probe, timeout_s=20, interval_s=0.1)


async def _reports(log: TopicLog, stream_id: str, session: str, count: int) -> list[Any]:
    async def probe() -> list[Any]:
        found = [e for e in log.of(stream_id, IngestHealthReported) if e.session_id == session]
        return found if len(found) >= count else []

    return list(await eventually(probe, timeout_s=20, interval_s=0.1))


async def test_a_publisher_whose_node_died_goes_on_live_from_the_other_node(env: IngestEnv) -> None:
    channel_id, key = await env.stream_key()
    async with serving_api(env) as api_url, reading(env.stack.settings, "ingest", "streams.lifecycle") as log:
        node_a = NodeProcess(env, api_url)
        node_a.start()
        pushers: list[Pusher] = []
        try:
            await node_a.wait_ready()
            a_name = node_name(env.ingest.model_copy(update={"rtmp_port": node_a.rtmp_port}))
            b_name = node_name(env.ingest)
            pushers.append(
                Pusher(push_command(f"rtmp://127.0.0.1:{node_a.rtmp_port}/live/{key}", 60), env.tmp / "a.log")
            )
            a_connect = await _connected_on(log, a_name)
            stream_id = a_connect.stream_id
            went = await log.first(stream_id, StreamWentLive, timeout_s=20)
            assert (went.channel_id, went.ingest_session_id) == (channel_id, a_connect.session_id)
            await _reports(log, stream_id, a_connect.session_id, 2)  # A's transcoder is running

            killed = node_a.kill_tree()  # no disconnect, no last report: as if the machine died
            killed_at = time.monotonic()
            pushers[0].stop()
            pushers.append(Pusher(push_command(env.rtmp_url(key), 60), env.tmp / "b.log"))
            assert await env.stream_for(channel_id, timeout_s=15) == stream_id  # the same live stream
            [b_connect] = env.sink.of(IngestConnected, stream_id)
            assert b_connect.node == b_name != a_name
            await wait_playable(env, stream_id, segments=2, timeout_s=15)
            assert not any(_alive(pid) for pid in killed), "node A's processes outlived the kill"

            # well past a silence (and the sweep's slack) after A's last report: live from B all along
            await asyncio.sleep(max(0.0, killed_at + SILENCE_S + 2.0 + 3.0 - time.monotonic()))
            assert (await stream_state(env.stack, stream_id, "live", timeout_s=1))["state"] == "live"
            await _reports(log, stream_id, b_connect.session_id, 3)
            assert [type(e) for e in log.of(stream_id, *DECISIONS)] == [StreamWentLive]
            listing = await env.stack.query("/api/v1/streams/live?limit=100")
            assert stream_id in {s["stream_id"] for s in listing["items"]}
        finally:
            for pusher in pushers:
                pusher.stop()
            node_a.stop()

        # B's publisher leaves: B's disconnect (its grace period over) ends the stream, once
        end = await log.first(stream_id, StreamEnded, timeout_s=20)
        [b_left] = env.sink.of(IngestDisconnected, stream_id)
        assert end.reason is StreamEndReason.PUBLISHER_STOPPED and end.causation_id == str(b_left.event_id)
        assert b_left.session_id == b_connect.session_id
        assert not [e for e in log.of(stream_id, IngestDisconnected) if e.session_id == a_connect.session_id]
        assert [type(e) for e in log.of(stream_id, *DECISIONS)] == [
            StreamWentLive,
            StreamEnded,
        ]

    # each node had its own nginx files in the shared run folder
    nginx = env.node.settings.stack.run_dir / "nginx"
    assert {p.name for p in nginx.iterdir()} == {
        f"ingest-{node_a.rtmp_port}",
        f"ingest-{env.ingest.rtmp_port}",
    }
