"""The poll agent: the I/O around :mod:`stream_processors.polls`.

Consumes ``polls`` (keyed by ``stream_id``) in batches, keeps one
:class:`~stream_processors.polls.PollBoard` per stream in the ``polls`` table and publishes
:class:`~events.polls.PollTallyUpdated` to ``polls.tallies`` with the idempotent publisher: publish
first, then store the board, then ack (the lifecycle agent's order). A crash between publishing and
storing re-decides the same tallies (same event ids) from the redelivered votes; a crash after
storing finds the votes in the board, where a vote replaces the voter's earlier one, so nothing is
counted twice.

A timer (:data:`TICK_S`) settles every stream of the owned partitions on the wall clock: it
publishes tallies held back by the 250 ms limit and closes polls whose deadline passed with their
final tally, also when no event arrives. The board is stored with the changelog partition of its key
(the ``polls`` partition, same murmur2 hash), as the viewer-count agent does.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import faust

from events.base import Event
from events.codec import EventCodec
from events.polls import PollTallyUpdated
from infra.kafka import TopicNames
from stream_processors.app import DecisionPublisher, LifecycleProcessor
from stream_processors.metrics import ProcessorMetrics
from stream_processors.polls import PollBoard, fold, settle
from stream_processors.topology import POLLS_SOURCE, POLLS_TABLE
from stream_processors.viewer_counts_agent import partition_of_key

__all__ = ["BATCH_MAX", "BATCH_WITHIN_S", "TICK_S", "PollProcessor", "register_polls"]

log = logging.getLogger(__name__)

TICK_S = 0.25  # held-back tallies go out within ~0.5 s, final tallies within grace + 0.25 s
BATCH_MAX = 2_000  # votes folded into one board write per stream
BATCH_WITHIN_S = 0.05  # ... or whatever arrived within this long


class PollProcessor(LifecycleProcessor):
    """Decode a batch, fold it into each stream's board, settle, publish, then store."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        partitions: int,
    ) -> None:
        super().__init__(codec, publishing, table, metrics)
        self._partitions = partitions

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        """Process raw records of ``polls``."""
        by_stream: dict[str, list[Event]] = defaultdict(list)
        for message in messages:
            event = await self._decode(message)
            stream_id = getattr(event, "stream_id", None)
            if event is None or not isinstance(stream_id, str):
                continue
            self._metrics.poll_events[event.event_type()] += 1
            by_stream[stream_id].append(event)
        for stream_id, events in by_stream.items():
            key = stream_id.encode()
            board, ignored = fold(self._board(key), events)
            self._metrics.poll_ignored.update(ignored)
            await self._settle(key, board, 0)

    async def tick(self, owned: set[int]) -> None:
        """Settle every stream of the ``owned`` partitions at the wall clock."""
        now_ms = int(time.time() * 1000)
        for key in list(self._table.keys()):
            if partition_of_key(key, self._partitions) in owned:
                await self._settle(key, self._board(key), now_ms)

    def _board(self, key: bytes) -> PollBoard:
        stored = self._table.get(key)
        return PollBoard(stream_id=key.decode()) if stored is None else PollBoard.from_json(stored)

    async def _settle(self, key: bytes, board: PollBoard, now_ms: int) -> None:
        before = self._table.get(key)
        settled, tallies = settle(board, now_ms)
        if tallies:
            await self._publish_tallies(tallies)
        stored = settled.to_json()
        if stored != before:
            # Not table[key] = ...: the tick has no current event to take the partition from.
            self._table.data[key] = stored
            self._table.send_changelog(partition_of_key(key, self._partitions), key, stored)

    async def _publish_tallies(self, tallies: list[PollTallyUpdated]) -> None:
        await self._retrying(
            "publishing poll tallies", lambda: self._publishing.publisher.publish_many(tallies)
        )
        for tally in tallies:
            self._metrics.poll_tallies["final" if tally.final else "running"] += 1
            log.debug(
                "tally stream=%s poll=%s counts=%s final=%s",
                tally.stream_id,
                tally.poll_id,
                tally.counts,
                tally.final,
            )


def register_polls(
    app: faust.App,
    names: TopicNames,
    partitions: int,
    processor_args: tuple[EventCodec, DecisionPublisher, ProcessorMetrics],
) -> None:
    """Add the ``polls`` table, the poll agent and its tick to ``app``."""
    codec, publishing, metrics = processor_args
    source_name = names.physical(POLLS_SOURCE)
    source = app.topic(source_name, partitions=partitions)
    table = app.Table(POLLS_TABLE, key_type=bytes, partitions=partitions)
    processor = PollProcessor(codec, publishing, table, metrics, partitions)

    @app.agent(source, name="polls")
    async def polls(stream: Any) -> None:
        """Tally each stream's polls from the moderators' opens/closes and the viewers' votes."""
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            # take_events acks the batch when this iteration ends: after publishing and storing
            await processor.handle_batch([event.message for event in events])

    @app.timer(TICK_S, name="polls_tick")
    async def polls_tick() -> None:
        """Publish held-back tallies and close polls at their deadline, also when no vote arrives."""
        if app.rebalancing:
            return
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == source_name}
        if owned:
            await processor.tick(owned)
