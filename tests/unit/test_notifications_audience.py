"""AudienceService.caught_up asks the broker for end offsets only when a cause is newer than the last
answer: a backlog of old causes (a restart) must not cost a broker round trip each."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import TopicPartition

from events.codec import EventCodec
from infra.kafka import CatchUp
from infra.settings import Settings
from schemas import SCHEMAS_DIR
from stream_processors.notifications.agent import AudienceService

TP = TopicPartition("users", 0)


class CountingReader:
    """The reader's I/O faked: end offsets counted, its caller's progress set by hand."""

    def __init__(self, end: int, applied: int) -> None:
        self.end = end
        self.applied = applied
        self.calls = 0
        self.progress = asyncio.Event()

    async def catch_up(self) -> CatchUp:
        self.calls += 1
        return CatchUp({TP: self.end}, int(time.time() * 1000))

    async def reach(self, mark: CatchUp) -> None:
        while not mark.reached({TP: self.applied}):
            self.progress.clear()
            await self.progress.wait()


def service(reader: CountingReader) -> AudienceService:
    audience = AudienceService(Settings().kafka, EventCodec.load(SCHEMAS_DIR))
    audience._reader = reader  # type: ignore[assignment]  # the reader's I/O is what is faked here
    return audience


async def test_old_causes_reuse_the_end_offsets_read_after_them() -> None:
    reader = CountingReader(end=5, applied=5)
    audience = service(reader)
    now_ms = int(time.time() * 1000)
    await audience.caught_up(now_ms - 60_000)
    for age_ms in (50_000, 40_000, 1_000):  # all written before the first answer was asked for
        await audience.caught_up(now_ms - age_ms)
    assert reader.calls == 1
    # A cause written after that answer needs a fresh one (a follow may have come in since).
    await asyncio.sleep(0.002)
    await audience.caught_up(int(time.time() * 1000))
    assert reader.calls == 2
    await audience.caught_up(None)  # no timestamp: always fresh
    assert reader.calls == 3


async def test_it_waits_for_the_reader_to_apply_up_to_the_end() -> None:
    reader = CountingReader(end=7, applied=5)
    audience = service(reader)
    waiting: asyncio.Task[Any] = asyncio.ensure_future(audience.caught_up(None))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    reader.applied = 7
    reader.progress.set()
    await asyncio.wait_for(waiting, 1)
