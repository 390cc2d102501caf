"""The local Redis server (append-only file under run_dir/redis)."""

from __future__ import annotations

import shutil

from infra.settings import Settings
from infra.stack import processes
from infra.stack.service import Port, Service, StackError, render


def ports(settings: Settings) -> list[Port]:
    return [Port(settings.redis.port, "ESPORTS_REDIS__PORT", "Redis")]


def prepare(settings: Settings) -> None:
    """Render redis.conf from settings."""
    if shutil.which("redis-server") is None:
        raise StackError("redis-server not found: run infra/local/install-system.sh (redis-server)")
    data = settings.stack.run_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    render(
        "redis/redis.conf.tmpl",
        data / "redis.conf",
        port=settings.redis.port,
        data_dir=data,
        maxmemory=settings.redis.maxmemory,
    )


def start(settings: Settings) -> None:
    data = settings.stack.run_dir / "redis"
    processes.spawn(
        settings,
        "redis",
        [shutil.which("redis-server") or "redis-server", str(data / "redis.conf")],
        cwd=data,
    )


async def probe(settings: Settings) -> str:
    """PING and INFO; returns the server version."""
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=settings.redis.port, socket_timeout=3)
    try:
        await client.ping()
        info = await client.info("server")
    finally:
        await client.aclose()
    return f"Redis {info['redis_version']}"


def stop(settings: Settings, pid: int) -> None:
    processes.terminate(pid, "redis")


SERVICE = Service(
    name="redis", ports=ports, prepare=prepare, start=start, ready=probe, probe=probe, stop=stop
)
