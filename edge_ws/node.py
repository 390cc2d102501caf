"""The edge node's composition root: settings → Kafka clients → hub, sessions, server; and its drain.

``run(settings, port)`` is what ``esports edge`` calls. :class:`EdgeNode` is the same node as an
object, so tests can run several in one process on free ports. With ``edge.workers`` > 1 the node is
that many processes, each an :class:`EdgeNode` on the same port (``edge_ws/workers.py``, which
``esports edge`` runs then).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from edge_ws.auth import TokenCheck
from edge_ws.commands import EdgeWrites, HeartbeatBatch
from edge_ws.fanout import FanoutHub
from edge_ws.http import Gate, allowed_origins
from edge_ws.limits import AddressCap
from edge_ws.metrics import Metrics
from edge_ws.pause import SendingPause
from edge_ws.protocol import CLOSE_RESTART, notice
from edge_ws.reader import EdgeReader, chat_starts, pump
from edge_ws.session import Session, SessionContext
from edge_ws.siblings import Siblings, WorkerPlace
from events.codec import EventCodec
from infra.gc_tuning import tune_for_throughput
from infra.kafka import EventPublisher
from infra.net import ClientAddresses
from infra.settings import Settings
from schemas import SCHEMAS_DIR

log = logging.getLogger(__name__)


class EdgeNode:
    """A websocket edge node: one Kafka reader, one publisher, one server, many sessions."""

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        codec: EventCodec | None = None,
        worker: WorkerPlace | None = None,
    ) -> None:
        edge = settings.edge
        self.settings = settings
        self.port = edge.port if port is None else port
        self.worker = worker
        node = edge.node_id or f"{socket.gethostname()}:{self.port}"
        # In events (edge_id) each worker process is named apart: <node>/<index>. Metrics keep the
        # node's name and add a worker label.
        self.node_id = node if worker is None else f"{node}/{worker.index}"
        self.metrics = Metrics()
        codec = codec or EventCodec.load(SCHEMAS_DIR)
        # A viewer's chat, vote or mod action waits for nobody: no linger before it is sent (what
        # arrives while a request is in flight is still batched); heartbeats are batched already.
        kafka = settings.kafka.model_copy(update={"linger_ms": 0})
        self.publisher = EventPublisher(kafka, codec, producer="edge_ws")
        self.reader = EdgeReader(settings.kafka, codec)
        self.metrics.lag.register(self.reader)
        self.hub = FanoutHub(
            self.metrics,
            history_per_stream=edge.history_per_stream,
            backfill=edge.backfill_messages,
            mode=edge.fanout,
        )
        self.sessions: set[Session] = set()
        # Writes wait for Kafka as long as an API command does, then fail and pause sending.
        timeout_s = settings.api.publish_timeout_s
        self.pause = SendingPause(self.publisher, self._tell_everyone, self.metrics, timeout_s=timeout_s)
        self.heartbeats = HeartbeatBatch(
            self.publisher,
            self.node_id,
            self.metrics,
            edge.heartbeat_flush_s,
            timeout_s=timeout_s,
            pause=self.pause,
        )
        tokens = TokenCheck(settings.auth)
        self.context = SessionContext(
            hub=self.hub,
            writes=EdgeWrites(
                self.publisher, self.node_id, self.metrics, timeout_s=timeout_s, pause=self.pause
            ),
            heartbeats=self.heartbeats,
            tokens=tokens,
            metrics=self.metrics,
            max_text=settings.chat.max_message_length,
            send_buffer_bytes=edge.send_buffer_bytes,
            rate=(edge.client_messages_per_s, edge.client_burst),
            pause=self.pause,
        )
        self.cap = AddressCap(edge.max_connections_per_ip)
        origins = allowed_origins(settings.api.cors_origins, settings.api.public_url)
        self.gate = Gate(
            origins,
            self.cap,
            tokens,
            self.metrics,
            self.health,
            node,
            ClientAddresses(settings.api.trusted_proxies),
            worker=None if worker is None else worker.index,
        )
        if worker is not None:
            self.gate.siblings = Siblings(worker, node, self.health, self.gate.exposition)
        self.ready = asyncio.Event()
        self._reader_alive = False
        self._started = time.monotonic()

    def health(self) -> dict[str, Any]:
        ok = self._reader_alive and not self.gate.draining
        return {
            "status": "ok" if ok else "unavailable",
            "node": self.node_id,
            **({} if self.worker is None else {"worker": self.worker.index, "pid": os.getpid()}),
            "kafka_reader": "running" if self._reader_alive else "stopped",
            "draining": self.gate.draining,
            "sending": "paused" if self.pause.paused else "running",
            "uptime_s": round(time.monotonic() - self._started, 1),
            **self.metrics.as_dict(),
        }

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then drain: tell every client to reconnect, close 1012, return."""
        async with self.publisher:
            await self.reader.start()
            siblings = self.gate.siblings
            try:
                self.hub.partition_starts = chat_starts(
                    await self.reader.warm_start(self.settings.edge.warm_start_records)
                )
                if siblings is not None:
                    await siblings.start()
                await self._serve_until(stop)
            finally:
                if siblings is not None:
                    await siblings.stop()
                await self.reader.stop()

    async def _serve_until(self, stop: asyncio.Event) -> None:
        edge = self.settings.edge
        async with serve(
            self._handle,
            edge.host,
            self.port,
            process_request=self.gate,
            max_size=edge.max_frame_bytes,
            ping_interval=edge.ping_interval_s,
            ping_timeout=edge.ping_timeout_s,
            compression=None,  # deflate per connection would undo encode-once; chat frames are small
            max_queue=16,
            server_header=None,
            reuse_port=self.worker is not None,  # the node's workers share its port (kernel-balanced)
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            tasks = [asyncio.create_task(pump(self.reader, self.hub, self.metrics), name="edge-reader")]
            tasks.append(asyncio.create_task(self.hub.write_forever(), name="edge-writer"))
            tasks.append(asyncio.create_task(self.heartbeats.run(), name="edge-heartbeats"))
            tasks.append(asyncio.create_task(self.pause.watch(), name="edge-pause-watch"))
            self._reader_alive = True
            self.ready.set()
            log.info("edge node %s listening on %s:%s", self.node_id, edge.host, self.port)
            await _first_of(stop, tasks)
            self._reader_alive = False
            await self._drain(server)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _quietly(self.heartbeats.flush())

    def _tell_everyone(self, payload: bytes) -> None:
        self.hub.tell_everyone(payload, self.sessions)

    async def _drain(self, server: Server) -> None:
        """Graceful: refuse new handshakes, tell everyone to reconnect, close with 1012 in parallel."""
        self.gate.draining = True
        self.hub.tell_everyone(notice("reconnect", reason="node shutting down"), self.sessions)
        closes = [session.ws.close(CLOSE_RESTART, "node restarting") for session in list(self.sessions)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*closes, return_exceptions=True), self.settings.edge.drain_timeout_s
            )
        for session in list(self.sessions):  # clients that did not answer the close in time
            session.ws.transport.abort()
        server.close(close_connections=True)  # a handshake still in progress: 1001
        await server.wait_closed()
        log.info("edge node %s drained", self.node_id)

    async def _handle(self, ws: ServerConnection) -> None:
        address = self.gate.address_of(ws)
        session = Session(ws, self.context, self.gate.identity_of(ws))
        self.cap.opened(address)
        self.sessions.add(session)
        self.metrics.connections += 1
        self.metrics.connections_total += 1
        if self.pause.paused:  # a client arriving during a pause learns it at once
            session.send(self.pause.notice())
        try:
            await session.run()
        except Exception as e:  # ConnectionClosed and friends: the client is gone either way
            log.debug("session %s ended: %r", session.session_id, e)
        finally:
            session.leave()
            self.sessions.discard(session)
            self.cap.closed(address)
            self.metrics.connections -= 1


