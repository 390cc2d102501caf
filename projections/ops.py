"""The projector service's operational HTTP endpoints: ``GET /health`` and ``GET /metrics``.

A deliberately tiny HTTP/1.1 server on ``asyncio.start_server`` (two read-only routes, one request
per connection, bounded request size): no web framework for the projector process, and the
Prometheus text format is a few lines written by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.kafka import DeadLetters
from projections.projector import BatchStore

__all__ = ["Check", "Monitored", "OpsServer", "render_metrics"]

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[object]]  # raises (or times out) when the dependency does not answer
MAX_REQUEST_BYTES = 8192
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Monitored:
    """A projector and the dead letters of its consumer, as /metrics shows them."""

    store: BatchStore
    dead_letters: DeadLetters


def render_metrics(monitored: Iterable[Monitored]) -> str:
    """Prometheus text exposition (version 0.0.4) of every projector's counters."""
    items = list(monitored)
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{{{labels}}} {value}" for labels, value in samples)

    def per_projector(value: Callable[[Monitored], int]) -> list[tuple[str, float]]:
        return [(f'projector="{m.store.name}"', value(m)) for m in items]

    family(
        "esports_projection_events_applied_total",
        "counter",
        "Events applied to the read model.",
        per_projector(lambda m: m.store.stats.applied),
    )
    family(
        "esports_projection_duplicates_skipped_total",
        "counter",
        "Events delivered again at offsets already applied, skipped.",
        per_projector(lambda m: m.store.stats.duplicates),
    )
    family(
        "esports_projection_batches_total",
        "counter",
        "Batches committed.",
        per_projector(lambda m: m.store.stats.batches),
    )
    family(
        "esports_projection_dead_letters_total",
        "counter",
        "Undecodable records copied to the dead-letter topic.",
        per_projector(lambda m: m.dead_letters.count),
    )
    family(
        "esports_projection_next_offset",
        "gauge",
        "Next offset to apply (the last applied offset + 1), per partition.",
        [
            (f'projector="{m.store.name}",topic="{topic}",partition="{partition}"', offset)
            for m in items
            for (topic, partition), offset in sorted(m.store.stats.next_offsets.items())
        ],
    )
    return "\n".join(lines) + "\n"


class OpsServer:
    """Serves ``/health`` (200 only if every check answers, else 503) and ``/metrics``."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        metrics: Callable[[], str],
        *,
        host: str,
        port: int,
        check_timeout_s: float = 2.0,
    ) -> None:
        self._checks = checks
        self._metrics = metrics
        self._host = host
        self._port = port
        self._timeout_s = check_timeout_s
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._handle, self._host, self._port, limit=MAX_REQUEST_BYTES
            )
        except OSError as e:
            raise OSError(
                f"cannot serve /health on {self._host}:{self._port} ({e.strerror}); "
                "move it with ESPORTS_PROJECTIONS__WEB_PORT"
            ) from e
        log.info("health and metrics on http://%s:%s/health and /metrics", self._host, self._port)

    @property
    def port(self) -> int:
        """The port actually bound (the configured one, or the system's pick when it was 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def health(self) -> tuple[int, dict[str, Any]]:
        """The status code and body of /health: each dependency's state, checked concurrently."""
        results = await asyncio.gather(*(self._check(check) for check in self._checks.values()))
        dependencies = dict(zip(self._checks, results, strict=True))
        healthy = all(result["ok"] for result in results)
        return (200 if healthy else 503), {
            "status": "ok" if healthy else "unavailable",
            "dependencies": dependencies,
        }

    async def _check(self, check: Check) -> dict[str, Any]:
        try:
            await asyncio.wait_for(check(), self._timeout_s)
        except Exception as e:
            return {"ok": False, "error": str(e) or type(e).__name__}
        return {"ok": True}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._timeout_s * 2)
            status, content_type, body = await self._route(head.split(b"\r\n", 1)[0].decode("latin-1"))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            writer.close()
            return
        writer.write(
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _route(self, request_line: str) -> tuple[int, str, bytes]:
        method, target, _version = request_line.split(" ", 2)
        path = target.split("?", 1)[0]
        if path not in ("/health", "/metrics"):
            return 404, "text/plain", b"not found\n"
        if method != "GET":
            return 405, "text/plain", b"GET only\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self._metrics().encode()
        status, body = await self.health()
        return status, "application/json", json.dumps(body).encode()
