"""Operations: ``/health`` with each dependency's status, and Prometheus ``/metrics``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from producers.health import HealthChecks

router = APIRouter(tags=["operations"])


class DependencyStatus(BaseModel):
    ok: bool
    detail: str
    latency_ms: float


class Health(BaseModel):
    """``ok`` when every dependency answered; 503 otherwise."""

    status: Literal["ok", "degraded"]
    checks: dict[str, DependencyStatus]


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is down"}},
)
async def health(request: Request) -> JSONResponse:
    """Kafka, PostgreSQL and Redis status (503 if any is down)."""
    checks: HealthChecks = request.app.state.health
    results = await checks.run()
    healthy = all(c.ok for c in results.values())
    body = Health(
        status="ok" if healthy else "degraded",
        checks={
            name: DependencyStatus(ok=c.ok, detail=c.detail, latency_ms=round(c.latency_ms, 2))
            for name, c in results.items()
        },
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process."""
    payload, content_type = request.app.state.services.metrics.render()
    return Response(payload, media_type=content_type)
