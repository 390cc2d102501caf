"""Prometheus metrics of one API process, in its own registry (no module-level collectors).

With several uvicorn workers each process serves its own figures; scrape each worker or run the
API with one worker per container (the usual deployment).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.metrics import LATENCY_BUCKETS, render, service_registry


class ApiMetrics:
    """Request counts and latency by route template, and events published by type."""

    def __init__(self) -> None:
        self.registry = service_registry()
        self.requests = Counter(
            "api_requests_total",
            "HTTP requests by route",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "api_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.published = Counter(
            "api_events_published_total",
            "Events the API published, by topic and type",
            ["topic", "event_type"],
            registry=self.registry,
        )
        self.publish_failures = Counter(
            "api_publish_failures_total",
            "Events of commands whose publish failed, by outcome: not_recorded (nothing in the log, "
            "now or later) or in_doubt (a stalled broker may still append them)",
            ["event_type", "outcome"],
            registry=self.registry,
        )

        # Each label set's children, looked up once: ``labels()`` validates and locks on every call.
        self._counted: dict[tuple[str, str, int], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request and record its latency, by route template."""
        counted = self._counted.get((method, route, status))
        if counted is None:
            counted = self._counted[method, route, status] = self.requests.labels(method, route, str(status))
        timed = self._timed.get((method, route))
        if timed is None:
            timed = self._timed[method, route] = self.latency.labels(method, route)
        counted.inc()
        timed.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return render(self.registry)


class MetricsMiddleware:
    """Times every HTTP request and labels it with the matched route's template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(scope["method"], route, status, time.perf_counter() - started)
