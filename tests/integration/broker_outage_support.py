"""A private, single Kafka broker that tests may freeze, kill and restart, with the project's stack code.

The shared broker (``esports infra up``) serves every other test and engineer on the machine, so outage
tests never touch it: :func:`private_broker` starts one more broker with ``infra.stack.up`` in a
temporary run_dir on free ports (the Maven-resolved jars of the main run_dir are symlinked in, so
nothing is downloaded again), and :class:`PrivateBroker` makes it unreachable the two ways a broker
goes away: ``freeze()`` (SIGSTOP: the host's TCP stack still accepts connections and bytes, the broker
never answers, like a long GC pause or a hung VM) and ``kill()`` (SIGKILL: connections are refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.base import Event
from events.codec import EventCodec
from events.topics import CATALOGUE
from infra import stack
from infra.kafka import TopicAdmin, TopicNames
from infra.settings import Settings
from infra.stack import processes
from tests.ports import free_port

STACK_RETRIES = 3  # infra/stack is being extended by others; a transient failure is retried after a pause
STACK_RETRY_PAUSE_S = 20.0


@dataclass
class PrivateBroker:
    """The broker of :func:`private_broker`: its settings (run_dir, ports, bootstrap) and its process."""

    settings: Settings

    @property
    def pid(self) -> int:
        pid = processes.our_pid(self.settings, "kafka")
        assert pid is not None, "the private broker is not running"
        return pid

    def freeze(self) -> None:
        """SIGSTOP, returning once every thread of the JVM is stopped (kill() returns before that)."""
        pid = self.pid
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while not _all_threads_stopped(pid):
            assert time.monotonic() < deadline, "the broker's threads did not stop"
            time.sleep(0.01)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while processes.our_pid(self.settings, "kafka") is not None:
            assert time.monotonic() < deadline, "the killed broker did not go away"
            time.sleep(0.05)

    def start(self) -> None:
        """Start it (again): ``infra.stack.up`` returns once it answers metadata requests."""
        _with_retries(lambda: stack.up(self.settings, ["kafka"]))

    async def restart(self) -> None:
        """:meth:`start` from async code (``infra.stack.up`` runs an event loop of its own)."""
        await asyncio.to_thread(self.start)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap_servers


def _all_threads_stopped(pid: int) -> bool:
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return bool(states) and all(state in ("T", "t") for state in states)


def private_settings(base: Settings, run_dir: Path) -> Settings:
    """``base`` pointed at a broker of its own: ``run_dir``, free ports, a small heap."""
    port, controller = free_port(), free_port()
    kafka = base.kafka.model_copy(
        update={
            "port": port,
            "controller_port": controller,
            "bootstrap_servers": f"127.0.0.1:{port}",
            "brokers": 1,
            "heap": "256m",
            "default_partitions": 3,
            "topic_prefix": "",
        }
    )
    return base.model_copy(
        update={"kafka": kafka, "stack": base.stack.model_copy(update={"run_dir": run_dir})}
    )


def _link_jars(base: Settings, run_dir: Path) -> None:
    jars = stack.resolve_kafka_jars(base)  # the main run_dir's, already resolved by `make test`
    target = run_dir / "kafka" / jars.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(jars, target_is_directory=True)


def _with_retries(action: object) -> None:
    for attempt in range(STACK_RETRIES):
        try:
            action()  # type: ignore[operator]
            return
        except stack.StackError:
            if attempt == STACK_RETRIES - 1:
                raise
            time.sleep(STACK_RETRY_PAUSE_S)


@contextlib.contextmanager
def private_broker(base: Settings, run_dir: Path) -> Iterator[PrivateBroker]:
    """A running private broker, stopped (and thawed first, if frozen) on exit."""
    settings = private_settings(base, run_dir)
    _link_jars(base, run_dir)
    broker = PrivateBroker(settings)
    broker.start()
    try:
        yield broker
    finally:
        with contextlib.suppress(ProcessLookupError, AssertionError):
            broker.thaw()  # a stopped process cannot handle the SIGTERM of `down`
        stack.down(settings, ["kafka"])


async def create_topics(settings: Settings, names: Iterable[str]) -> None:
    """Create the catalogue topics ``names`` (under settings' prefix) on the broker of ``settings``."""
    wanted = set(names)
    async with TopicAdmin(settings.kafka) as admin:
        await admin.ensure([spec for spec in CATALOGUE if spec.name in wanted])


async def events_on(settings: Settings, topic: str, codec: EventCodec) -> list[Event]:
    """Every event of catalogue ``topic``, read from the beginning up to its end now by a plain consumer
    (no group, read_uncommitted: it sees whatever the log holds)."""
    physical = TopicNames(settings.kafka.topic_prefix).physical(topic)
    async with TopicAdmin(settings.kafka) as admin:
        [state] = await admin.states([spec for spec in CATALOGUE if spec.name == topic])
    assert state.exists, f"no topic {physical}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(physical, p) for p in range(state.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # Explicit seeks: seek_to_beginning can lose a race with the reset that assign() starts.
        for tp, offset in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, offset)
        events: list[Event] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                events.extend(codec.decode(record.value) for record in records if record.value is not None)
        return events
    finally:
        await consumer.stop()
