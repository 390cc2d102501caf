"""`esports up`, `esports down`, `esports up` (what `make up`/`make down` run): the demo is live again.

The whole platform (Kafka, PostgreSQL, Redis and every app, the demo push included) runs from a run
folder of its own on free ports, set through ESPORTS_* variables like any deployment would, so the
shared stack the other tests use is never touched. After the second `up` the demo channel must have a
live stream again whose playlists grow within 30 s (before the fix its transcoder refused to overwrite
the still the first run left and the push fed a stream that had ended).

Slow by nature (two platform starts): about two minutes on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from infra.settings import REPO_ROOT, Settings
from tests.ports import free_port

pytestmark = pytest.mark.integration

PLAYS_WITHIN_S = 30.0  # the acceptance: the demo plays within 30 s of the second `make up`
UP_TIMEOUT_S = 300.0


def _environment(run_dir: Path) -> dict[str, str]:
    """ESPORTS_* settings that move every port and folder of the platform away from the shared stack."""
    port = {name: free_port() for name in ("kafka", "controller", "pg", "redis", "api", "proc", "proj")}
    port |= {
        name: free_port() for name in ("edge", "edge2", "rtmp", "srt", "origin", "cdn", "hook", "whip", "ll")
    }
    api = f"http://127.0.0.1:{port['api']}"
    moved = {
        "STACK__RUN_DIR": str(run_dir),
        "KAFKA__PORT": port["kafka"],
        "KAFKA__CONTROLLER_PORT": port["controller"],
        "KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port['kafka']}",
        "POSTGRES__PORT": port["pg"],
        "REDIS__PORT": port["redis"],
        "API__PORT": port["api"],
        "API__PUBLIC_URL": api,
        "PROCESSORS__WEB_PORT": port["proc"],
        "PROCESSORS__DATA_DIR": str(run_dir / "faust"),
        "PROJECTIONS__WEB_PORT": port["proj"],
        "EDGE__PORT": port["edge"],
        "EDGE__SECOND_PORT": port["edge2"],
        "INGEST__RTMP_PORT": port["rtmp"],
        "INGEST__SRT_PORT": port["srt"],
        "INGEST__ORIGIN_PORT": port["origin"],
        "INGEST__CDN_PORT": port["cdn"],
        "INGEST__HOOK_PORT": port["hook"],
        "INGEST__WHIP_PORT": port["whip"],
        "INGEST__LL_ORIGIN_PORT": port["ll"],
        "INGEST__HLS_DIR": str(run_dir / "hls"),
        "INGEST__PUBLIC_HLS_URL": f"http://127.0.0.1:{port['cdn']}/hls",
        "INGEST__API_URL": api,
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ESPORTS_")}
    return {**inherited, **{f"ESPORTS_{k}": str(v) for k, v in moved.items()}}


def _esports(env: dict[str, str], command: str) -> float:
    """Run `esports COMMAND` as `make` does; returns how long it took."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S,
    )
    assert done.returncode == 0, f"esports {command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return time.monotonic() - started


@pytest.fixture
def platform(settings: Settings) -> Iterator[dict[str, str]]:
    """The environment of a private platform (stopped at the end, whatever happened)."""
    # Short: PostgreSQL's socket path must stay under 100 characters.
    run_dir = Path(tempfile.mkdtemp(prefix="esr-", dir="/tmp"))
    run_dir.chmod(0o711)  # as root, PostgreSQL runs as 'postgres', who must be able to enter it
    libs = settings.stack.run_dir / "kafka" / f"libs-{settings.kafka.version}"
    assert (libs / ".complete").is_file(), "the Kafka jars: `make install` (or `esports infra up`)"
    (run_dir / "kafka").mkdir()
    (run_dir / "kafka" / libs.name).symlink_to(libs)  # resolved once, not downloaded again
    env = _environment(run_dir)
    try:
        yield env
    finally:
        subprocess.run([sys.executable, "-m", "infra.cli", "down"], cwd=REPO_ROOT, env=env, timeout=180)
        shutil.rmtree(run_dir, ignore_errors=True)


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5, trust_env=False)


def _demo_playing(env: dict[str, str], since: float) -> tuple[str, int] | None:
    """(stream id, segments) when the demo channel has a live stream whose playlist lists a segment
    that started after `since` (wall clock), else None."""
    api, hls = env["ESPORTS_API__PUBLIC_URL"], env["ESPORTS_INGEST__PUBLIC_HLS_URL"]
    try:
        channel = _get(f"{api}/api/v1/channels/demo").json()
        live = _get(f"{api}/api/v1/streams/live?limit=100").json()["items"]
        stream = next((s for s in live if s["channel_id"] == channel["channel_id"]), None)
        if stream is None:
            return None
        master = m3u8.loads(_get(f"{hls}/{stream['stream_id']}/master.m3u8").text)
        media = m3u8.loads(_get(f"{hls}/{stream['stream_id']}/{master.playlists[-1].uri}").text)
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return None
    fresh = [s for s in media.segments if s.program_date_time and s.program_date_time.timestamp() > since]
    return (str(stream["stream_id"]), len(media.segments)) if fresh else None


def _wait_playing(env: dict[str, str], since: float, timeout_s: float) -> tuple[str, int]:
    deadline = time.monotonic() + timeout_s
    while (found := _demo_playing(env, since)) is None:
        assert time.monotonic() < deadline, f"the demo is not playing within {timeout_s:g}s"
        time.sleep(0.5)
    return found


def _log(env: dict[str, str], name: str) -> Any:
    path = Path(env["ESPORTS_STACK__RUN_DIR"]) / "logs" / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_up_down_up_brings_the_demo_back(platform: dict[str, str]) -> None:
    env = platform
    print(f"first up: {_esports(env, 'up'):.0f}s")
    first, _ = _wait_playing(env, time.time() - 5, timeout_s=PLAYS_WITHIN_S)
    time.sleep(12)  # older than one still interval: the trap of the issue

    print(f"down: {_esports(env, 'down'):.0f}s")
    again_at = time.time()
    print(f"second up: {_esports(env, 'up'):.0f}s")
    returned = time.monotonic()
    try:
        stream_id, segments = _wait_playing(env, again_at, timeout_s=PLAYS_WITHIN_S)
    except AssertionError:
        raise AssertionError(f"demo not back; ingest log ends with:\n{_log(env, 'ingest')[-3000:]}") from None
    print(f"the demo plays {time.monotonic() - returned:.1f}s after the second up returned")
    assert time.monotonic() - returned < PLAYS_WITHIN_S
    assert stream_id != first  # the platform stop ended the first broadcast with its VOD
    ended = _get(f"{env['ESPORTS_API__PUBLIC_URL']}/api/v1/streams/{first}").json()
    assert ended["state"] == "ended"
    assert "already exists" not in _log(env, "ingest")

    time.sleep(3)  # and it keeps going
    assert (later := _demo_playing(env, again_at)) is not None and later[1] > segments
