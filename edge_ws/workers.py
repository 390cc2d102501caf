"""An edge node of several worker processes (``edge.workers`` > 1, ``esports edge --workers N``).

One Python process holds as many connections as its open-file limit allows (``ulimit -Hn``) and
uses one core. A node of N workers is N processes behind one port, as production Python websocket
tiers run (gunicorn, uvicorn ``--workers``):

* **Port.** The process ``esports edge`` starts (the *supervisor*) checks that the port is free (the
  same "port is taken" error as a one-process node), then spawns the workers, each a fresh
  interpreter listening on the same host and port with SO_REUSEPORT: the kernel spreads new
  connections over the workers that listen. Each worker is a whole :class:`~edge_ws.node.EdgeNode`:
  its own Kafka reader (no consumer group: every worker reads every partition), publisher, history,
  connection limits (``edge.max_connections_per_ip`` counts per worker) and drain.
* **Names.** In events (``edge_id``) worker *i* is ``<node id>/<i>``; its metrics keep ``node=<node
  id>`` and add ``worker="<i>"``.
* **Scrapes.** Whichever worker the kernel hands a ``GET /health`` or ``/metrics`` answers for the
  whole node (``edge_ws/siblings.py``): one scrape target per node, every worker's series in it.
  /health is ok only when every worker answers ok.
* **Signals.** SIGTERM or SIGINT to the supervisor: SIGTERM to every worker, which drains as a node
  does (``reconnect`` notice, close 1012); the supervisor waits ``edge.drain_timeout_s`` plus
  :data:`STOP_MARGIN_S`, kills what is left, and exits 0. ``esports down`` signals the process group
  (supervisor and workers at once): the same. Workers get SIGTERM when the supervisor dies
  (``PR_SET_PDEATHSIG``), so a killed supervisor leaves no worker holding the port.
* **A worker that dies** is started again after :data:`RESTART_DELAY_S` (its clients reconnect, to
  whichever worker the kernel picks). The node goes down (exit 1, the other workers stopped) when a
  worker dies before every worker of the node's start was ready (it cannot start: settings, port,
  Kafka) or more than :data:`MAX_RESTARTS` times within :data:`RESTART_WINDOW_S` (a crash loop).
* **pid file.** ``esports up`` records the supervisor's pid; ``esports down`` stops its group.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from edge_ws import node
from edge_ws.siblings import WorkerPlace
from infra import logs
from infra.settings import Settings

log = logging.getLogger(__name__)

MAX_RESTARTS = 5  # worker restarts allowed within RESTART_WINDOW_S before the node gives up
RESTART_WINDOW_S = 60.0
RESTART_DELAY_S = 1.0
STOP_MARGIN_S = 10.0  # beyond the drain timeout, before a worker that has not exited is killed
_PR_SET_PDEATHSIG = 1


def run_node(settings: Settings, port: int | None) -> int:
    """Run a node of ``edge.workers`` worker processes until SIGTERM/SIGINT; 0, or 1 if it failed."""
    edge = settings.edge
    wanted = edge.port if port is None else port
    try:
        port = claim_port(edge.host, wanted)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        setting = "ESPORTS_EDGE__PORT" if wanted == edge.port else "--port"
        log.error("port %s is taken (%s); move the edge with %s", wanted, e, setting)
        return 1
    directory = tempfile.mkdtemp(prefix=f"esports-edge-{port}-")  # 0700: only this user's processes
    try:
        return Supervisor(settings, port, directory).run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def claim_port(host: str, port: int) -> int:
    """The port the workers will share, checked free now (EADDRINUSE otherwise: with SO_REUSEPORT the
    workers would quietly share a port with another node of this user), port 0 resolved."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own socket
        probe.bind(address)
        return int(probe.getsockname()[1])


@dataclass(slots=True)
class _Worker:
    place: WorkerPlace
    process: BaseProcess
    ready: Connection  # the worker sends its pid once it listens; EOF if it dies first
    listening: bool = False
    heard: bool = False  # its pid or its EOF came: nothing more to read from `ready`


