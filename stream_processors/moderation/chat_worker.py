"""The chat worker: decides viewers' messages per sender, on the partitions of ``chat.sent`` it owns.

A partition worker (its own consumer group, :data:`CHAT_GROUP`, beside the Faust app): several
processes share ``chat.sent``'s partitions, so one stream's chat is decided on every partition at
once. Per record: decode, :meth:`SenderPartition.apply`, and per fetch publish the decisions to
``chat.messages`` (keyed by stream: the stream's order is the order they land there) and the forwards
of the unique-chat check back to ``chat.sent``, retried until the broker takes them.

State per key, stored: every ``every_s`` the keys that changed are written to the compacted
:data:`CHAT_STATE` topic (partition *p* holds the keys of ``chat.sent`` partition *p*), *then* the
partition's position is committed. A worker taking a partition over reads its state back, resumes at
the committed position, and for the records between that and the end it found (which its previous
owner may have decided after its last checkpoint) reads ``chat.messages`` back, as the Faust agents do
(:class:`~stream_processors.redelivery.PublishedDecisions`), so that nothing is decided twice; each
slice also remembers the causes it decided. Nothing acknowledged is lost: a message's position is
committed only after its decisions are on the log and its state is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition

from events.base import Event
from events.chat import ChatActionRouted
from events.codec import EventCodec
from infra.kafka import partition_of_key
from infra.settings import Settings
from stream_processors.metrics import ProcessorMetrics
from stream_processors.moderation.chat_rules import ChatLimits
from stream_processors.moderation.decisions import decision_ids
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.senders import UNIQUE_CHECK, Forward, SenderPartition
from stream_processors.partition_worker import PartitionWorker, Record, Report
from stream_processors.read_back import read_back
from stream_processors.redelivery import PublishedDecisions
from stream_processors.runtime import DecisionPublisher, retrying
from stream_processors.topology import CHAT_GROUP, CHAT_SOURCE, CHAT_STATE, MODERATION_OUTPUT

__all__ = ["ChatWorker"]

log = logging.getLogger(__name__)

EXPIRE_EVERY = 240  # checkpoints between two sweeps of idle slices (a minute at every_s = 0.25)


class ChatWorker(PartitionWorker[SenderPartition]):
    """Owns partitions of ``chat.sent``: decides their messages, stores their state per key."""

    role = "chat"
    group = CHAT_GROUP
    source = CHAT_SOURCE
    every_s = 0.25  # checkpoint (state written, then positions committed): small ones, short pauses

    def __init__(
        self,
        settings: Settings,
        codec: EventCodec,
        publishing: DecisionPublisher,
        metrics: ProcessorMetrics,
        merge_partitions: int,
        *,
        roster: ChatRoster,
        limits: ChatLimits,
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, codec, publishing, metrics, merge_partitions, **kwargs)
        self._roster = roster
        self._limits = limits
        self._state_topic = self.names.physical(CHAT_STATE)
        self._output = self.names.physical(MODERATION_OUTPUT)
        self._output_partitions = 0
        self._generation = 0
        self._uncertain: dict[int, int] = {}  # partition -> the end found on taking it over
        self._published = PublishedDecisions(
            settings.kafka, codec, self._output, lambda: self._generation, agent="chat"
        )
        self._checkpoints = 0
        self._decided: list[Event] = []  # decided in this fetch, published after it
        self._forwards: list[Forward] = []

    async def on_start(self) -> None:
        # Before the loop starts (in super().on_start()): a taken-over partition's first record
        # reads chat.messages back on the partition of its stream, which needs the count.
        self._output_partitions = await self._publishing.publisher.partitions(self._output)
        await super().on_start()

    async def on_stop(self) -> None:
        await super().on_stop()
        await self._published.stop()

    # -- taking partitions over ---------------------------------------------------------------------

    async def taken(self, assigned: set[TopicPartition]) -> None:
        """Each new partition: its state read back, resumed at its committed position."""
        consumer = self._consumer
        if consumer is None or not assigned:
            return
        self._generation += 1
        self._rebalances += 1
        ends = await consumer.end_offsets(list(assigned))
        states = {tp.partition: SenderPartition(self._roster, self._limits) for tp in assigned}
        keys = await self._restore(states)
        for tp in assigned:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
            self._owned[tp.partition] = states[tp.partition]
            self._uncertain[tp.partition] = ends[tp]
            log.info(
                "chat partition %s: %s keys restored, resuming at %s (end %s)",
                tp.partition,
                keys[tp.partition],
                committed,
                ends[tp],
            )
        log.info("%s: took %s", self.role, sorted((tp.topic, tp.partition) for tp in assigned))

    def given_up(self, revoked: set[TopicPartition]) -> None:
        super().given_up(revoked)
        for tp in revoked:
            self._uncertain.pop(tp.partition, None)

    async def _restore(self, states: dict[int, SenderPartition]) -> dict[int, int]:
        """Read the stored keys of the partitions of ``states`` into them; records read per partition."""

        async def fold(partition: int, records: Sequence[Record]) -> None:
            for record in records:
                states[partition].load(record.key, record.value)

        return await read_back(self._kafka, "chat-restore", self._state_topic, list(states), fold)

    # -- deciding -----------------------------------------------------------------------------------

    async def absorb(self, partition: int, state: SenderPartition, records: Sequence[Record]) -> None:
        decisions: list[Event] = []
        forwards: list[Forward] = []
        uncertain = self._uncertain.get(partition, -1)
        fetched_in = self.rebalances
        for record in records:
            event = await self.decode(record)
            if event is None:
                continue
            self._metrics.chat_events[event.event_type()] += 1
            check = next((v for k, v in record.headers if k == UNIQUE_CHECK), None)
            decided = state.apply(event, check)
            if decided.decisions and record.offset < uncertain:
                seen = await retrying(
                    "reading chat.messages back",
                    lambda: self._decided_before(event, decided.decisions),  # noqa: B023 (awaited here)
                    self._metrics,
                )
                if self.rebalances != fetched_in:
                    # A rebalance ran during the read-back: the partition was sought back to its
                    # commit with a new state, or has another owner. The stale fetch is dropped
                    # (see _absorb): its end would also clear the new generation's uncertain mark.
                    return
                if seen:
                    continue
            decisions.extend(decided.decisions)
            forwards.extend(decided.forwards)
        if partition in self._uncertain and records and records[-1].offset + 1 >= uncertain:
            del self._uncertain[partition]
        self._decided.extend(decisions)
        self._forwards.extend(forwards)

    async def _absorb(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        """A fetch of every owned partition decided, then published at once (one round trip)."""
        fetched_in = self.rebalances
        await super()._absorb(fetched)
        if self.rebalances != fetched_in:
            # Reassigned while deciding it (aiokafka runs the rebalance beside this loop): decided on
            # states that are gone, and every partition kept was sought back to its commit, so the
            # whole fetch comes round again. Publishing it would put decisions beside the new
            # owner's, after its read-back of what was already decided.
            log.info("%s: a fetch dropped, partitions reassigned while deciding it", self.role)
            self._decided, self._forwards = [], []
            return
        if self._decided or self._forwards:
            await self._publish(self._decided, self._forwards)
            self._decided, self._forwards = [], []

    async def _decided_before(self, cause: Event, decisions: Sequence[Event]) -> bool:
        """Whether the previous owner of the partition published decisions on ``cause`` already."""
        cause_id = cause.causation_id if isinstance(cause, ChatActionRouted) else str(cause.event_id)
        stream = getattr(decisions[0], "stream_id", "")
        partition = partition_of_key(stream.encode(), self._output_partitions)
        since_ms = int(cause.occurred_at.timestamp() * 1000)
        return await self._published.seen(partition, since_ms, decision_ids(cause_id))

    async def _publish(self, decisions: list[Event], forwards: list[Forward]) -> None:
        publisher = self._publishing.publisher

        async def publish() -> None:
            await asyncio.gather(
                publisher.publish_many(decisions),
                *(
                    publisher.publish_raw(
                        self._source,
                        self._codec.encode(f.message),
                        key=f.key.encode(),
                        headers=[*self._codec.headers(f.message), (UNIQUE_CHECK, f.verdict)],
                    )
                    for f in forwards
                ),
            )

        # A fetch already folded into the state is published late, never dropped (its position is
        # committed only after).
        await retrying("publishing chat decisions", publish, self._metrics)
        for decision in decisions:
            self._metrics.chat_decisions[decision.event_type()] += 1

    # -- checkpoints --------------------------------------------------------------------------------

    def report(self, now_ms: int, complete: set[int]) -> list[Report]:
        """The keys changed since the last checkpoint, to the state topic (then positions are committed)."""
        self._checkpoints += 1
        sweep = self._checkpoints % EXPIRE_EVERY == 0
        reports: list[Report] = []
        for partition, state in self._owned.items():
            if sweep:
                state.expire()
            reports.extend((self._state_topic, partition, key, value) for key, value in state.changes())
        return reports

    def reported(self, complete: set[int]) -> None:
        for state in self._owned.values():
            state.written()
