"""What the workers of one edge node tell each other, so a scrape of the node's port sees all of them.

The workers of a node (``edge.workers`` > 1, see ``edge_ws/workers.py``) share its port through
SO_REUSEPORT: the kernel hands each connection, a ``GET /metrics`` or ``GET /health`` included, to
one of them. The worker that gets the request asks every other one for its own report over a Unix
socket in the node's private directory (``<dir>/<index>.sock``: one line, ``health`` or ``metrics``,
answered with JSON or Prometheus text, then closed) and answers for the whole node: one scrape
target per node, as with a single process. Series carry ``node`` (the node's id) and ``worker``
(the worker's index) labels, so nothing is summed away and ``sum by (node)`` still means the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 2.0  # a worker that does not answer a sibling in this long counts as unreachable
_ASKS = (b"health", b"metrics")


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """Where a worker stands in its node: its index, how many there are, their shared directory."""

    index: int
    count: int
    directory: str  # private to the node (0700): each worker's socket is <directory>/<index>.sock

    def socket_path(self, index: int) -> str:
        return str(Path(self.directory) / f"{index}.sock")

    def others(self) -> list[int]:
        return [i for i in range(self.count) if i != self.index]


class Siblings:
    """One worker's side: answers its siblings' questions; asks them and merges the answers."""

    def __init__(
        self,
        place: WorkerPlace,
        node_id: str,
        health: Callable[[], dict[str, Any]],
        metrics: Callable[[], str],
    ) -> None:
        self.place = place
        self.node_id = node_id
        self._health = health
        self._metrics = metrics
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        path = self.place.socket_path(self.place.index)
        Path(path).unlink(missing_ok=True)  # a restarted worker takes over its predecessor's name
        self._server = await asyncio.start_unix_server(self._answer, path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            Path(self.place.socket_path(self.place.index)).unlink(missing_ok=True)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            question = (await reader.readline()).strip()
            if question == b"health":
                writer.write(json.dumps(self._health()).encode())
            elif question == b"metrics":
                writer.write(self._metrics().encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.debug("a sibling's question went unanswered: %r", e)
        finally:
            writer.close()

    async def node_health(self) -> dict[str, Any]:
        """/health of the whole node: every worker's report, and the node's status and totals."""
        answers = await self._ask_all(b"health")
        reports: dict[int, dict[str, Any] | None] = {self.place.index: self._health()}
        for index, answer in answers.items():
            reports[index] = json.loads(answer) if answer is not None else None
        return merged_health(self.node_id, self.place.count, reports)

    async def node_metrics(self) -> str:
        """/metrics of the whole node: every answering worker's series, one family each."""
        answers = await self._ask_all(b"metrics")
        texts = [self._metrics(), *(a.decode() for a in answers.values() if a is not None)]
        return merged_metrics(self.node_id, self.place.count, texts)

    async def _ask_all(self, question: bytes) -> dict[int, bytes | None]:
        others = self.place.others()
        answers = await asyncio.gather(*(self._ask(i, question) for i in others))
        return dict(zip(others, answers, strict=True))

    async def _ask(self, index: int, question: bytes) -> bytes | None:
        assert question in _ASKS
        try:
            return await asyncio.wait_for(self._exchange(index, question), ASK_TIMEOUT_S)
        except (OSError, TimeoutError) as e:  # not started yet, restarting, or gone
            log.debug("worker %s did not answer %s: %r", index, question.decode(), e)
            return None

    async def _exchange(self, index: int, question: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(self.place.socket_path(index))
        try:
            writer.write(question + b"\n")
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


_NOT_SUMMED = "status", "node", "worker", "pid", "kafka_reader", "draining", "sending", "uptime_s"


def merged_health(node_id: str, count: int, reports: dict[int, dict[str, Any] | None]) -> dict[str, Any]:
    """The node is ok when every worker answered ok; counters are summed, each worker's report kept."""
    answered = [r for r in reports.values() if r is not None]
    ok = len(answered) == count and all(r.get("status") == "ok" for r in answered)
    totals: dict[str, int] = {}
    for report in answered:
        for key, value in report.items():
            if key not in _NOT_SUMMED and isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return {
        "status": "ok" if ok else "unavailable",
        "node": node_id,
        "workers": count,
        "workers_answering": len(answered),
        "kafka_reader": "running" if all(r.get("kafka_reader") == "running" for r in answered) else "stopped",
        "draining": any(r.get("draining") for r in answered),
        "sending": "paused" if any(r.get("sending") == "paused" for r in answered) else "running",
        **totals,
        "per_worker": {str(i): r or {"status": "unreachable"} for i, r in sorted(reports.items())},
    }


def merged_metrics(node_id: str, count: int, texts: Iterable[str]) -> str:
    """One exposition of several workers' (each already labelled ``worker``): a family's samples
    from every worker under one HELP/TYPE, plus how many workers answered."""
    families: dict[str, Metric] = {}
    answering = 0
    for text in texts:
        answering += 1
        for family in text_string_to_metric_families(text):
            known = families.get(family.name)
            if known is None:
                families[family.name] = family
            else:
                known.samples.extend(family.samples)
    workers = GaugeMetricFamily(
        "esports_edge_workers_answering",
        f"Worker processes of the node that answered this scrape (of {count}).",
        labels=["node"],
    )
    workers.add_metric([node_id], answering)
    return generate_latest(_Families([*families.values(), workers])).decode()


class _Families:
    """Already collected families, as a collector for ``generate_latest``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families
