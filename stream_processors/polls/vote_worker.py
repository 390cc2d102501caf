"""The vote worker: tallies the votes of the ``polls.votes`` partitions it owns.

A :class:`~stream_processors.partition_worker.PartitionWorker`: beside the Faust app, in its own
consumer group :data:`~stream_processors.topology.VOTES_GROUP`, never on Faust's fetcher. It keeps a
:class:`~stream_processors.polls.votes.PartitionVotes` per owned partition and, every
:data:`REPORT_EVERY_S`, publishes the partial tallies that changed and the finals of the polls whose
end-of-votes marker it read, one :class:`~stream_processors.polls.votes.VoteReport` per merge
partition, to the internal topic the poll agent merges (:mod:`stream_processors.polls.agent`).

Which polls there are, with their options and deadline, comes from the whole ``polls`` topic
(:class:`PollDirectory`), and which are over from the final tallies on ``polls.tallies``: a
taken-over partition is re-read from the opening of its oldest poll not over (state is never stored).

The votes of ``polls`` (PollVoteCast, keyed by stream: written by earlier edges, or by an older edge
during an upgrade) are re-keyed onto ``polls.votes`` by the poll agent, which reads them in order with
the closes of their polls, so they always land before their poll's end-of-votes markers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mode import Service

from events.base import Event
from events.codec import EventCodec
from events.polls import PollOpened, PollTallyUpdated, PollVoted, PollVotingClosed
from events.topics import Topic
from infra.kafka import partition_of_key
from infra.settings import KafkaSettings, Settings
from stream_processors.partition_worker import PartitionWorker, Record, Report
from stream_processors.polls.board import epoch_ms
from stream_processors.polls.votes import PartitionVotes, PollInfo, VoteReport
from stream_processors.runtime import WholeTopicReader
from stream_processors.topology import POLL_PARTIALS, POLLS_SOURCE, VOTES_GROUP, VOTES_SOURCE

__all__ = ["REPORT_EVERY_S", "PollDirectory", "VoteWorker"]

REPORT_EVERY_S = 0.25  # partial tallies this often (on change): the running tally's 250 ms
REBUILD_SLACK_MS = 60_000  # a taken-over partition is re-read from this long before its oldest poll


class PollDirectory(WholeTopicReader):
    """Every poll opened (``polls``) and which are over (a final tally on ``polls.tallies``)."""

    def __init__(self, kafka: KafkaSettings, codec: EventCodec, **kwargs: Any) -> None:
        super().__init__(kafka, codec, [POLLS_SOURCE, Topic.POLLS_TALLIES], "polls", **kwargs)
        self.polls: dict[str, PollInfo] = {}
        self.over: set[str] = set()

    def apply(self, event: Event) -> None:
        if isinstance(event, PollOpened) and event.poll_id not in self.polls:
            closes = None if event.closes_at is None else epoch_ms(event.closes_at)
            info = PollInfo(event.stream_id, len(event.options), epoch_ms(event.occurred_at), closes)
            self.polls[event.poll_id] = info
        elif isinstance(event, PollTallyUpdated) and event.final:
            self.over.add(event.poll_id)

    def oldest_open_ms(self) -> int | None:
        opened = [info.opened_ms for poll, info in self.polls.items() if poll not in self.over]
        return min(opened) if opened else None

    def summary(self) -> str:
        return f"{len(self.polls)} polls, {len(self.polls) - len(self.over)} not over"


class VoteWorker(PartitionWorker[PartitionVotes]):
    """Owns some partitions of ``polls.votes``, keeps their votes, reports partial tallies."""

    role = "votes"
    group = VOTES_GROUP
    source = VOTES_SOURCE  # the votes of `polls` are re-keyed by the poll agent, in order with the closes
    every_s = REPORT_EVERY_S

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self._partials = self.names.physical(POLL_PARTIALS)
        self.directory = PollDirectory(settings.kafka, self._codec)

    def on_init_dependencies(self) -> list[Service]:
        return [self.directory]  # read to the end of `polls` before this worker

    def new_state(self) -> PartitionVotes:
        return PartitionVotes(self.directory.polls)

    def rebuild_from_ms(self) -> int:
        now = int(time.time() * 1000)
        return min(self.directory.oldest_open_ms() or now, now) - REBUILD_SLACK_MS

    async def absorb(self, partition: int, state: PartitionVotes, records: Sequence[Record]) -> None:
        for record in records:
            event = await self.decode(record)
            if isinstance(event, PollVoted):
                state.vote(
                    event.poll_id, event.user_id, event.option, epoch_ms(event.occurred_at), record.offset
                )
                self._metrics.votes += 1
            elif isinstance(event, PollVotingClosed):
                state.close(event.poll_id)

    def report(self, now_ms: int, complete: set[int]) -> list[Report]:
        polls = self.directory.polls
        reports: list[Report] = []
        for partition, state in self.owned.items():
            if not self.ready(partition):
                continue
            every = partition in complete
            running = state.running() if every else state.changes()
            over = self.directory.over  # their final tally is out: the merge has no use for them
            finals = {poll: tally for poll, tally in state.finals(every=every).items() if poll not in over}
            if not running and not finals:
                continue
            grouped: dict[int, VoteReport] = {}
            for final, tallies in ((False, running), (True, finals)):
                for poll_id, tally in tallies.items():
                    stream_id = polls[poll_id].stream_id
                    merge = partition_of_key(stream_id.encode(), self._merge_partitions)
                    report = grouped.setdefault(
                        merge, VoteReport(partition, self.source_partitions, {}, {}, {})
                    )
                    (report.finals if final else report.running)[poll_id] = tally
                    report.streams[poll_id] = stream_id
            key = str(partition).encode()  # which vote partition reports (placed by partition, not key)
            reports.extend((self._partials, merge, key, report.encode()) for merge, report in grouped.items())
        return reports
