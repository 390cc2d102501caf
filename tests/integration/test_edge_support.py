"""Edge nodes under test against the real Kafka: in-process nodes on free ports, a subprocess node,
websocket clients that keep every message, and the moderation decisions the tests simulate.

The moderation agent is built separately; these tests stand in for it by publishing
``ChatMessageAccepted`` / ``ChatMessageDeleted`` to ``chat.messages`` themselves (``Moderator``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect

from edge_ws.node import EdgeNode
from events.chat import ChatMessageAccepted, ChatMessageDeleted, ChatMessageSubmitted
from events.codec import EventCodec
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, Position
from infra.settings import REPO_ROOT, Settings

SECRET = "edge-tests-secret-" + "x" * 32


def edge_settings(namespace: Settings, **edge: Any) -> Settings:
    """The test namespace with a known JWT secret and limits loose enough for 200 local clients."""
    tweaks = {"max_connections_per_ip": 1000, "heartbeat_flush_s": 0.5, "drain_timeout_s": 2.0, **edge}
    return namespace.model_copy(
        update={
            "edge": namespace.edge.model_copy(update=tweaks),
            "auth": namespace.auth.model_copy(update={"jwt_secret": SecretStr(SECRET)}),
        }
    )


@contextlib.asynccontextmanager
async def running_node(settings: Settings, codec: EventCodec) -> AsyncIterator[EdgeNode]:
    """An edge node in this process on a free port, drained on exit."""
    node = EdgeNode(settings, port=0, codec=codec)
    stop = asyncio.Event()
    task = asyncio.create_task(node.serve(stop))
    ready = asyncio.create_task(node.ready.wait())
    await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield node
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def node_environment(settings: Settings, **more: str) -> dict[str, str]:
    """The environment of an edge node process started by a test: the test's topics and secret, room
    for many connections from one address, a short drain."""
    return {
        **os.environ,
        "ESPORTS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "ESPORTS_AUTH__JWT_SECRET": SECRET,
        "ESPORTS_EDGE__MAX_CONNECTIONS_PER_IP": "1000",
        "ESPORTS_EDGE__DRAIN_TIMEOUT_S": "2",
        "PYTHONUNBUFFERED": "1",
        **more,
    }


class NodeProcess:
    """`python -m edge_ws.node PORT` as a subprocess with the test's settings in its environment."""

    def __init__(self, settings: Settings, port: int, log_path: str) -> None:
        env = node_environment(settings)
        self.port = port
        self.log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_ws.node", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_healthy(self, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                return await asyncio.to_thread(http_json, f"http://127.0.0.1:{self.port}/health")
            except OSError:
                if self.process.poll() is not None or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.log.close()


def http_json(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=3) as response:
        return json.loads(response.read())


@dataclass
class Client:
    """A websocket client that files every server message by type, in arrival order."""

    ws: ClientConnection
    messages: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def open(cls, port: int, **kwargs: Any) -> Client:
        ws = await connect(f"ws://127.0.0.1:{port}/", open_timeout=10, **kwargs)
        client = cls(ws)
        client.task = asyncio.create_task(client._receive())
        return client

    async def _receive(self) -> None:
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                self.messages.append(json.loads(frame))
                self.arrived.set()

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    async def wait_for(self, predicate: Any, timeout_s: float = 15.0) -> dict[str, Any]:
        """The first message matching ``predicate`` (waiting for it if needed)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if predicate(message):
                    return message
            seen = len(self.messages)
            self.arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no matching message; got {self.messages[-5:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)

    async def subscribe(
        self, stream: str, since: str | None = None, referrer: str | None = None, spoilers: str | None = None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "stream": stream}
        if since is not None:
            message["since"] = since
        if referrer is not None:
            message["referrer"] = referrer
        if spoilers is not None:
            message["spoilers"] = spoilers
        await self.send(**message)
        return await self.wait_for(lambda m: m["type"] == "state" and m.get("kind") == "subscribed")

    async def close(self) -> None:
        await self.ws.close()
        if self.task is not None:
            await self.task


class Moderator:
    """Stands in for the moderation agent: accepts what the edges submitted, deletes on request."""

    def __init__(self, settings: Settings, codec: EventCodec, publisher: EventPublisher) -> None:
        self._publisher = publisher
        self.submitted = EventConsumer(
            settings.kafka,
            codec,
            topics=["chat.sent"],  # messages, keyed by sender (commands go to chat.submitted)
            group_id=None,
            dead_letters=DeadLetters(publisher, "deadletter"),
            from_beginning=True,
        )

    async def next_submitted(self, timeout_s: float = 15.0) -> ChatMessageSubmitted:
        async def first() -> ChatMessageSubmitted:
            async for consumed in self.submitted:
                assert isinstance(consumed.event, ChatMessageSubmitted)
                return consumed.event
            raise AssertionError("unreachable")

        return await asyncio.wait_for(first(), timeout_s)

    async def accept(self, submitted: ChatMessageSubmitted) -> Position:
        return await self._publisher.publish(
            accepted(submitted.stream_id, submitted.text, submitted.message_id)
        )

    async def delete(self, stream: str, message_id: str) -> Position:
        return await self._publisher.publish(
            ChatMessageDeleted(message_id=message_id, stream_id=stream, deleted_by="mod-1", reason="test")
        )


def accepted(stream: str, text: str, message_id: str, user: str = "u-1") -> ChatMessageAccepted:
    return ChatMessageAccepted(
        message_id=message_id, stream_id=stream, user_id=user, display_name=user, text=text
    )


def chat_ids(client: Client) -> list[str]:
    return [m["id"] for m in client.of("chat")]


def offsets(client: Client, kind: str = "chat") -> list[int]:
    return [int(m["pos"].split(":")[1]) for m in client.of(kind)]
