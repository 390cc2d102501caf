"""A share of a rebuild's catch-up in a second process, so that two cores apply events.

Why: one process applies a rebuild's events on one core (decoding, building statements, the
drivers), while the servers' share of the work leaves the second core half idle; the projectors
wait for that one event loop as much as for their databases. A forked child catches up the
projectors of one :func:`split` share, the parent the rest, at the same time (four paired runs of
``bench/rebuild.py``'s rebuild on 2 cores already busy with other work: 24,700 against 21,600 events/s).

The share's projectors are the parent's own: same shadow schema and prefix, same stored offsets, so
a rebuild interrupted anywhere resumes the same way. The child writes the shadow alone (the parent's
share has no projector in common with it) and never outlives the parent (``PR_SET_PDEATHSIG``): a
second writer of the shadow after an ``esports rebuild`` was killed could otherwise meet the next
run's. Forked, not spawned: a child that
imported the platform again would spend the time it is there to save.

Over the pipe, the child sends ``("advance", offsets)`` a few times a second for the progress line,
then one ``("done", Done)``, ``("interrupted", message)`` or ``("failed", message)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from events.codec import EventCodec
from infra.redis import make_client
from infra.settings import Settings
from projections.database import make_pool
from projections.projector import BatchStore, Partition, PostgresProjector
from projections.rebuild.catch_up import CatchUp, Interrupted, RebuildFailed, Tally
from projections.rebuild.reader import FanOutReader
from projections.service import build_stores

__all__ = ["Done", "Shadow", "WorkerFailed", "catch_up_in_worker", "split"]

PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies
STOP_GRACE_S = 10.0  # after a stop, how long the worker may take to store its batch and answer
ADVANCE_EVERY_S = 0.2  # how often the child reports progress
Targets = Mapping[str, Mapping[Partition, int]]


class WorkerFailed(RebuildFailed):
    """The worker could not finish its share (its error, as text: it happened in another process)."""


@dataclass(frozen=True, slots=True)
class Shadow:
    """Where the worker writes and how it reads: what it needs besides its projectors and targets."""

    settings: Settings
    codec: EventCodec
    schema: str
    prefix: str
    batch_size: int


@dataclass(frozen=True, slots=True)
class Done:
    """What the worker applied."""

    events: int
    per_store: dict[str, int]
    seconds: dict[str, float]
    undecodable: int
    cpu_s: float  # the worker's CPU time


def split(stores: Sequence[BatchStore], work: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """Two shares of ``stores`` for two processes, as even in ``work`` (offsets to apply) as whole
    groups allow; projectors that share a topic stay in one share, so each record is still read and
    decoded once (pure). The first share is the bigger; the second is empty when no split exists."""
    groups: list[tuple[set[str], set[str]]] = []  # (topics, projector names), merged by topic
    for store in stores:
        topics, names = set(store.topics), {store.name}
        for group in [g for g in groups if g[0] & topics]:
            groups.remove(group)
            topics, names = topics | group[0], names | group[1]
        groups.append((topics, names))
    shares: tuple[list[str], list[str]] = ([], [])
    loads = [0, 0]
    for _, names in sorted(groups, key=lambda g: (-sum(work.get(n, 0) for n in g[1]), sorted(g[1]))):
        lighter = loads.index(min(loads))
        shares[lighter].extend(sorted(names))
        loads[lighter] += sum(work.get(n, 0) for n in names)
    order = [s.name for s in stores]
    first, second = (sorted(share, key=order.index) for share in shares)
    return (first, second) if loads[0] >= loads[1] else (second, first)


async def catch_up_in_worker(
    shadow: Shadow,
    names: Sequence[str],
    targets: Targets,
    progress: Tally,
    stop: asyncio.Event | None = None,
) -> Done:
    """Catch up the projectors ``names`` to ``targets`` in a forked child; raises ``Interrupted`` if
    it was stopped (it gets the terminal's Ctrl-C itself; cancelling this, or ``stop`` — the parent's
    own Ctrl-C or SIGTERM, which a child does not get when only the parent is signalled — sends it
    SIGTERM, and SIGKILL if it has not answered within :data:`STOP_GRACE_S`), and ``WorkerFailed``
    with its error otherwise."""
    receiving, sending = multiprocessing.Pipe(duplex=False)
    job = (sending, shadow, tuple(names), {name: targets[name] for name in names})
    child = multiprocessing.get_context("fork").Process(target=_child, args=job, name="rebuild worker")
    # The parent's objects are left out of the child's garbage collections: traversing them would
    # copy every page of the parent's heap into the child (copy-on-write), and take the time too.
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
    sending.close()  # the child's end: EOF here once the child is gone
    try:
        kind, value = await _results_or_stopped(child, receiving, progress, stop)
    finally:
        if child.is_alive():
            child.terminate()  # SIGTERM: the child stops after the batch it is storing
        await asyncio.to_thread(child.join)
        receiving.close()
    if kind == "done":
        assert isinstance(value, Done)
        return value
    if kind == "interrupted":
        raise Interrupted(str(value))
    raise WorkerFailed(f"the rebuild worker of {', '.join(names)}: {value}")


async def _results_or_stopped(
    child: BaseProcess, connection: Connection, progress: Tally, stop: asyncio.Event | None
) -> tuple[str, object]:
    """The child's final message; once ``stop`` is set, the child is asked to stop (SIGTERM: it
    stops after the batch it is storing) and killed if it has not answered in time."""
    results = asyncio.ensure_future(_results(connection, progress))
    if stop is None:
        return await results
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({results, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if results.done():
            return results.result()
        child.terminate()
        try:
            return await asyncio.wait_for(asyncio.shield(results), STOP_GRACE_S)
        except TimeoutError:
            child.kill()
            return ("interrupted", f"stopped; the worker did not answer within {STOP_GRACE_S:.0f}s")
    finally:
        stopped.cancel()
        results.cancel()


async def _results(connection: Connection, progress: Tally) -> tuple[str, object]:
    """The child's final message, counting its progress on the way (the pipe read when readable)."""
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def readable() -> None:
        try:
            while connection.poll():
                messages.put_nowait(connection.recv())
        except (EOFError, OSError):
            loop.remove_reader(connection.fileno())
            messages.put_nowait(("failed", "it exited without a result"))

    loop.add_reader(connection.fileno(), readable)
    try:
        while (message := await messages.get())[0] == "advance":
            progress.advance(message[1])
        return message
    finally:
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(connection.fileno())


