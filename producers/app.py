"""The REST API as an app: ``create_api(settings, services=None)`` builds the FastAPI app.

Given ``services`` (tests, benchmarks) the app uses them and does not own them; otherwise its
lifespan opens :class:`~producers.services.Services` from ``settings`` and closes them at shutdown.
The process serves it with the pages mounted on it: :func:`web.app.create_app`, one layer up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from infra.settings import Settings
from producers.health import HealthChecks
from producers.idempotency import IdempotencyMiddleware, IdempotencyStore
from producers.limits import BodyLimitMiddleware
from producers.metrics import ApiMetrics, MetricsMiddleware
from producers.problems import install_problem_handlers
from producers.routes import (
    auth,
    beacons,
    channels,
    chat,
    clips,
    follows,
    ingest_health,
    internal,
    moderation,
    notifications,
    operations,
    polls,
    predictions,
    schema_registry,
    search,
    stream_creation,
    streams,
    tournaments,
    users,
)
from producers.services import Namespace, Services

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0
DESCRIPTION = """\
The command side and queries of the eSports live platform.

**Commands** (POST/PUT/PATCH/DELETE) become events on Kafka and answer once the broker acknowledged
them, with the event's `event_id` and log `position`. **Queries** read the projections; send a
command's position back in `X-Min-Position` to read your own writes.

Errors are RFC 9457 `application/problem+json`. POSTs honour `Idempotency-Key` (24 hours).
Listings are cursor-paginated (`limit` up to 100, `next_cursor`).
"""


def create_api(
    settings: Settings, services: Services | None = None, *, namespace: Namespace | None = None
) -> FastAPI:
    """Build the API app (routes, problem handlers, middleware) around ``services`` or its own."""
    metrics = services.metrics if services else ApiMetrics()
    app = FastAPI(
        title="eSports live API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=_lifespan(settings, services, namespace, metrics),
        # The API's metrics are Prometheus (producers.metrics); FastAPI's native OpenTelemetry, unused
        # here, would still look up the global providers (and the environment) on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if services is not None:
        _attach(app, services)
    _include_routes(app)
    install_problem_handlers(app, kafka_retry_after_s=settings.api.retry_after_s)
    # Added innermost first: CORS sees every request, the idempotency layer only routed POSTs.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Min-Position"],
        expose_headers=["X-Read-Model-Lag", "Idempotent-Replayed", "Retry-After"],
    )
    return app


def _include_routes(app: FastAPI) -> None:
    # The live listing's plain requests first of all, ahead of FastAPI's own docs routes (see
    # LiveListingRoute; its other requests reach the streams router's route).
    # Likewise the common case of stream creation (see StreamCreationRoute), the hottest command.
    app.router.routes[0:0] = [streams.LiveListingRoute(), stream_creation.StreamCreationRoute()]
    # Routers are matched in this order (their paths do not overlap), so the hottest comes first: every
    # router tried before a request's own costs it a scan of that router's routes.
    for module in (
        streams,
        auth,
        users,
        channels,
        ingest_health,
        chat,
        moderation,
        polls,
        predictions,
        clips,
        beacons,
        tournaments,
        search,
        follows,
        notifications,
        internal,
        operations,
        schema_registry,
    ):
        app.include_router(module.router)


def _attach(app: FastAPI, services: Services) -> None:
    app.state.services = services
    app.state.health = HealthChecks(services.pool, services.redis, services.settings.kafka)


def _lifespan(
    settings: Settings, given: Services | None, namespace: Namespace | None, metrics: ApiMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            services = given
            if services is None:
                services = await stack.enter_async_context(
                    Services.open(settings, namespace, metrics=metrics)
                )
            _attach(app, services)
            purge = asyncio.create_task(_purge_idempotency_keys(IdempotencyStore(services.pool)))
            try:
                yield
            finally:
                purge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purge

    return lifespan


async def _purge_idempotency_keys(store: IdempotencyStore) -> None:
    while True:
        try:
            removed = await store.purge()
            log.info("purged %s idempotency keys older than 24 hours", removed)
        except Exception as e:  # a failed purge is retried next hour; it must not stop the API
            log.warning("idempotency purge failed: %s", e)
        await asyncio.sleep(PURGE_EVERY_S)
