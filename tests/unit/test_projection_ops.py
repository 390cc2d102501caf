"""The projector service's /health and /metrics endpoints, with fake dependencies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from infra.kafka import ConsumedEvent, DeadLetters
from projections.ops import Monitored, OpsServer, render_metrics
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


def monitored(name: str) -> Monitored:
    return Monitored(FakeStore(name), DeadLetters(publisher=None, topic="deadletter"))  # type: ignore[arg-type]


def test_metrics_are_prometheus_text() -> None:
    catalog = monitored("pg.catalog")
    catalog.store.stats.record(7, 2, {("users", 1): 12})
    catalog.dead_letters.count = 1
    text = render_metrics([catalog, monitored("redis.live")])
    assert "# TYPE esports_projection_events_applied_total counter" in text
    assert 'esports_projection_events_applied_total{projector="pg.catalog"} 7' in text
    assert 'esports_projection_duplicates_skipped_total{projector="pg.catalog"} 2' in text
    assert 'esports_projection_dead_letters_total{projector="pg.catalog"} 1' in text
    assert 'esports_projection_next_offset{projector="pg.catalog",topic="users",partition="1"} 12' in text
    assert 'esports_projection_events_applied_total{projector="redis.live"} 0' in text
    assert text.endswith("\n")


async def get(port: int, request: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    response = (await reader.read()).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


async def serving(checks: dict[str, Any]) -> OpsServer:
    server = OpsServer(checks, lambda: "m 1\n", host="127.0.0.1", port=0, check_timeout_s=0.2)
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
    assert await get(server.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == (200, "m 1\n")
    assert (await get(server.port, "GET /other HTTP/1.1\r\n\r\n"))[0] == 404
    assert (await get(server.port, "POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
    await server.close()
