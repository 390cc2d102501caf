"""Conventions every route follows: problem+json errors (404, 405, 413, 422), Idempotency-Key replay,
read-your-writes, /health, /metrics, CORS and a complete OpenAPI document."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from infra.settings import Settings
from tests.integration.test_api_support import ApiStack, api_stack
from web.app import create_app

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


def _is_problem(response: object, status: int) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    assert PROBLEM_FIELDS <= set(response.json())  # type: ignore[attr-defined]
    assert response.json()["status"] == status  # type: ignore[attr-defined]


async def test_errors_are_problem_documents(api_stack: ApiStack) -> None:
    client = api_stack.client
    _is_problem(await client.get("/api/v1/no-such-route"), 404)
    _is_problem(await client.delete("/api/v1/streams"), 405)
    invalid = await client.post("/api/v1/auth/register", json={"username": "x", "password": "s3cr3t"})
    _is_problem(invalid, 422)
    assert {tuple(e["loc"])[-1] for e in invalid.json()["errors"]} == {"username", "password"}
    assert "s3cr3t" not in invalid.text  # inputs (passwords) are never echoed
    _is_problem(
        await client.post(
            "/api/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
    )
    big = b'{"username": "' + b"a" * api_stack.settings.api.max_body_bytes + b'"}'
    _is_problem(
        await client.post("/api/v1/auth/register", content=big, headers={"content-type": "application/json"}),
        413,
    )
    _is_problem(await client.get("/api/v1/streams?limit=0"), 422)
    _is_problem(await client.get("/api/v1/streams", headers={"X-Min-Position": "nonsense"}), 400)
    _is_problem(await client.get("/api/v1/streams/with%00nul"), 422)


async def test_idempotency_key_replays_the_first_response(api_stack: ApiStack) -> None:
    owner = await api_stack.register()
    key = {"Idempotency-Key": uuid.uuid4().hex, **owner.auth}
    body = {"slug": f"idem-{uuid.uuid4().hex[:10]}", "display_name": "Idem"}
    first = await api_stack.client.post("/api/v1/channels", json=body, headers=key)
    again = await api_stack.client.post("/api/v1/channels", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    different = await api_stack.client.post(
        "/api/v1/channels", json={**body, "display_name": "Other"}, headers=key
    )
    _is_problem(different, 422)
    assert different.json()["type"] == "/problems/idempotency-key-reused"
    # the same key from another user is another request
    other = await api_stack.register()
    theirs = await api_stack.client.post(
        "/api/v1/channels",
        json={**body, "slug": body["slug"] + "-2"},
        headers={**other.auth, "Idempotency-Key": key["Idempotency-Key"]},
    )
    assert theirs.status_code == 201 and theirs.json()["channel_id"] != first.json()["channel_id"]
    # a key whose response held a secret is not replayed
    rotate = f"/api/v1/channels/{first.json()['channel_id']}/stream-key"
    rotate_key = {**owner.auth, "Idempotency-Key": uuid.uuid4().hex}
    assert (await api_stack.client.post(rotate, headers=rotate_key)).status_code == 201
    replay = await api_stack.client.post(rotate, headers=rotate_key)
    _is_problem(replay, 409)
    assert "stream_key" not in replay.text and "live_" not in replay.text
    # failures are not stored: a retry runs again
    failing = {**owner.auth, "Idempotency-Key": uuid.uuid4().hex}
    taken = {"slug": body["slug"], "display_name": "Taken"}
    assert (await api_stack.client.post("/api/v1/channels", json=taken, headers=failing)).status_code == 409
    assert (
        "idempotent-replayed"
        not in (await api_stack.client.post("/api/v1/channels", json=taken, headers=failing)).headers
    )


async def test_read_your_writes(api_stack: ApiStack) -> None:
    owner = await api_stack.register()
    created = await api_stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"ryw-{uuid.uuid4().hex[:10]}", "display_name": "RYW"}
    )
    stream = await api_stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": created["channel_id"], "title": "now"}
    )
    # immediately, without sleeping: the query waits for the projector to reach the position
    response = await api_stack.client.get(
        f"/api/v1/streams/{stream['stream_id']}", headers={"X-Min-Position": stream["position"]}
    )
    assert response.status_code == 200 and response.json()["title"] == "now"
    assert "x-read-model-lag" not in response.headers
    # a position the projector cannot reach in time answers with what it has, marked stale
    api_stack.services.settings.api.read_your_writes_timeout_s, saved = (
        0.2,
        api_stack.settings.api.read_your_writes_timeout_s,
    )
    try:
        far = await api_stack.client.get("/api/v1/streams", headers={"X-Min-Position": "streams:0:999999999"})
    finally:
        api_stack.services.settings.api.read_your_writes_timeout_s = saved
    assert far.status_code == 200 and far.headers["X-Read-Model-Lag"] == "stale"


async def test_health_metrics_cors_and_openapi(api_stack: ApiStack) -> None:
    health = await api_stack.client.get("/health")
    assert health.status_code == 200, health.text
    assert {name: c["ok"] for name, c in health.json()["checks"].items()} == {
        "kafka": True,
        "postgres": True,
        "redis": True,
    }
    await api_stack.client.get("/api/v1/streams/live")
    metrics = (await api_stack.client.get("/metrics")).text
    assert 'api_requests_total{method="GET",route="/api/v1/streams/live",status="200"}' in metrics
    assert "api_events_published_total" in metrics and "api_request_duration_seconds_bucket" in metrics
    schema = (await api_stack.client.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") and operation.get("description"), (method, path)
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)
    assert "examples" in schema["components"]["schemas"]["StreamOut"]
    assert "Problem" in schema["components"]["schemas"]


async def test_cors_is_configurable(settings: object, tmp_path: object) -> None:
    import httpx

    from web.app import create_app

    scoped = api_settings_with_cors(settings, ["https://watch.example"])
    app = create_app(scoped)  # no services needed for a preflight
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        allowed = await client.options(
            "/api/v1/streams",
            headers={"Origin": "https://watch.example", "Access-Control-Request-Method": "POST"},
        )
        refused = await client.options(
            "/api/v1/streams",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert allowed.headers["access-control-allow-origin"] == "https://watch.example"
    assert "access-control-allow-origin" not in refused.headers


def api_settings_with_cors(settings: object, origins: list[str]) -> Settings:
    assert isinstance(settings, Settings)
    return settings.model_copy(update={"api": settings.api.model_copy(update={"cors_origins": origins})})


@asynccontextmanager
async def cors_client(stack: ApiStack, origin: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the whole app (pages included) over ``stack``, with ``origin`` allowed
    by CORS and a fixed client address."""
    app = create_app(api_settings_with_cors(stack.settings, [origin]), stack.services)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client
