"""A whole-topic reader follows its topics for good: a failed fetch is retried, not the reader's end.

Found by the chaos suite: a reader that stopped on the first error after a broker was killed left the
vote workers without the polls opened later, and their tallies at zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from events.base import Event
from stream_processors import runtime
from stream_processors.runtime import WholeTopicReader


class Recording(WholeTopicReader):
    def __init__(self) -> None:
        super().__init__(None, None, ["polls"], "test")  # type: ignore[arg-type]
        self.seen: list[Any] = []

    def apply(self, event: Event) -> None:
        self.seen.append(event)


class FlakyConsumer:
    """Batches that fail the first two times they are read from, then go on."""

    def __init__(self) -> None:
        self.failures = 2
        self.next = 0

    async def batches(self, timeout_ms: int = 200) -> AsyncIterator[list[Any]]:
        while True:
            self.next += 1
            if self.failures:
                self.failures -= 1
                raise KafkaConnectionError("broker gone")
            yield [type("Consumed", (), {"event": self.next})()]
            await asyncio.sleep(0)


async def test_a_failed_fetch_is_retried_and_reading_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "FOLLOW_RETRY_FIRST_S", 0.01)
    reader, consumer = Recording(), FlakyConsumer()
    reader._consumer = consumer  # type: ignore[assignment]
    following = asyncio.ensure_future(reader._follow(consumer.batches()))
    await asyncio.sleep(0.5)  # far more than the two retries take
    stopped_by_itself = following.done()
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    assert not stopped_by_itself, "the reader ended on a failed fetch"
    assert reader.seen[:3] == [3, 4, 5]  # two failed reads, then every batch applied in order
