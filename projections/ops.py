"""The projector service's operational HTTP endpoints, ``GET /health`` and ``GET /metrics``, and
what /metrics shows: each projector's counters, how long its batches take to store, its consumer's lag.

A deliberately tiny HTTP/1.1 server on ``asyncio.start_server`` (two read-only routes, one request
per connection, bounded request size): no web framework for the projector process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infra.kafka import ConsumedEvent, DeadLetters
from infra.metrics import LATENCY_BUCKETS, ConsumerLag, render, service_registry
from projections.projector import BatchStore, Partition

__all__ = ["Check", "Monitored", "OpsServer", "ProjectorMetrics", "TimedStore"]

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[object]]  # raises (or times out) when the dependency does not answer
MAX_REQUEST_BYTES = 8192
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Monitored:
    """A projector and the dead letters of its consumer, as /metrics shows them."""

    store: BatchStore
    dead_letters: DeadLetters


class TimedStore:
    """A projector's store whose every batch is timed into a histogram; otherwise the store itself."""

    def __init__(self, store: BatchStore, seconds: Histogram) -> None:
        self._store = store
        self._seconds = seconds
        self.name, self.topics, self.stats = store.name, store.topics, store.stats

    async def start_positions(self, partitions: list[Partition]) -> dict[Partition, int]:
        return await self._store.start_positions(partitions)

    async def store(self, batch: Sequence[ConsumedEvent]) -> None:
        with self._seconds.time():
            await self._store.store(batch)


class ProjectorMetrics:
    """The projector process's registry: the projectors' counters (read from their stats at scrape
    time), ``esports_projection_store_seconds{projector}`` and ``kafka_consumer_lag`` (each consumer
    registers in :attr:`lag` while it runs)."""

    def __init__(self) -> None:
        self.monitored: list[Monitored] = []
        self.lag = ConsumerLag()
        self.registry = service_registry(_ProjectorCounters(self.monitored), self.lag)
        self.store_seconds = Histogram(
            "esports_projection_store_seconds",
            "Time to store one batch (one transaction, conflicts retried inside), by projector.",
            ["projector"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def monitor(self, store: BatchStore, dead_letters: DeadLetters) -> Monitored:
        """``store``, timed, and its dead letters, shown on /metrics from now on."""
        item = Monitored(TimedStore(store, self.store_seconds.labels(store.name)), dead_letters)
        self.monitored.append(item)
        return item


class _ProjectorCounters(Collector):
    def __init__(self, monitored: Sequence[Monitored]) -> None:
        self._monitored = monitored

    def collect(self) -> Iterator[Metric]:
        yield self._per_projector(
            "esports_projection_events_applied_total",
            "Events applied to the read model.",
            lambda m: m.store.stats.applied,
        )
        yield self._per_projector(
            "esports_projection_duplicates_skipped_total",
            "Events delivered again at offsets already applied, skipped.",
            lambda m: m.store.stats.duplicates,
        )
        yield self._per_projector(
            "esports_projection_batches_total", "Batches committed.", lambda m: m.store.stats.batches
        )
        yield self._per_projector(
            "esports_projection_dead_letters_total",
            "Undecodable records copied to the dead-letter topic.",
            lambda m: m.dead_letters.count,
        )
        offsets = GaugeMetricFamily(
            "esports_projection_next_offset",
            "Next offset to apply (the last applied offset + 1), per partition.",
            labels=["projector", "topic", "partition"],
        )
        for m in self._monitored:
            for (topic, partition), offset in sorted(m.store.stats.next_offsets.items()):
                offsets.add_metric([m.store.name, topic, str(partition)], offset)
        yield offsets

    def _per_projector(self, name: str, help_text: str, value: Callable[[Monitored], int]) -> Metric:
        family = CounterMetricFamily(name, help_text, labels=["projector"])
        for m in self._monitored:
            family.add_metric([m.store.name], value(m))
        return family


class OpsServer:
    """Serves ``/health`` (200 only if every check answers, else 503) and ``/metrics``."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        metrics: Collector,
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
            exposition, content_type = render(self._metrics)
            return 200, content_type, exposition
        status, body = await self.health()
        return status, "application/json", json.dumps(body).encode()
