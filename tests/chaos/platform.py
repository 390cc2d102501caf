"""A private platform for fault injection: a three-broker Kafka, PostgreSQL, Redis and every tier twice.

Everything is configured the way a deployment is, by ESPORTS_* variables only: a run folder of its
own, free ports, ``ESPORTS_KAFKA__BROKERS=3`` (so topics get replication 3 and
``min.insync.replicas=2``). The infrastructure is started by ``esports infra up`` (the user's
command); the application tiers are started here as plain processes, two of each, so one can be
killed while the other carries on:

    api                      one process (its uvicorn workers are the API's scale-out, tested apart)
    processors-1/-2          ``esports processors``: every agent family, the same consumer groups
    projector-1/-2           ``esports projector``: the same groups, partitions shared, exactly once
    edge-1/-2                ``esports edge``: websocket nodes, each with its own port and node id

The shared stack of the other tests is never touched.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from infra.settings import REPO_ROOT, Settings
from tests.ports import free_port

BROKERS = 3
UP_TIMEOUT_S = 240.0


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base(offsets: Sequence[int], low: int = 20000, high: int = 29000) -> int:
    """A base port whose `base + offset` ports are all free now, below the ephemeral range (32768 up)
    so no outgoing connection takes one meanwhile (a cluster's nodes sit at fixed offsets)."""
    for _ in range(200):
        base = random.randrange(low, high, 2)
        if all(_bindable(base + offset) for offset in offsets):
            return base
    raise RuntimeError(f"no free ports at offsets {list(offsets)}")


def cluster_ports(brokers: int = BROKERS) -> tuple[int, int]:
    """A client and a controller base port whose +100·N siblings are all free (node N's ports)."""
    base = free_base([100 * n + k for n in range(brokers) for k in (0, 1)])
    return base, base + 1


def environment(run_dir: Path, extra: Mapping[str, object], brokers: int = BROKERS) -> dict[str, str]:
    """ESPORTS_* variables moving every port and folder of the infrastructure into `run_dir`."""
    client, controller = cluster_ports(brokers)
    moved: dict[str, object] = {
        "STACK__RUN_DIR": run_dir,
        "KAFKA__BROKERS": brokers,
        "KAFKA__PORT": client,
        "KAFKA__CONTROLLER_PORT": controller,
        "KAFKA__HEAP": "384m",
        # A broker killed -9 recovers every partition's log before it answers: on 2 cores shared with
        # the other test process that took over the default 60 s.
        "STACK__START_TIMEOUT_S": 180,
        "POSTGRES__PORT": free_port(),
        "REDIS__PORT": free_port(),
        "PROCESSORS__DATA_DIR": run_dir / "faust",
        "AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AUTH__INTERNAL_TOKEN": secrets.token_urlsafe(48),
        **extra,
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ESPORTS_")}
    return {**inherited, **{f"ESPORTS_{k}": str(v) for k, v in moved.items()}}


def settings_of(env: Mapping[str, str]) -> Settings:
    """The Settings a process started with `env` sees."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ESPORTS_")}
    try:
        for key in saved:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith("ESPORTS_")})
        return Settings()
    finally:
        for key in [k for k in os.environ if k.startswith("ESPORTS_")]:
            del os.environ[key]
        os.environ.update(saved)


def esports(env: Mapping[str, str], *command: str, timeout_s: float = UP_TIMEOUT_S) -> str:
    """Run `esports COMMAND...` in `env`; its stdout (fails with its output on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", *command],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"esports {' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


@contextmanager
def run_folder(settings: Settings) -> Iterator[Path]:
    """A short temporary run folder holding a link to the resolved Kafka jars (not downloaded again)."""
    # Short: PostgreSQL's socket path must stay under 100 characters.
    run_dir = Path(tempfile.mkdtemp(prefix="esc-", dir="/tmp"))
    run_dir.chmod(0o711)  # as root, PostgreSQL runs as 'postgres', who must be able to enter it
    libs = settings.stack.run_dir / "kafka" / f"libs-{settings.kafka.version}"
    if not (libs / ".complete").is_file():
        raise RuntimeError("the Kafka jars are not resolved: `make install` (or `esports infra up`)")
    (run_dir / "kafka").mkdir()
    (run_dir / "kafka" / libs.name).symlink_to(libs)
    try:
        yield run_dir
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@dataclass
class App:
    """One application process: how to start it again, and its /health port."""

    name: str
    command: tuple[str, ...]
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", *self.command],
                cwd=REPO_ROOT,
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def healthy(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                return int(response.status) == 200
        except OSError:
            return False

    def wait_healthy(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy within {timeout_s:g}s:\n{self.tail()}")
            time.sleep(0.25)

    def kill(self) -> None:
        """SIGKILL the process and its children (no goodbye: a crash)."""
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, size: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-size:]


@dataclass
class Platform:
    """The private platform: `env` for every process, the app processes by name."""

    env: dict[str, str]
    apps: dict[str, App] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return settings_of(self.env)

    @property
    def run_dir(self) -> Path:
        return Path(self.env["ESPORTS_STACK__RUN_DIR"])

    def app(self, name: str, command: tuple[str, ...], **overrides: object) -> App:
        """Declare (not start) an app process with its own ESPORTS_* overrides and /health port."""
        port_key = {
            "api": "API__PORT",
            "processors": "PROCESSORS__WEB_PORT",
            "projector": "PROJECTIONS__WEB_PORT",
            "edge": "EDGE__PORT",
        }[command[0]]
        port = int(str(overrides.pop(port_key, free_port())))
        env = {**self.env, f"ESPORTS_{port_key}": str(port)}
        env |= {f"ESPORTS_{k}": str(v) for k, v in overrides.items()}
        app = App(name, command, env, port, self.run_dir / "logs" / f"{name}.log")
        self.apps[name] = app
        return app

    def broker_pid(self, node: int) -> int | None:
        from infra.stack import processes

        return processes.our_pid(self.settings, f"kafka-{node}")

    def start_broker(self, node: int) -> None:
        esports(self.env, "infra", "up", f"kafka-{node}")

    def stop_all(self) -> None:
        for app in self.apps.values():
            app.stop()
        with suppress(Exception):
            esports(self.env, "infra", "down", timeout_s=180)


@contextmanager
def infrastructure(settings: Settings, services: tuple[str, ...] = (), **extra: object) -> Iterator[Platform]:
    """A private Kafka cluster (and `services`: postgres, redis) from `esports infra up`, stopped after."""
    with run_folder(settings) as run_dir:
        platform = Platform(environment(run_dir, extra))
        try:
            esports(platform.env, "infra", "up", "kafka", *services)
            yield platform
        finally:
            platform.stop_all()
