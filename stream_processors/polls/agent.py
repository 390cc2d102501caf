"""The poll agent: the I/O around :mod:`stream_processors.polls.board`, the authority over polls.

Consumes ``polls`` and ``streams`` (both keyed by ``stream_id``, co-partitioned) and the internal
topic of partial tallies the vote workers publish (:data:`~stream_processors.topology.POLL_PARTIALS`,
on the partition of each poll's stream), in batches; keeps one
:class:`~stream_processors.polls.board.PollBoard` per stream in the ``polls`` table and publishes
:class:`~events.polls.PollTallyUpdated` to ``polls.tallies`` with the idempotent publisher: publish
first, then store the board, then ack (the lifecycle agent's order). A crash between publishing and
storing re-decides the same tallies (same event ids) from the redelivered records; partial tallies
replace each other, so nothing is counted twice.

The votes on ``polls`` itself (PollVoteCast, keyed by stream: earlier edges, or an older edge
during an upgrade) are republished onto ``polls.votes`` as PollVoted (same event id), in log order
and before any marker the same batch writes, so they count exactly as if the edge had keyed them.

``streams`` gives each board its channel and owner (``StreamCreated``); with the moderation agent's
roster (:class:`~stream_processors.moderation.agent.RosterReader`, the ``users`` topic read whole) that
decides who may open and close polls. The edge publishes ``/poll`` and ``/endpoll`` typed in chat
without checking rights, so a refused PollOpened/PollClosed is ignored here, counted
(``esports_poll_ignored_total{reason="not_allowed"}``) and logged with the stream, poll and actor ids.

Closing: when a poll starts closing (an accepted PollClosed, or a tick past its deadline and grace),
the agent writes an end-of-votes marker (:class:`~events.polls.PollVotingClosed`) to every partition
of ``polls.votes`` before storing the board, and again after a restart until the poll is closed
(a partition reads its first). The final tally goes out once every partition's final partial tally is
in. A timer (:data:`TICK_S`) settles the boards of the owned partitions: held-back running tallies,
deadlines, finals. A lock keeps a batch and a tick from interleaving (both read a board, publish,
then store it); a board is stored with the changelog partition of its key (the ``polls`` partition,
same murmur2 hash).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from typing import Any

import faust

from events.base import Event
from events.codec import EventCodec
from events.ids import IdSpace, decision_id
from events.polls import PollTallyUpdated, PollVoteCast, PollVoted, PollVotingClosed
from events.streams import StreamCreated
from events.topics import Topic
from infra.kafka import TopicNames, keys_per_partition, partition_of_key
from stream_processors.metrics import ProcessorMetrics
from stream_processors.moderation.roster import ChatRoster
from stream_processors.polls.board import (
    PRODUCER,
    PollBoard,
    actor_of,
    allowed,
    fold,
    from_epoch_ms,
    merge,
    own,
    settle,
    vote_refused,
)
from stream_processors.polls.votes import VoteReport
from stream_processors.runtime import DecisionPublisher, Processor, register_batched, where
from stream_processors.topology import POLL_PARTIALS, POLLS_SOURCE, POLLS_TABLE

__all__ = ["BATCH_MAX", "BATCH_WITHIN_S", "TICK_S", "PollProcessor", "register_polls"]

log = logging.getLogger(__name__)

TICK_S = 0.25  # held-back tallies go out within ~0.5 s; deadlines are noticed within grace + 0.25 s
BATCH_MAX = 2_000  # votes folded into one board write per stream
BATCH_WITHIN_S = 0.05  # ... or whatever arrived within this long


class PollProcessor(Processor):
    """Decode a batch, fold it into each stream's board, merge partial tallies, settle, publish,
    write markers, then store."""

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
        self._partials = names.physical(POLL_PARTIALS)
        self._marked: set[str] = set()  # polls whose markers this process wrote
        self._lock = asyncio.Lock()  # a batch and a tick each read, publish, then store boards

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        """Process raw records of ``polls``, ``streams`` and the partial tallies."""
        async with self._lock:
            boards: dict[bytes, PollBoard] = {}
            polls: dict[str, list[Event]] = defaultdict(list)
            for message in messages:
                if message.topic == self._partials:
                    self._merge(message, boards)
                elif self._names.logical(message.topic) == Topic.STREAMS:
                    event = self._decode_quietly(message)  # the lifecycle agent dead-letters bad ones
                    if isinstance(event, StreamCreated):
                        key = event.stream_id.encode()
                        boards[key] = own(boards.get(key) or self._board(key), event)
                else:
                    event = await self._decode(message)
                    if event is not None and isinstance(stream_id := getattr(event, "stream_id", None), str):
                        self._metrics.poll_events[event.event_type()] += 1
                        polls[stream_id].append(event)
            legacy: list[PollVoteCast] = []
            for stream_id, events in polls.items():
                key = stream_id.encode()
                board = boards.get(key) or self._board(key)
                self._log_refused(board, events)
                for event in events:  # in log order: a vote after its poll's close is late
                    if isinstance(event, PollVoteCast):
                        if (reason := vote_refused(board, event)) is None:
                            legacy.append(event)
                        else:
                            self._metrics.poll_ignored[reason] += 1
                        continue
                    board, ignored = fold(board, [event], roster=self._roster)
                    self._metrics.poll_ignored.update(ignored)
                boards[key] = board
            if legacy:  # before any marker this batch writes: they were cast before those closes
                await self._retrying("re-keying votes", lambda: self._rekey(legacy))
            for key, board in boards.items():
                await self._settle(key, board, 0)

    async def _rekey(self, votes: list[PollVoteCast]) -> None:
        """The votes of ``polls`` onto ``polls.votes``, keyed by voter, with their event ids."""
        await self._publish_votes(
            [
                PollVoted(
                    event_id=v.event_id,
                    occurred_at=v.occurred_at,
                    producer=v.producer,
                    trace_id=v.trace_id,
                    poll_id=v.poll_id,
                    stream_id=v.stream_id,
                    user_id=v.user_id,
                    option=v.option,
                )
                for v in votes
            ]
        )

    def _merge(self, message: Any, boards: dict[bytes, PollBoard]) -> None:
        try:
            report = VoteReport.decode(message.value)
        except ValueError as e:
            log.error("skipped topic=%s partition=%s offset=%s: %s", *where(message), e)
            return
        for stream_id in set(report.streams.values()):
            key = stream_id.encode()
            boards[key] = merge(boards.get(key) or self._board(key), report)

    def _log_refused(self, board: PollBoard, events: Sequence[Event]) -> None:
        for event in events:
            actor = actor_of(event)
            if actor is not None and not allowed(board, actor, self._roster):
                log.info(
                    "poll %s refused: stream=%s poll=%s actor=%s (not owner, moderator or admin)",
                    event.event_type(),
                    board.stream_id,
                    getattr(event, "poll_id", ""),
                    actor,
                )

    async def tick(self, owned: set[int]) -> None:
        """Settle every stream of the ``owned`` partitions at the wall clock."""
        async with self._lock:
            now_ms = int(time.time() * 1000)
            for key in list(self._table.keys()):
                if partition_of_key(key, self._partitions) in owned:
                    await self._settle(key, self._board(key), now_ms)

    def _board(self, key: bytes) -> PollBoard:
        stored = self._table.get(key)
        return PollBoard(stream_id=key.decode()) if stored is None else PollBoard.from_json(stored)

    async def _settle(self, key: bytes, board: PollBoard, now_ms: int) -> None:
        before = self._table.get(key)
        if any(poll.legacy_votes for poll in board.polls.values()):
            board = await self._migrate(board)
        settled, tallies, closing = settle(board, now_ms)
        if tallies:
            await self._publish_tallies(tallies)
        if unmarked := [poll_id for poll_id in closing if poll_id not in self._marked]:
            await self._retrying("writing end-of-votes markers", lambda: self._mark(settled, unmarked))
            self._marked.update(unmarked)
        stored = settled.to_json()
        if _changed(before, stored):
            # Not table[key] = ...: the tick has no current event to take the partition from.
            self._table.data[key] = stored
            self._table.send_changelog(partition_of_key(key, self._partitions), key, stored)

    async def _migrate(self, board: PollBoard) -> PollBoard:
        """Republish the votes an open poll counted in the first layout onto ``polls.votes`` (ids
        derived from the poll and voter: republished after a crash, they are the same votes)."""
        votes = [
            PollVoted(
                event_id=decision_id(IdSpace.MIGRATED_VOTE, poll.poll_id, user),
                occurred_at=from_epoch_ms(board.clock_ms),  # before the poll's deadline: it was open
                producer=PRODUCER,
                poll_id=poll.poll_id,
                stream_id=board.stream_id,
                user_id=user,
                option=option,
            )
            for poll in board.polls.values()
            for user, option in poll.legacy_votes.items()
        ]
        await self._retrying("republishing the votes of the first layout", lambda: self._publish_votes(votes))
        log.info("stream %s: %s votes of open polls moved to polls.votes", board.stream_id, len(votes))
        polls = {pid: replace(poll, legacy_votes={}) for pid, poll in board.polls.items()}
        return replace(board, polls=polls)

    async def _publish_votes(self, votes: list[PollVoted]) -> None:
        await self._publishing.publisher.publish_many(votes)

    async def _mark(self, board: PollBoard, poll_ids: list[str]) -> None:
        """An end-of-votes marker for each poll to every partition of ``polls.votes``."""
        publisher = self._publishing.publisher
        keys = keys_per_partition("end-of-votes", await publisher.partitions_of(PollVotingClosed))
        markers = [
            PollVotingClosed(
                producer=PRODUCER,
                poll_id=poll_id,
                stream_id=board.stream_id,
                user_id=key,
                closed_at=from_epoch_ms(board.polls[poll_id].closing_at_ms),
            )
            for poll_id in poll_ids
            for key in keys
        ]
        await publisher.publish_many(markers)
        for poll_id in poll_ids:
            log.info("poll closing: stream=%s poll=%s markers=%s", board.stream_id, poll_id, len(keys))

    async def _publish_tallies(self, tallies: list[PollTallyUpdated]) -> None:
        await self._retrying(
            "publishing poll tallies", lambda: self._publishing.publisher.publish_many(tallies)
        )
        for tally in tallies:
            self._metrics.poll_tallies["final" if tally.final else "running"] += 1
            if tally.final:
                self._marked.discard(tally.poll_id)
            log.debug(
                "tally stream=%s poll=%s counts=%s final=%s",
                tally.stream_id,
                tally.poll_id,
                tally.counts,
                tally.final,
            )


@cache
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
    source = app.topic(
        source_name, names.physical(Topic.STREAMS), names.physical(POLL_PARTIALS), partitions=partitions
    )
    table = app.Table(POLLS_TABLE, key_type=bytes, partitions=partitions)
    processor = PollProcessor(codec, publishing, table, metrics, partitions, roster, names)

    async def settle(tps: list[Any]) -> None:
        """Publish held-back tallies, close polls at their deadline and on their finals."""
        if owned := {tp.partition for tp in tps}:
            await processor.tick(owned)

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
