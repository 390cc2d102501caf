"""Whether this node can publish to Kafka now, and telling its clients when that changes.

A write Kafka does not take in time (a chat message, vote or moderator action, a heartbeat batch; each
bounded by ``api.publish_timeout_s``) pauses sending: every client gets ``notice {code: "paused"}``,
and until ``notice {code: "resumed"}`` the node refuses writes at once with ``error {code: "paused"}``
(nothing of them is stored, nor sent later) and drops viewer heartbeats instead of queueing them. A
watcher probes the brokers every second while paused, and every few seconds otherwise, so a quiet
node pauses too; the first probe that answers resumes sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from edge_ws.metrics import Metrics
from edge_ws.protocol import notice
from infra.kafka import EventPublisher, KafkaError

log = logging.getLogger(__name__)

PROBE_WHILE_PAUSED_S = 1.0  # how soon a paused node notices Kafka is back
PROBE_WHILE_SENDING_S = 5.0  # how soon a node that publishes nothing notices Kafka is gone


class SendingPause:
    """The node's sending state: paused (since when) or not; one per node, shared by its sessions."""

    def __init__(
        self,
        publisher: EventPublisher,
        tell_everyone: Callable[[bytes], None],
        metrics: Metrics,
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._publisher = publisher
        self._tell_everyone = tell_everyone
        self._metrics = metrics
        self.timeout_s = timeout_s
        self._clock = clock
        self.paused_since: float | None = None
        self._paused_now = asyncio.Event()  # wakes the watcher from its long wait into paused probing

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    def notice(self) -> bytes:
        """``notice paused`` as told when sending stopped (also what a client connecting meanwhile gets)."""
        since = self.paused_since if self.paused_since is not None else self._clock()
        return notice("paused", since=int(since * 1000))

    def failed(self, error: KafkaError) -> None:
        """A write was not taken in time: pause (a refusal of one record, not retriable, does not)."""
        if error.retriable:
            self.pause(str(error))

    def pause(self, reason: str) -> None:
        if self.paused:
            return
        self.paused_since = self._clock()
        self._metrics.paused, self._metrics.pauses = 1, self._metrics.pauses + 1
        log.warning("sending paused, Kafka unreachable: %s", reason)
        self._tell_everyone(self.notice())
        self._paused_now.set()

    def resume(self) -> None:
        if self.paused_since is None:
            return
        paused_ms = int((self._clock() - self.paused_since) * 1000)
        self.paused_since, self._metrics.paused = None, 0
        log.info("sending resumed after %s ms", paused_ms)
        self._tell_everyone(notice("resumed", paused_ms=paused_ms))

    async def watch(self) -> None:
        """Forever: probe the brokers (often while paused), pause or resume on the outcome."""
        while True:
            interval = PROBE_WHILE_PAUSED_S if self.paused else PROBE_WHILE_SENDING_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._paused_now.wait(), interval)
                self._paused_now.clear()
                continue  # a write just failed: probe in PROBE_WHILE_PAUSED_S, not at once
            try:
                await self._publisher.check(self.timeout_s)
            except KafkaError as e:
                self.failed(e)
                continue
            self.resume()