async def _first_of(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Wait for ``stop`` or for a background task to die (which is then logged and re-raised)."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    for task in done:
        failure = None if task is stopper else task.exception()
        if failure is not None:
            log.error("edge background task %s failed", task.get_name(), exc_info=failure)
            raise failure


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as e:
        log.warning("while stopping: %r", e)


async def _main(
    settings: Settings, port: int | None, worker: WorkerPlace | None, on_ready: Callable[[], None] | None
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    node = EdgeNode(settings, port=port, worker=worker)
    announce = asyncio.create_task(_when_ready(node, on_ready))
    try:
        await node.serve(stop)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        setting = "ESPORTS_EDGE__PORT" if port in (None, settings.edge.port) else "--port"
        log.error("port %s is taken (%s); move the edge with %s", port or settings.edge.port, e, setting)
        return 1
    finally:
        announce.cancel()
    return 0


async def _when_ready(node: EdgeNode, on_ready: Callable[[], None] | None) -> None:
    await node.ready.wait()
    # What the node built so far lives as long as the process: out of the collector's sight, and
    # collections made rare (infra.gc_tuning). With the defaults, a full collection with thousands of
    # connections stopped the event loop for 50 to 200 ms (gc.callbacks), which every delivery in
    # flight waited for.
    tune_for_throughput()
    if on_ready is not None:
        on_ready()


def run(
    settings: Settings,
    port: int | None = None,
    worker: WorkerPlace | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run one edge node in this process until SIGTERM/SIGINT, drain it, return 0 (``esports edge``
    with one worker; a worker of a node of several, ``edge_ws/workers.py``, with ``worker``).
    ``on_ready`` is called once it listens. The event loop is uvloop's when installed."""
    main = _main(settings, port, worker, on_ready)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


if __name__ == "__main__":
    import sys

    from infra import logs

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    sys.exit(run(settings, int(sys.argv[1]) if len(sys.argv) > 1 else None))
