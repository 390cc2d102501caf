"""Dependency checks behind ``/health``: PostgreSQL, Redis and Kafka, each with a short timeout."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from infra.kafka import wait_for_broker
from infra.redis import RedisClient
from infra.settings import KafkaSettings

CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Check:
    """One dependency's status."""

    ok: bool
    detail: str
    latency_ms: float


async def _timed(probe: asyncio.Future[object] | asyncio.Task[object] | object) -> Check:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)  # type: ignore[arg-type]
    except Exception as e:  # a health check reports every failure, whatever its type
        return Check(False, type(e).__name__, (time.perf_counter() - started) * 1000)
    return Check(True, "ok", (time.perf_counter() - started) * 1000)


async def _postgres(pool: AsyncConnectionPool) -> None:
    async with pool.connection(timeout=CHECK_TIMEOUT_S) as conn:
        await conn.execute("SELECT 1")


class HealthChecks:
    """Runs the checks concurrently; the Kafka probe (a fresh metadata request) is cached a few seconds."""

    def __init__(
        self, pool: AsyncConnectionPool, redis: RedisClient, kafka: KafkaSettings, *, kafka_ttl_s: float = 5.0
    ):
        self._pool = pool
        self._redis = redis
        self._kafka = kafka
        self._kafka_ttl_s = kafka_ttl_s
        self._kafka_cached: tuple[float, Check] | None = None

    async def run(self) -> dict[str, Check]:
        postgres, redis, kafka = await asyncio.gather(
            _timed(_postgres(self._pool)), _timed(self._redis.ping()), self._kafka_check()
        )
        return {"kafka": kafka, "postgres": postgres, "redis": redis}

    async def _kafka_check(self) -> Check:
        now = time.monotonic()
        if self._kafka_cached and now - self._kafka_cached[0] < self._kafka_ttl_s:
            return self._kafka_cached[1]
        check = await _timed(wait_for_broker(self._kafka, timeout_s=0))
        self._kafka_cached = (now, check)
        return check
