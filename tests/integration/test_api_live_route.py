"""``GET /api/v1/streams/live`` through its fast route (producers.routes.streams.LiveListingRoute)
answers exactly as the FastAPI route does (same bytes and headers, CORS, metrics label, problems),
and leaves read-your-writes and invalid queries to that route."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from infra.postgres import DatabaseUnavailable
from producers.pagination import encode_cursor
from producers.routes.streams import LIVE_PATH, LiveListingRoute
from projections.redis_keys import LiveKeys
from tests.integration.test_api_conventions import cors_client
from tests.integration.test_api_support import ApiStack, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]

ORIGIN = "https://watch.example"


async def _seed_live(stack: ApiStack, count: int) -> None:
    """Live streams in Redis with the projection's key layout (as bench/api.py seeds them)."""
    keys = LiveKeys(stack.namespace.redis_prefix)
    for i in range(count):
        stream_id = f"fast-{i:02d}-{uuid.uuid4().hex[:6]}"
        await stack.services.redis.zadd(keys.live, {stream_id: 1000 - i})
        await stack.services.redis.hset(
            keys.stream(stream_id),
            mapping={
                "channel_id": f"chan-{i}",
                "title": f"Stream {i} ✓",
                "game": "Valorant",
                "started_at": "2025-06-01T18:00:00.000Z",
                "state": "live",
            },
        )


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The scopes LiveListingRoute handled (so a test knows which route answered)."""
    calls: list[dict[str, Any]] = []
    handle = LiveListingRoute.handle

    async def counted(self: LiveListingRoute, scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope)
        await handle(self, scope, receive, send)

    monkeypatch.setattr(LiveListingRoute, "handle", counted)
    return calls


def _routed(url: str) -> str:
    """The same request with a parameter FastAPI ignores, which the fast route leaves to it."""
    return url + ("&" if "?" in url else "?") + "_=1"


async def test_the_fast_route_answers_as_the_fastapi_route(
    api_stack: ApiStack, fast_calls: list[dict[str, Any]]
) -> None:
    await _seed_live(api_stack, 5)
    async with cors_client(api_stack, ORIGIN) as client:
        for query in ("", "?limit=2", f"?limit=2&cursor={encode_cursor(2)}", "?cursor=zzzz"):
            for headers in ({}, {"Origin": ORIGIN}, {"Origin": "https://evil.example"}):
                handled = len(fast_calls)
                fast = await client.get(LIVE_PATH + query, headers=headers)
                assert len(fast_calls) == handled + 1, query
                routed = await client.get(_routed(LIVE_PATH + query), headers=headers)
                assert len(fast_calls) == handled + 1, query
                assert (fast.status_code, fast.content) == (routed.status_code, routed.content), query
                assert fast.headers.multi_items() == routed.headers.multi_items(), (query, headers)
    assert fast.status_code == 400 and fast.json()["type"] == "/problems/invalid-cursor"
    page = (await api_stack.client.get(LIVE_PATH + "?limit=2")).json()
    assert page["source"] == "redis" and len(page["items"]) == 2 and page["next_cursor"]


async def test_it_keeps_the_metrics_label(api_stack: ApiStack, fast_calls: list[dict[str, Any]]) -> None:
    labels = {"method": "GET", "route": LIVE_PATH, "status": "200"}
    registry = api_stack.services.metrics.registry
    before = registry.get_sample_value("api_requests_total", labels) or 0.0
    async with cors_client(api_stack, ORIGIN) as client:
        for _ in range(3):
            assert (await client.get(LIVE_PATH)).status_code == 200
    assert len(fast_calls) == 3
    assert registry.get_sample_value("api_requests_total", labels) == before + 3


async def test_positions_and_invalid_queries_reach_the_fastapi_route(
    api_stack: ApiStack, fast_calls: list[dict[str, Any]]
) -> None:
    user = await api_stack.register()
    async with cors_client(api_stack, ORIGIN) as client:
        bad = await client.get(LIVE_PATH, headers={"X-Min-Position": "nonsense"})
        fresh = await client.get(LIVE_PATH, headers={"X-Min-Position": user.positions[0]})
        too_many = await client.get(LIVE_PATH + "?limit=101")
    assert fast_calls == []
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["instance"] == LIVE_PATH
    assert fresh.status_code == 200 and "x-read-model-lag" not in fresh.headers
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["loc"] == ["query", "limit"]


async def test_an_unavailable_read_model_is_the_same_problem(
    api_stack: ApiStack, fast_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(**_: object) -> bytes:
        raise DatabaseUnavailable("reading the live listing")

    monkeypatch.setattr(api_stack.services.streams, "live_json", unavailable)
    async with cors_client(api_stack, ORIGIN) as client:
        fast = await client.get(LIVE_PATH)
        routed = await client.get(_routed(LIVE_PATH))
    assert len(fast_calls) == 1
    assert fast.status_code == routed.status_code == 503
    assert fast.content == routed.content and fast.headers.multi_items() == routed.headers.multi_items()
    assert fast.headers["retry-after"] == "1"
