"""The poll agent: the I/O around :mod:`stream_processors.polls.board`.

Consumes ``polls`` and ``streams`` (both keyed by ``stream_id``, co-partitioned) in batches, keeps one
:class:`~stream_processors.polls.board.PollBoard` per stream in the ``polls`` table and publishes
:class:`~events.polls.PollTallyUpdated` to ``polls.tallies`` with the idempotent publisher: publish
first, then store the board, then ack (the lifecycle agent's order). A crash between publishing and
storing re-decides the same tallies (same event ids) from the redelivered votes; a crash after
storing finds the votes in the board, where a vote replaces the voter's earlier one, so nothing is
counted twice.

``streams`` gives each board its channel and owner (``StreamCreated``); with the moderation agent's
roster (:class:`~stream_processors.moderation.agent.RosterReader`, the ``users`` topic read whole) that
decides who may open and close polls. The edge publishes ``/poll`` and ``/endpoll`` typed in chat
without checking rights, so a refused PollOpened/PollClosed is ignored here, counted
(``esports_poll_ignored_total{reason="not_allowed"}``) and logged with the stream, poll and actor ids.

Each ``polls`` record is folded with its partition offset (a user's latest vote is the latest in the log).
The agent keeps, per partition, an event-time watermark (the newest ``occurred_at`` read there) and
the last offset it processed. A timer (:data:`TICK_S`) settles every stream of the owned partitions:
it publishes tallies held back by the 250 ms limit and closes polls whose deadline passed *in event
time* (the watermark), or, when nothing newer arrives, once the wall clock is
:data:`~stream_processors.polls.board.IDLE_GRACE_MS` past the deadline and the partition is read to its end
(processed offset + 1 >= the consumer's highwater). A lagging worker never closes a poll early.
A lock keeps a batch and a tick from interleaving (both read a board, publish, then store it). The
board is stored with the changelog partition of its key
(the ``polls`` partition, same murmur2 hash), as the viewer-count agent does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import faust

from events.base import Event
from events.codec import EventCodec
from events.polls import PollTallyUpdated
from events.streams import StreamCreated
from infra.kafka import TopicNames
from stream_processors.batching import partition_of_key
from stream_processors.metrics import ProcessorMetrics
from stream_processors.moderation.roster import ChatRoster
from stream_processors.polls.board import PollBoard, actor_of, allowed, epoch_ms, fold, own, settle
from stream_processors.runtime import DecisionPublisher, Processor, register_batched
from stream_processors.topology import POLLS_SOURCE, POLLS_TABLE

__all__ = ["BATCH_MAX", "BATCH_WITHIN_S", "TICK_S", "PollProcessor", "register_polls"]

log = logging.getLogger(__name__)

TICK_S = 0.25  # held-back tallies go out within ~0.5 s, final tallies within grace + 0.25 s
BATCH_MAX = 2_000  # votes folded into one board write per stream
BATCH_WITHIN_S = 0.05  # ... or whatever arrived within this long


class PollProcessor(Processor):
    """Decode a batch, fold it into each stream's board, settle, publish, then store."""

    def __init__(
        self,
        codec: EventCodec,
        publishing: DecisionPublisher,
        table: Any,
        metrics: ProcessorMetrics,
        partitions: int,
        roster: ChatRoster,
        names: TopicNames,
    ) -> None:
        super().__init__(codec, publishing, table, metrics)
        self._partitions = partitions
        self._roster = roster
        self._names = names
        self._watermarks: dict[int, int] = {}  # partition -> newest occurred_at read (ms)
        self._processed: dict[int, int] = {}  # partition -> last offset processed
        self._lock = asyncio.Lock()  # a batch and a tick each read, publish, then store boards

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        """Process raw records of ``polls`` and ``streams``."""
        async with self._lock:
            polls = [m for m in messages if self._names.logical(m.topic) != "streams"]
            await self._learn_owners([m for m in messages if self._names.logical(m.topic) == "streams"])
            await self._handle_batch(polls)

    async def _learn_owners(self, messages: Sequence[Any]) -> None:
        """Each created stream's channel and owner into its board (who may run its polls)."""
        for message in messages:
            event = self._decode_quietly(message)  # the lifecycle agent dead-letters bad ones (once)
            if isinstance(event, StreamCreated):
                key = event.stream_id.encode()
                board = self._board(key)
                await self._settle(key, own(board, event), 0)

    def _log_refused(self, board: PollBoard, records: Sequence[tuple[Event, int]]) -> None:
        for event, offset in records:
            actor = actor_of(event)
            if actor is not None and not allowed(board, actor, self._roster):
                log.info(
                    "poll %s refused: stream=%s poll=%s actor=%s offset=%s (not owner, moderator or admin)",
                    event.event_type(),
                    board.stream_id,
                    getattr(event, "poll_id", ""),
                    actor,
                    offset,
                )

    async def _handle_batch(self, messages: Sequence[Any]) -> None:
        by_stream: dict[str, list[tuple[Event, int]]] = defaultdict(list)
        done: dict[int, int] = {}
        watermarks: dict[int, int] = {}
        for message in messages:
            partition, offset = int(message.partition), int(message.offset)
            done[partition] = max(done.get(partition, -1), offset)
            event = await self._decode(message)
            stream_id = getattr(event, "stream_id", None)
            if event is None or not isinstance(stream_id, str):
                continue
            at = epoch_ms(event.occurred_at)
            watermarks[partition] = max(watermarks.get(partition, 0), at)
            self._metrics.poll_events[event.event_type()] += 1
            by_stream[stream_id].append((event, offset))
        for stream_id, records in by_stream.items():
            key = stream_id.encode()
            self._log_refused(self._board(key), records)
            board, ignored = fold(self._board(key), records, roster=self._roster)
            self._metrics.poll_ignored.update(ignored)
            await self._settle(key, board, 0)
        # Only now, with every record of the batch folded and stored, may they move the tick's deadlines.
        for partition, offset in done.items():
            self._processed[partition] = max(self._processed.get(partition, -1), offset)
        for partition, at in watermarks.items():
            self._watermarks[partition] = max(self._watermarks.get(partition, 0), at)

    async def tick(self, owned: set[int], highwaters: dict[int, int | None]) -> None:
        """Settle every stream of the ``owned`` partitions at the wall clock.

        ``highwaters`` maps a partition to its end offset as the consumer knows it (None: unknown).
        """
        async with self._lock:
            now_ms = int(time.time() * 1000)
            keys = [
                key for key in list(self._table.keys()) if partition_of_key(key, self._partitions) in owned
            ]
            for key in keys:  # after a restart: what the stored boards knew
                board, partition = self._board(key), partition_of_key(key, self._partitions)
                self._watermarks[partition] = max(self._watermarks.get(partition, 0), board.watermark_ms)
                self._processed[partition] = max(self._processed.get(partition, -1), board.offset)
            for key in keys:
                partition = partition_of_key(key, self._partitions)
                end = highwaters.get(partition)
                caught_up = end is not None and self._processed.get(partition, -1) + 1 >= end
                watermark = self._watermarks.get(partition, 0)
                await self._settle(key, self._board(key), now_ms, watermark_ms=watermark, caught_up=caught_up)

    def forget(self, partitions: set[int]) -> None:
        """Drop what is known of partitions no longer owned (another worker may move them on)."""
        for partition in partitions:
            self._watermarks.pop(partition, None)
            self._processed.pop(partition, None)

    def _board(self, key: bytes) -> PollBoard:
        stored = self._table.get(key)
        return PollBoard(stream_id=key.decode()) if stored is None else PollBoard.from_json(stored)

    async def _settle(
        self, key: bytes, board: PollBoard, now_ms: int, *, watermark_ms: int = 0, caught_up: bool = False
    ) -> None:
        before = self._table.get(key)
        settled, tallies = settle(board, now_ms, watermark_ms=watermark_ms, caught_up=caught_up)
        if tallies:
            await self._publish_tallies(tallies)
        stored = settled.to_json()
        if _changed(before, stored):
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
    roster: ChatRoster,
) -> None:
    """Add the ``polls`` table, the poll agent and its tick to ``app``.

    ``roster`` is the moderation agent's (admins and channel moderators), kept by its RosterReader.
    """
    codec, publishing, metrics = processor_args
    source_name = names.physical(POLLS_SOURCE)
    source = app.topic(source_name, names.physical("streams"), partitions=partitions)
    table = app.Table(POLLS_TABLE, key_type=bytes, partitions=partitions)
    processor = PollProcessor(codec, publishing, table, metrics, partitions, roster, names)

    async def settle(tps: list[Any]) -> None:
        """Publish held-back tallies and close polls at their deadline, also when no vote arrives."""
        owned = {tp.partition for tp in tps}
        processor.forget(set(range(partitions)) - owned)
        if owned:
            await processor.tick(owned, {tp.partition: _highwater(app, tp) for tp in tps})

    register_batched(
        app,
        source,
        "polls",
        processor,
        batch=(BATCH_MAX, BATCH_WITHIN_S),
        tick_s=TICK_S,
        tick=settle,
        tick_topic=source_name,
    )


def _changed(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """True unless the board only moved its clock: a tick every 250 ms that stored each board for that
    alone wrote every stream's state to the changelog four times a second (and filled the producer's
    buffer). Not storing a clock-only change loses nothing: every tick passes the wall clock again, and
    the time of each poll's last tally (what spaces tallies MIN_INTERVAL_MS apart) is stored with it."""
    return before is None or {**before, "clock_ms": 0} != {**after, "clock_ms": 0}


def _highwater(app: faust.App, tp: Any) -> int | None:
    """The partition's end offset as the consumer last fetched it, or None when not known (yet)."""
    try:
        end = app.consumer.highwater(tp)
    except Exception:  # no consumer yet, or the partition is being revoked: not caught up
        return None
    return None if end is None else int(end)
