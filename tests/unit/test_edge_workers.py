"""The pieces of a node of several worker processes that need no Kafka: the merged /health and
/metrics, the siblings' Unix-socket exchange, the port check, the setting and the flag."""

from __future__ import annotations

import argparse
import errno
import socket
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from edge_ws.cli import _edge_arguments
from edge_ws.metrics import Metrics
from edge_ws.siblings import Siblings, WorkerPlace, merged_health, merged_metrics
from edge_ws.workers import claim_port
from infra.settings import EdgeSettings


def _report(status: str = "ok", connections: int = 1, **more: Any) -> dict[str, Any]:
    return {
        "status": status,
        "node": "n",
        "kafka_reader": "running",
        "draining": False,
        "sending": "running",
        "uptime_s": 3.0,
        "connections": connections,
        "deliveries": 10,
        **more,
    }


def test_health_of_a_node_sums_its_workers_and_keeps_each_report() -> None:
    merged = merged_health("n", 2, {0: _report(connections=3), 1: _report(connections=4, sending="paused")})
    assert merged["status"] == "ok"
    assert (merged["connections"], merged["deliveries"], merged["workers_answering"]) == (7, 20, 2)
    assert merged["sending"] == "paused"
    assert merged["per_worker"]["1"]["connections"] == 4
    assert "uptime_s" not in merged and "draining" in merged


def test_node_is_unavailable_unless_every_worker_answers_ok() -> None:
    assert merged_health("n", 2, {0: _report(), 1: None})["status"] == "unavailable"
    assert merged_health("n", 2, {0: _report()})["status"] == "unavailable"
    assert merged_health("n", 2, {0: _report(), 1: _report("unavailable")})["status"] == "unavailable"
    assert merged_health("n", 2, {0: _report(), 1: None})["per_worker"]["1"] == {"status": "unreachable"}


def _exposition(worker: int, connections: int) -> str:
    metrics = Metrics()
    metrics.connections = connections
    metrics.delivered([0])  # an old record: not observed, but the histogram exists
    return metrics.prometheus("n", worker)


def test_metrics_of_a_node_hold_every_workers_series_under_one_family() -> None:
    text = merged_metrics("n", 3, [_exposition(0, 5), _exposition(1, 7)])
    families = {f.name: f for f in text_string_to_metric_families(text)}
    connections = families["esports_edge_connections"].samples
    assert sorted((s.labels["worker"], s.value) for s in connections) == [("0", 5.0), ("1", 7.0)]
    assert text.count("# TYPE esports_edge_connections gauge") == 1
    assert text.count("# TYPE esports_edge_delivery_latency_seconds histogram") == 1
    assert families["esports_edge_workers_answering"].samples[0].value == 2.0


def test_one_process_metrics_have_no_worker_label() -> None:
    text = Metrics().prometheus("n")
    assert 'esports_edge_connections{node="n"} 0.0' in text and "worker=" not in text


async def test_siblings_answer_each_other_over_their_sockets(tmp_path: Path) -> None:
    def sibling(index: int, connections: int) -> Siblings:
        place = WorkerPlace(index, 3, str(tmp_path))
        return Siblings(
            place, "n", lambda: _report(connections=connections), lambda: _exposition(index, connections)
        )

    first, second = sibling(0, 2), sibling(1, 5)  # worker 2 never starts: unreachable
    await second.start()
    try:
        health = await first.node_health()
        metrics = await first.node_metrics()
    finally:
        await second.stop()
    assert (health["connections"], health["workers_answering"], health["status"]) == (7, 2, "unavailable")
    assert health["per_worker"]["2"] == {"status": "unreachable"}
    assert 'esports_edge_connections{node="n",worker="1"} 5.0' in metrics
    assert not Path(second.place.socket_path(1)).exists()


def test_claim_port_resolves_port_zero_and_refuses_a_taken_one() -> None:
    port = claim_port("127.0.0.1", 0)
    assert port > 0
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError) as taken:
            claim_port("127.0.0.1", holder.getsockname()[1])
    assert taken.value.errno == errno.EADDRINUSE


def test_workers_setting_and_flag() -> None:
    assert EdgeSettings().workers == 1
    with pytest.raises(ValidationError):
        EdgeSettings(workers=0)
    parser = argparse.ArgumentParser()
    _edge_arguments(parser)
    assert parser.parse_args(["--workers", "2"]).workers == 2
    assert parser.parse_args([]).workers is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers", "0"])
