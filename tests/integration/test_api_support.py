"""The API under test against the real stack: its own topics, PostgreSQL schemas and Redis prefix.

``api_stack`` (one per test module) builds :class:`ApiStack`: topics under a unique prefix, the
read model in schema ``rm_<id>`` and the command side in ``cmd_<id>``, Redis keys under ``<id>:``,
the projector service running in-process on them, the lifecycle agent (Faust) as a subprocess, and
an httpx client talking to the app over ASGI. Every log record is kept, so tests can scan them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from psycopg import sql

from events.codec import EventCodec
from events.topics import CATALOGUE
from infra.kafka import EventPublisher, TopicAdmin, TopicNames
from infra.settings import REPO_ROOT, Settings
from producers.auth.passwords import Passwords
from producers.services import Namespace, Services
from projections import service as projector_service
from schemas import SCHEMAS_DIR
from tests.ports import free_port
from web.app import create_app

PASSWORD = "correct horse battery staple"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # argon2id, cheaper for tests


RUN_API = (
    "import sys; from infra.settings import Settings; from web import server; "
    "sys.exit(server.run(Settings()))"
)


@contextlib.contextmanager
def running_api(port: int, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`web.server.run` as its own process on ``port``, yielded once /health answers."""
    environment = {**os.environ, "ESPORTS_API__PORT": str(port), **env}
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_API], env=environment, cwd=REPO_ROOT, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


class LogCapture(logging.Handler):
    """Keeps every formatted log line (with tracebacks) of the process."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _worker_command() -> list[str]:
    """`esports processors` when the CLI has it, else the same call spelled out."""
    from infra import cli

    if any("processors" in (getattr(a, "choices", None) or {}) for a in cli.build_parser()._actions):
        return [sys.executable, "-m", "infra.cli", "processors"]
    code = (
        "import sys; from infra import logs; from infra.settings import Settings; "
        "from stream_processors import worker; logs.configure(); sys.exit(worker.run(Settings()))"
    )
    return [sys.executable, "-c", code]


class LifecycleWorker:
    """The Faust lifecycle agent as a subprocess (as `esports processors` runs it)."""

    def __init__(self, settings: Settings, data_dir: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.env = {
            **os.environ,
            "ESPORTS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
            "ESPORTS_PROCESSORS__WEB_PORT": str(self.port),
            "ESPORTS_PROCESSORS__DATA_DIR": str(data_dir),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                _worker_command(),
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the worker's /health says it has partitions assigned."""

        def ready() -> bool:
            try:
                url = f"http://127.0.0.1:{self.port}/health"
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(json.loads(response.read())["kafka"]["assigned_partitions"] > 0)
            except (OSError, ValueError, KeyError):
                return False

        restarts = 2

        async def probe() -> bool:
            nonlocal restarts
            assert self.process is not None
            if self.process.poll() is not None:
                # The worker checks the changelog topic right after creating it; on a fresh
                # namespace its metadata can lag (reported to the lifecycle agent's owner): retry.
                assert restarts > 0, self.log_text()[-3000:]
                restarts -= 1
                self.start()
            return await asyncio.to_thread(ready)

        await eventually(probe, timeout_s=timeout_s, interval_s=0.3)

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class User:
    """A registered, logged-in user."""

    user_id: str
    username: str
    access_token: str
    refresh_token: str
    positions: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class ApiStack:
    """Everything a test of the API needs (see the module docstring)."""

    settings: Settings
    namespace: Namespace
    services: Services
    client: httpx.AsyncClient
    publisher: EventPublisher
    logs: LogCapture
    worker: LifecycleWorker

    async def register(self, username: str | None = None, password: str = PASSWORD) -> User:
        username = username or f"u{uuid.uuid4().hex[:12]}"
        registered = await self.client.post(
            "/api/v1/auth/register", json={"username": username, "password": password}
        )
        assert registered.status_code == 201, registered.text
        tokens = await self.login(username, password)
        return User(
            registered.json()["user_id"],
            username,
            tokens["access_token"],
            tokens["refresh_token"],
            [registered.json()["position"]],
        )

    async def login(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def relogin(self, user: User) -> User:
        tokens = await self.login(user.username)
        user.access_token, user.refresh_token = tokens["access_token"], tokens["refresh_token"]
        return user

    async def command(
        self, method: str, url: str, user: User | None, json: Any = None, *, expect: int = 0
    ) -> dict[str, Any]:
        """Run a command; asserts the status (2xx by default) and returns the body."""
        response = await self.client.request(method, url, json=json, headers=user.auth if user else {})
        ok = response.status_code == expect if expect else 200 <= response.status_code < 300
        assert ok, f"{method} {url} -> {response.status_code} {response.text}"
        return dict(response.json()) if response.content else {}

    async def query(
        self, url: str, user: User | None = None, *, after: list[str] | tuple[str, ...] = ()
    ) -> Any:
        """GET waiting for the read model to include ``after`` positions; asserts 200 and fresh data."""
        headers = dict(user.auth) if user else {}
        if after:
            headers["X-Min-Position"] = ",".join(after)
        response = await self.client.get(url, headers=headers)
        assert response.status_code == 200, f"GET {url} -> {response.status_code} {response.text}"
        assert "x-read-model-lag" not in response.headers, f"GET {url}: read model stale"
        return response.json()

    async def make_admin(self, user: User) -> User:
        """Promote directly in the command side's table (there is no admin before the first admin)."""
        await self.services.accounts.set_role(user.user_id, "admin")
        return user

    async def all_tables_text(self) -> str:
        """Every row of every table in the test's schemas, as text (for secret scans)."""
        chunks: list[str] = []
        async with self.services.pool.connection() as conn:
            for schema in {self.namespace.read_schema, self.namespace.command_schema}:
                cur = await conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
                )
                for (table,) in await cur.fetchall():
                    rows = await conn.execute(
                        sql.SQL("SELECT t::text FROM {}.{} t").format(
                            sql.Identifier(schema), sql.Identifier(table)
                        )
                    )
                    chunks.extend(r[0] for r in await rows.fetchall())
        return "\n".join(chunks)