class Supervisor:
    """Starts the node's workers, restarts one that dies, stops them all on SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, port: int, directory: str) -> None:
        self._settings = settings
        self._port = port
        self._count = settings.edge.workers
        self._directory = directory
        self._context = multiprocessing.get_context("spawn")  # a fresh interpreter: no loop, no clients
        self._workers: dict[int, _Worker] = {}
        self._due: dict[int, float] = {}  # workers to start again, at this monotonic time
        self._restarts: deque[float] = deque()
        self._started = False  # every worker of the node's start has been ready
        self._stopping = False
        self._wake, self._waker = socket.socketpair()

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self._count):
                self._start(index)
            code = self._supervise()
            self._stop_all()
            return code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._wake.close()
            self._waker.close()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")

    def _start(self, index: int) -> None:
        place = WorkerPlace(index, self._count, self._directory)
        ready, announce = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(self._settings, self._port, place, announce, os.getpid()),
            name=f"edge-worker-{index}",
        )
        process.start()
        announce.close()  # the worker holds the only writing end: its death reads as EOF
        self._workers[index] = _Worker(place, process, ready)

    def _supervise(self) -> int:
        """Until a signal: watch every worker; 1 if the node has to go down."""
        while not self._stopping:
            now = time.monotonic()
            for index in [i for i, at in self._due.items() if at <= now]:
                del self._due[index]
                self._start(index)
            timeout = max(0.0, min(self._due.values()) - now) if self._due else None
            waiting: list[Connection | socket.socket | int] = [self._wake]
            waiting += [w.process.sentinel for w in self._workers.values()]
            waiting += [w.ready for w in self._workers.values() if not w.heard]
            woken = wait(waiting, timeout)
            if self._wake in woken:
                self._wake.recv(64)
            for worker in list(self._workers.values()):
                if worker.ready in woken and not worker.heard:
                    self._listening(worker)
                if worker.process.sentinel in woken and not self._stopping and not self._died(worker):
                    return 1
        return 0

    def _listening(self, worker: _Worker) -> None:
        worker.heard = True
        try:
            pid = worker.ready.recv()
        except EOFError:  # it died before it listened: its sentinel says so too
            return
        worker.listening = True
        log.info("edge worker %s (pid %s) listening on port %s", worker.place.index, pid, self._port)
        if not self._started and all(w.listening for w in self._workers.values()):
            self._started = True
            log.info("edge node on port %s: %s workers ready", self._port, self._count)

    def _died(self, worker: _Worker) -> bool:
        """A worker exited: True if it will be started again, False if the node must go down."""
        worker.process.join()
        worker.ready.close()
        index, code = worker.place.index, worker.process.exitcode
        del self._workers[index]
        if not self._started:
            log.error("edge worker %s exited (code %s) before the node was ready; stopping", index, code)
            return False
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - RESTART_WINDOW_S:
            self._restarts.popleft()
        if len(self._restarts) > MAX_RESTARTS:
            log.error(
                "edge worker %s exited (code %s): %s restarts in %.0f s; stopping the node",
                index,
                code,
                len(self._restarts),
                RESTART_WINDOW_S,
            )
            return False
        log.warning(
            "edge worker %s exited (code %s); starting it again in %.0f s", index, code, RESTART_DELAY_S
        )
        self._due[index] = now + RESTART_DELAY_S
        return True

    def _stop_all(self) -> None:
        """SIGTERM to every worker (each drains), wait, kill what is left."""
        workers = list(self._workers.values())
        for worker in workers:
            if worker.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._settings.edge.drain_timeout_s + STOP_MARGIN_S
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                log.warning("edge worker %s did not stop in time; killing it", worker.place.index)
                worker.process.kill()
                worker.process.join()
            worker.ready.close()
        self._workers.clear()
        log.info("edge node on port %s stopped", self._port)


def worker_main(settings: Settings, port: int, place: WorkerPlace, announce: Connection, parent: int) -> None:
    """A worker process: one :class:`~edge_ws.node.EdgeNode` on the shared port until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
    _die_with(parent)
    logs.configure(settings.log_level, settings.log_format)

    def listening() -> None:
        announce.send(os.getpid())
        announce.close()

    sys.exit(node.run(settings, port, place, listening))


def _die_with(parent: int) -> None:
    """SIGTERM this process when the supervisor dies (Linux; elsewhere the supervisor must stop us)."""
    name = ctypes.util.find_library("c")
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)
