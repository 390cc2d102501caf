"""The nemesis: faults injected on a schedule, and a prober that times the recovery from each.

Faults (each undone by the nemesis itself after `down_s`):

* ``kill-broker``: SIGKILL of a Kafka node, the leader of the stream's ``chat.messages`` partition
  first (then the others in turn), then ``esports infra up kafka-N`` again;
* ``pause-broker``: SIGSTOP of a node for longer than the broker and consumer session timeouts (the
  cluster fences it and moves leaders), then SIGCONT;
* ``kill-processors`` / ``kill-projector`` / ``kill-edge``: SIGKILL of one of two processes of a tier
  (the other takes its partitions or its clients), then a restart.

The prober (the stream's owner: moderators skip the rate limit) sends a chat message through one edge
every `interval_s` and waits for it on the other edge; the time from a fault to the first probe sent
after it that arrived is that fault's recovery time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaClient
from aiokafka.structs import TopicPartition

from infra.kafka import TopicNames, partition_of_key
from tests.chaos.load import EdgeClient
from tests.chaos.platform import Platform

DELIVERY_TIMEOUT_S = 15.0


@dataclass(slots=True)
class Fault:
    kind: str
    target: str
    at: float
    restored: float = 0.0
    recovered_after_s: float | None = None


@dataclass(slots=True)
class Probe:
    sent: float
    delivered: float | None = None


@dataclass
class Prober:
    """A chat message from `sender` every `interval_s`, timed until `listener` (other edge) shows it."""

    sender: EdgeClient
    listener: EdgeClient
    stream: str
    interval_s: float = 0.5
    probes: list[Probe] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        number, running = 0, set()
        while not stop.is_set():
            number += 1
            task = asyncio.create_task(self._probe(number))
            running.add(task)
            task.add_done_callback(running.discard)
            await asyncio.sleep(self.interval_s)
        await asyncio.gather(*running)

    async def _probe(self, number: int) -> None:
        probe = Probe(time.monotonic())
        self.probes.append(probe)
        nonce = f"probe-{number}-{time.monotonic_ns()}"
        try:
            ack = await self.sender.request(
                {"type": "chat", "stream": self.stream, "text": f"probe {number}", "nonce": nonce}
            )
        except Exception:
            return
        message_id = ack.get("message_id")
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(m.get("id") == message_id for m in self.listener.seen[-200:]):
                probe.delivered = time.monotonic()
                return
            await asyncio.sleep(0.05)

    def recovery_after(self, moment: float) -> float | None:
        """Seconds from `moment` until a probe sent at or after it arrived (None: none arrived)."""
        arrived = [p.delivered for p in self.probes if p.sent >= moment and p.delivered is not None]
        return min(arrived) - moment if arrived else None


class Nemesis:
    """Injects faults into `platform` (see the module docstring) and keeps a log of them."""

    def __init__(self, platform: Platform, stream: str, *, say: Callable[[str], None] = print) -> None:
        self.platform, self.stream, self.say = platform, stream, say
        self.faults: list[Fault] = []
        self._next_broker = 0
        # One broker fault at a time: two nodes down of three would stop the controller quorum.
        self._brokers = asyncio.Lock()

    async def chat_leader(self) -> int:
        """The node leading the stream's chat.messages partition (where its chat is decided into)."""
        settings = self.platform.settings
        client = AIOKafkaClient(bootstrap_servers=settings.kafka.bootstrap_servers, request_timeout_ms=5000)
        await client.bootstrap()
        try:
            await client.force_metadata_update()
            topic = TopicNames(settings.kafka.topic_prefix).physical("chat.messages")
            partitions = sorted(client.cluster.partitions_for_topic(topic) or [0])
            partition = partition_of_key(self.stream.encode(), len(partitions))
            return int(client.cluster.leader_for_partition(TopicPartition(topic, partition)) or 1)
        finally:
            await client.close()

    async def _fault(
        self, kind: str, target: str, down_s: float, undo: Callable[[], Awaitable[None]]
    ) -> Fault:
        fault = Fault(kind, target, time.monotonic())
        self.faults.append(fault)
        self.say(f"nemesis: {kind} {target}")
        await asyncio.sleep(down_s)
        await undo()
        fault.restored = time.monotonic()
        self.say(f"nemesis: {target} back after {fault.restored - fault.at:.1f}s")
        return fault

    async def kill_broker(self, down_s: float = 8.0) -> Fault:
        """SIGKILL a broker: the chat leader first, then the others in turn."""
        async with self._brokers:
            return await self._kill_broker(down_s)

    async def _kill_broker(self, down_s: float) -> Fault:
        if self._next_broker == 0:
            node = await self.chat_leader()
        else:
            node = self._next_broker % 3 + 1
        self._next_broker = node
        pid = self.platform.broker_pid(node)
        assert pid, f"kafka-{node} is not running"
        os.kill(pid, signal.SIGKILL)
        return await self._fault("kill-broker", f"kafka-{node}", down_s, lambda: self._restart_broker(node))

    async def _restart_broker(self, node: int) -> None:
        await asyncio.to_thread(self.platform.start_broker, node)

    async def pause_broker(self, paused_s: float = 12.0) -> Fault:
        """SIGSTOP a broker longer than the session timeouts, then SIGCONT (a GC pause, a frozen VM)."""
        async with self._brokers:
            return await self._pause_broker(paused_s)

    async def _pause_broker(self, paused_s: float) -> Fault:
        node = (self._next_broker % 3) + 1
        pid = self.platform.broker_pid(node)
        assert pid, f"kafka-{node} is not running"
        os.kill(pid, signal.SIGSTOP)

        async def resume() -> None:
            os.kill(pid, signal.SIGCONT)

        return await self._fault("pause-broker", f"kafka-{node}", paused_s, resume)

    async def kill_app(self, name: str, down_s: float = 4.0) -> Fault:
        """SIGKILL one app process (and its children), restart it, wait until it is healthy."""
        app = self.platform.apps[name]
        await asyncio.to_thread(app.kill)

        async def restart() -> None:
            app.start()
            await asyncio.to_thread(app.wait_healthy, 120.0)

        kind = "kill-" + name.rsplit("-", 1)[0]
        return await self._fault(kind, name, down_s, restart)