@contextlib.asynccontextmanager
async def open_api_stack(settings: Settings, tmp: Path, *, lifecycle: bool = True) -> AsyncIterator[ApiStack]:
    """Build an isolated :class:`ApiStack` and tear it down (topics, schemas, keys) afterwards."""
    tag = uuid.uuid4().hex[:10]
    scoped = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"topic_prefix": f"test-{tag}.", "default_partitions": 3}
            ),
            "projections": settings.projections.model_copy(update={"web_port": free_port()}),
        }
    )
    namespace = Namespace(read_schema=f"rm_{tag}", command_schema=f"cmd_{tag}", redis_prefix=f"test-{tag}:")
    async with TopicAdmin(scoped.kafka) as admin:
        await admin.ensure(CATALOGUE)
    capture = LogCapture()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    worker = LifecycleWorker(scoped, tmp / f"faust-{tag}", tmp / f"worker-{tag}.log")
    stop = asyncio.Event()
    projector = asyncio.create_task(
        projector_service.serve(
            scoped, stop, schema=namespace.read_schema, redis_prefix=namespace.redis_prefix
        )
    )
    try:
        if lifecycle:
            worker.start()
            await worker.wait_ready()
        async with (
            Services.open(scoped, namespace, passwords=Passwords(FAST_HASHER)) as services,
            EventPublisher(scoped.kafka, EventCodec.load(SCHEMAS_DIR), producer="tests.api") as publisher,
        ):
            app = create_app(scoped, services)
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api.test", timeout=30
            ) as client:
                yield ApiStack(scoped, namespace, services, client, publisher, capture, worker)
    finally:
        stop.set()
        await worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(projector, 30)
        root.removeHandler(capture)
        root.setLevel(previous_level)
        await _drop(scoped, namespace)


async def _drop(settings: Settings, namespace: Namespace) -> None:
    import psycopg
    import redis.asyncio as aioredis

    async with await psycopg.AsyncConnection.connect(settings.postgres.dsn, autocommit=True) as conn:
        for schema in (namespace.read_schema, namespace.command_schema):
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    client = aioredis.Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db)
    try:
        keys = [k async for k in client.scan_iter(match=f"{namespace.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    names = TopicNames(settings.kafka.topic_prefix)
    async with TopicAdmin(settings.kafka) as admin:
        await admin.delete([names.physical(t.name) for t in CATALOGUE])


@pytest.fixture(scope="module")
async def api_stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiStack]:
    async with open_api_stack(settings, tmp_path_factory.mktemp("api")) as stack:
        yield stack


async def eventually(probe: Any, *, timeout_s: float = 45.0, interval_s: float = 0.1) -> Any:
    """Await ``probe()`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last: {result!r})")
        await asyncio.sleep(interval_s)


async def stream_state(
    stack: ApiStack, stream_id: str, state: str, *, timeout_s: float = 45.0
) -> dict[str, Any]:
    """Wait until the read model shows the stream in ``state`` (lifecycle decisions are asynchronous)."""

    async def probe() -> dict[str, Any] | None:
        response = await stack.client.get(f"/api/v1/streams/{stream_id}")
        body = response.json() if response.status_code == 200 else None
        return body if body and body["state"] == state else None

    try:
        return dict(await eventually(probe, timeout_s=timeout_s))
    except AssertionError:
        raise AssertionError(
            f"stream never {state}; worker log:\n{stack.worker.log_text()[-4000:]}"
        ) from None