def _child(connection: Connection, *job: Any) -> None:
    """The forked child: its own event loop, pools and reader; reports over ``connection``."""
    _die_with_parent()
    # The parent's loop routes signals through its own wakeup pipe, inherited here: reset them, the
    # child's loop installs its own.
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    result: tuple[str, object] = ("failed", "it stopped without a result")
    try:
        result = ("done", asyncio.run(_catch_up(connection, *job)))
    except* Interrupted as group:
        result = ("interrupted", _describe(group))
    except* BaseException as group:  # reported to the parent, which raises it there
        result = ("failed", _describe(group))
    connection.send(result)
    connection.close()


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)


async def _catch_up(connection: Connection, shadow: Shadow, names: tuple[str, ...], targets: Targets) -> Done:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    settings = shadow.settings
    pool = make_pool(settings.postgres, name="rebuild.worker", schema=shadow.schema, max_size=4)
    client = make_client(settings.redis, name="rebuild.worker")
    built = build_stores(pool, client, schema=shadow.schema, redis_prefix=shadow.prefix)
    stores = [s for s in built if s.name in names]
    for store in stores:
        if isinstance(store, PostgresProjector):
            store.sole_writer()  # see command.rebuild: the shadow has no twin and no reader
    relay = _Relay(connection)
    try:
        async with pool, FanOutReader(settings.kafka, shadow.codec, batch_size=shadow.batch_size) as reader:
            catch_up = CatchUp(reader, relay, stop)
            await catch_up.run(stores, targets)
            relay.flush()
            cpu_s = time.process_time()
            return Done(catch_up.events, catch_up.per_store, catch_up.seconds, reader.undecodable, cpu_s)
    finally:
        await client.aclose()


class _Relay:
    """Counts applied offsets and sends them to the parent every :data:`ADVANCE_EVERY_S`."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._unsent = 0
        self._sent_at = time.monotonic()

    def advance(self, offsets: int) -> None:
        self._unsent += offsets
        if time.monotonic() - self._sent_at >= ADVANCE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self._unsent:
            self._connection.send(("advance", self._unsent))
        self._unsent, self._sent_at = 0, time.monotonic()
