"""The projector service's /health and /metrics endpoints, with fake dependencies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from infra.kafka import ConsumedEvent, DeadLetters
from infra.metrics import render
from projections.ops import Monitored, OpsServer, ProjectorMetrics
from projections.projector import Partition, ProjectorStats


class FakeStore:
    def __init__(self, name: str) -> None:
        self.name = name
        self.topics = ("users",)
        self.stats = ProjectorStats()

    async def start_positions(self, partitions: list[Partition]) -> dict[Partition, int]:
        return {}

    async def store(self, batch: Sequence[ConsumedEvent]) -> None:
        return None


def monitored(metrics: ProjectorMetrics, name: str) -> Monitored:
    return metrics.monitor(FakeStore(name), DeadLetters(publisher=None, topic="deadletter"))  # type: ignore[arg-type]


async def test_metrics_are_prometheus_text() -> None:
    metrics = ProjectorMetrics()
    catalog = monitored(metrics, "pg.catalog")
    monitored(metrics, "redis.live")
    catalog.store.stats.record(7, 2, {("users", 1): 12})
    catalog.dead_letters.count = 1
    await catalog.store.store([])  # timed into the histogram
    body, content_type = render(metrics.registry)
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert "# TYPE esports_projection_events_applied_total counter" in text
    assert 'esports_projection_events_applied_total{projector="pg.catalog"} 7.0' in text
    assert 'esports_projection_duplicates_skipped_total{projector="pg.catalog"} 2.0' in text
    assert 'esports_projection_dead_letters_total{projector="pg.catalog"} 1.0' in text
    assert 'esports_projection_next_offset{partition="1",projector="pg.catalog",topic="users"} 12.0' in text
    assert 'esports_projection_events_applied_total{projector="redis.live"} 0.0' in text
    assert 'esports_projection_store_seconds_bucket{le="+Inf",projector="pg.catalog"} 1.0' in text
    assert 'esports_projection_store_seconds_bucket{le="+Inf",projector="redis.live"} 0.0' in text
    assert text.endswith("\n")


async def get(port: int, request: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    response = (await reader.read()).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


async def serving(checks: dict[str, Any]) -> OpsServer:
    registry = CollectorRegistry()
    Counter("m", "A counter.", registry=registry).inc()
    server = OpsServer(checks, registry, host="127.0.0.1", port=0, check_timeout_s=0.2)
    await server.start()
    return server


async def test_health_is_200_only_when_every_dependency_answers() -> None:
    async def ok() -> None:
        return None

    async def down() -> None:
        raise ConnectionRefusedError("refused")

    async def hangs() -> None:
        await asyncio.sleep(10)

    server = await serving({"kafka": ok, "postgresql": ok, "redis": ok})
    status, body = await get(server.port, "GET /health HTTP/1.1\r\n\r\n")
    assert (status, json.loads(body)["status"]) == (200, "ok")
    await server.close()

    server = await serving({"kafka": ok, "postgresql": down, "redis": hangs})
    status, body = await get(server.port, "GET /health HTTP/1.1\r\n\r\n")
    health = json.loads(body)
    assert status == 503
    assert health["dependencies"]["kafka"] == {"ok": True}
    assert health["dependencies"]["postgresql"] == {"ok": False, "error": "refused"}
    assert health["dependencies"]["redis"]["ok"] is False
    await server.close()


async def test_routes() -> None:
    server = await serving({})
    status, body = await get(server.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and "m_total 1.0\n" in body
    assert (await get(server.port, "GET /other HTTP/1.1\r\n\r\n"))[0] == 404
    assert (await get(server.port, "POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
    await server.close()
