"""What the ingest benchmarks share: a sink that counts instead of publishing, and a key check that
lets every key in (neither the broker nor the API is what they measure)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from events.base import Event
from ingest_workers.control import Grant


class NullSink:
    """Counts events instead of publishing them (the broker is not what is measured)."""

    def __init__(self) -> None:
        self.count = 0

    async def publish_many(self, events: Sequence[Event]) -> Any:
        self.count += len(events)


class AnyKey:
    async def authorize(self, stream_key: str, publisher_addr: str | None = None) -> Grant | None:
        return Grant(stream_id=f"bench-{uuid.uuid5(uuid.NAMESPACE_OID, stream_key).hex[:12]}")
