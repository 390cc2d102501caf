"""The edge's sending pause (edge_ws/pause.py): when it pauses and resumes, what clients are told, that
writes are refused at once while paused and heartbeats are dropped, not queued. No broker: the
publisher is a stand-in whose check() answers as told."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.protocol import State

from edge_ws import pause as pause_module
from edge_ws.auth import Identity
from edge_ws.commands import HeartbeatBatch
from edge_ws.fanout import FanoutHub
from edge_ws.metrics import Metrics
from edge_ws.pause import SendingPause
from edge_ws.session import Session, SessionContext
from infra.kafka import NotPublished, PublishFailed


class Broker:
    """A publisher stand-in: check() fails while ``down``; every publish is recorded (and must not happen)."""

    def __init__(self) -> None:
        self.down = False
        self.published: list[Any] = []

    async def check(self, timeout_s: float) -> None:
        if self.down:
            raise NotPublished("Kafka did not answer")

    async def publish(self, event: Any, **kwargs: Any) -> Any:
        self.published.append(event)
        raise AssertionError("nothing is published while paused")

    async def partitions_of(self, event_type: Any) -> int:
        raise AssertionError("nothing is published while paused")


def paused_node(clock: list[float]) -> tuple[SendingPause, list[dict[str, Any]], Metrics, Broker]:
    told: list[dict[str, Any]] = []
    metrics, broker = Metrics(), Broker()
    fake: Any = broker
    pause = SendingPause(
        fake, lambda payload: told.append(json.loads(payload)), metrics, timeout_s=3.0, clock=lambda: clock[0]
    )
    return pause, told, metrics, broker


def test_a_retriable_failure_pauses_once_and_a_resume_tells_how_long() -> None:
    clock = [1000.0]
    pause, told, metrics, _ = paused_node(clock)
    pause.failed(PublishFailed("record too large"))  # a refusal of one record is not an outage
    assert not pause.paused and told == []
    pause.failed(NotPublished("Kafka did not answer within 3s"))
    pause.failed(NotPublished("again"))
    assert told == [{"type": "notice", "code": "paused", "since": 1_000_000}]
    assert (metrics.paused, metrics.pauses) == (1, 1)
    clock[0] = 1002.5
    pause.resume()
    pause.resume()
    assert told[1:] == [{"type": "notice", "code": "resumed", "paused_ms": 2500}]
    assert (metrics.paused, metrics.pauses) == (0, 1) and not pause.paused


async def test_the_watcher_pauses_a_quiet_node_and_resumes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pause_module, "PROBE_WHILE_PAUSED_S", 0.01)
    monkeypatch.setattr(pause_module, "PROBE_WHILE_SENDING_S", 0.01)
    pause, told, _, broker = paused_node([time.time()])
    watcher = asyncio.create_task(pause.watch())
    try:
        broker.down = True
        await until(lambda: pause.paused)
        broker.down = False
        await until(lambda: not pause.paused)
    finally:
        watcher.cancel()
    assert [m["code"] for m in told] == ["paused", "resumed"]


async def test_a_failed_write_moves_the_watcher_to_paused_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pause_module, "PROBE_WHILE_PAUSED_S", 0.01)
    monkeypatch.setattr(pause_module, "PROBE_WHILE_SENDING_S", 3600)  # mid-way through its long wait
    pause, told, _, _ = paused_node([time.time()])
    watcher = asyncio.create_task(pause.watch())
    try:
        await asyncio.sleep(0.05)
        pause.failed(NotPublished("Kafka did not answer within 3s"))  # the broker is back at once
        await until(lambda: not pause.paused)
    finally:
        watcher.cancel()
    assert [m["code"] for m in told] == ["paused", "resumed"]


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, frame: bytes) -> None:
        self.written.append(frame)


def session(pause: SendingPause, writes: Any) -> tuple[Session, Transport]:
    transport = Transport()
    ws: Any = SimpleNamespace(transport=transport, protocol=SimpleNamespace(state=State.OPEN))
    context = SessionContext(
        hub=FanoutHub(Metrics(), history_per_stream=10, backfill=5),
        writes=writes,
        heartbeats=SimpleNamespace(),  # type: ignore[arg-type]
        tokens=SimpleNamespace(),  # type: ignore[arg-type]
        metrics=Metrics(),
        max_text=500,
        send_buffer_bytes=1 << 20,
        rate=(100.0, 100),
        pause=pause,
    )
    return Session(ws, context, Identity("u-1", "viewer", int(time.time()) + 600, "Ana")), transport


async def test_writes_are_refused_at_once_while_paused() -> None:
    pause, _, _, broker = paused_node([time.time()])
    pause.pause("Kafka did not answer")
    client, transport = session(pause, broker)
    for frame in (
        {"type": "chat", "stream": "s", "text": "gg", "nonce": "c1"},
        {"type": "vote", "stream": "s", "poll": "p", "option": 0, "nonce": "v1"},
        {"type": "mod", "stream": "s", "action": "clear", "nonce": "m1"},
    ):
        await client.handle(json.dumps(frame))
    answers = [json.loads(payload(frame)) for frame in transport.written]
    assert [(a["type"], a["code"], a["nonce"]) for a in answers] == [
        ("error", "paused", "c1"),
        ("error", "paused", "v1"),
        ("error", "paused", "m1"),
    ]
    assert "not stored" in answers[0]["message"] and broker.published == []


def payload(frame: bytes) -> bytes:
    """The payload of a server text frame (edge_ws.protocol.text_frame)."""
    size = frame[1]
    return frame[2 if size < 126 else 4 if size == 126 else 10 :]


async def test_heartbeats_are_dropped_while_paused_not_queued() -> None:
    pause, _, metrics, broker = paused_node([time.time()])
    fake: Any = broker
    heartbeats = HeartbeatBatch(fake, "edge-1", metrics, 0.01, timeout_s=1.0, pause=pause)
    pause.pause("Kafka did not answer")
    heartbeats.record("s", "session-1", None)
    runner = asyncio.create_task(heartbeats.run())
    try:
        await until(lambda: not heartbeats._seen)
    finally:
        runner.cancel()
    assert broker.published == []
