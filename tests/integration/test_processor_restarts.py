"""Nothing acknowledged is lost or decided twice while the processors worker is killed and restarted.

Issue 12's scenario, repeated: chat, heartbeats and votes flow through a real edge node into Kafka while
the Faust worker (a subprocess, as `esports processors` runs it) is killed with SIGKILL and started
again, :data:`CYCLES` times, at moments spread over its life: while it waits to join the group
(start-up), right after it got its partitions (recovery, the seek to the committed offsets) and
while it is working through a backlog. Then the flows stop, the last worker catches up, and a
checker reads the topics:

- every chat message the edge acknowledged is in ``chat.sent`` and has exactly one decision in
  ``chat.messages`` (one record, one decision: accepted, rejected or held);
- the poll's last tally equals a recount of the votes in ``polls.votes`` (each voter's last vote);
- the stream's last viewer count equals the sessions still sending heartbeats;
- the worker's ``esports_processor_skipped_records_total`` stayed at zero (read before each kill).

``TEST_RESTART_CYCLES`` sets the cycles (the long form in the issue note ran more).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from events.base import Event
from events.chat import ChatMessageAccepted, ChatMessageHeld, ChatMessageRejected, ChatMessageSent
from events.codec import EventCodec
from events.polls import PollOpened, PollTallyUpdated, PollVoted
from events.streams import StreamCreated
from events.viewers import ViewerCountChanged
from infra.kafka import EventPublisher, TopicAdmin, TopicNames
from infra.settings import Settings
from stream_processors.topology import internal_topics
from tests.integration.projections_support import partitions_of
from tests.integration.test_edge import token
from tests.integration.test_edge_support import Client, edge_settings, running_node
from tests.integration.test_lifecycle import WorkerProcess

pytestmark = pytest.mark.integration

CYCLES = int(os.environ.get("TEST_RESTART_CYCLES", "10"))  # the chaos suite kills workers too
SESSION_TIMEOUT_S = 6  # the broker's group.min.session.timeout.ms: a killed member is dropped soonest
CHATTERS = 4
VIEWERS = 6  # each subscribes, sends heartbeats and votes
OPTIONS = ("NAVI", "G2", "Vitality")
CHAT_EVERY_S = 0.25  # per chatter: 16 messages/s in all, well below the per-user rate limit
VOTE_EVERY_S = 0.5  # per viewer (a vote replaces the viewer's earlier one)
HEARTBEAT_EVERY_S = 2.0
SETTLE_TIMEOUT_S = 120.0
DECISIONS = (ChatMessageAccepted, ChatMessageRejected, ChatMessageHeld)


@dataclass
class Acknowledged:
    """What the edge acknowledged: chat message ids and vote event ids, in ack order."""

    chat: list[str] = field(default_factory=list)
    votes: list[str] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # error frames (none expected)


@pytest.mark.timeout(120 + 15 * CYCLES)  # a cycle takes ~7 s: the session timeout and a restart
async def test_nothing_acknowledged_is_lost_or_decided_twice_across_worker_kills(
    namespace: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    settings = edge_settings(namespace)
    stream, poll, owner = f"s-{uuid.uuid4().hex[:8]}", f"p-{uuid.uuid4().hex[:8]}", "owner-1"
    worker = WorkerProcess(namespace, tmp_path / "faust", tmp_path / "worker.log")
    worker.env["ESPORTS_PROCESSORS__SESSION_TIMEOUT_S"] = str(SESSION_TIMEOUT_S)
    worker.env["PYTHONUNBUFFERED"] = "1"
    async with EventPublisher(namespace.kafka, codec, producer="tests.restarts") as publisher:
        await publisher.publish(
            StreamCreated(stream_id=stream, channel_id="c-1", owner_id=owner, title="Final")
        )
        await publisher.publish(
            PollOpened(poll_id=poll, stream_id=stream, question="Map 3?", options=OPTIONS, opened_by=owner)
        )
    worker.start()
    try:
        await worker.wait_healthy(60)
        async with (
            running_node(settings, codec) as node,
            flowing(node.port, settings, stream, poll) as (acked, stop),
        ):
            skipped = 0
            for cycle in range(CYCLES):
                skipped += await _kill_at_some_moment(worker, cycle)
            stop.set()  # chat and votes stop; heartbeats go on until the check is done
            await worker.wait_healthy(60)
            await _check(namespace, codec, stream, poll, acked, worker)
            skipped += _skipped(worker)
        print(f"\n{CYCLES} kill -9 cycles: {len(acked.chat)} chat messages, {len(acked.votes)} votes acked")
        assert skipped == 0, f"the worker reported {skipped} skipped records\n{worker.log_tail()}"
    finally:
        worker.kill()
        async with TopicAdmin(namespace.kafka) as admin:
            names = TopicNames(namespace.kafka.topic_prefix)
            await admin.delete([names.physical(t.name) for t in internal_topics(1)])


@contextlib.asynccontextmanager
async def flowing(
    port: int, settings: Settings, stream: str, poll: str
) -> AsyncIterator[tuple[Acknowledged, asyncio.Event]]:
    """Chatters chat and viewers vote until the event is set; viewers send heartbeats until the end."""
    acked, stop = Acknowledged(), asyncio.Event()
    chatters = [
        await Client.open(port, additional_headers=_auth(settings, f"chat-{i}")) for i in range(CHATTERS)
    ]
    viewers = [
        await Client.open(port, additional_headers=_auth(settings, f"view-{i}")) for i in range(VIEWERS)
    ]
    for viewer in viewers:
        await viewer.subscribe(stream)
    beats = [asyncio.create_task(_heartbeats(v, stream)) for v in viewers]
    flows = [asyncio.create_task(_chat(c, stream, acked, stop)) for c in chatters]
    flows += [asyncio.create_task(_vote(v, stream, poll, acked, stop)) for v in viewers]
    try:
        yield acked, stop
        await asyncio.gather(*flows)  # every send was answered
    finally:
        for task in (*flows, *beats):
            task.cancel()
        await asyncio.gather(*(c.close() for c in (*chatters, *viewers)), return_exceptions=True)


async def _kill_at_some_moment(worker: WorkerProcess, cycle: int) -> int:
    """Kill -9 in one of three phases (by cycle), then start a new worker at once; its skips so far."""
    phase = cycle % 3
    if phase == 0:  # start-up: joining the group (the dead member is still in it)
        await asyncio.sleep(random.uniform(0.2, 3.0))
    elif phase == 1:  # recovery: just assigned, seeking to the committed offsets
        await worker.wait_healthy(60)
        await asyncio.sleep(random.uniform(0.0, 0.5))
    else:  # working: through the backlog the last kills left, then live
        await worker.wait_healthy(60)
        await asyncio.sleep(random.uniform(0.5, 4.0))
    skipped = _skipped(worker)
    worker.kill()
    worker.start()
    return skipped


def _skipped(worker: WorkerProcess) -> int:
    """The worker's skipped-records counter (0 while it cannot answer yet)."""
    try:
        status, text = worker.get("/metrics")
    except OSError:
        return 0
    found = re.findall(r"^esports_processor_skipped_records_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return sum(int(float(n)) for n in found) if status == 200 else 0


async def _chat(client: Client, stream: str, acked: Acknowledged, stop: asyncio.Event) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        nonce = uuid.uuid4().hex
        await client.send(type="chat", stream=stream, text=f"gg {n} {nonce[:6]}", nonce=nonce)
        answer = await client.wait_for(lambda m, nonce=nonce: m.get("nonce") == nonce, timeout_s=30)
        if answer["type"] == "ack":
            acked.chat.append(answer["message_id"])
        else:
            acked.refused.append(answer)
        await asyncio.sleep(CHAT_EVERY_S)


async def _vote(client: Client, stream: str, poll: str, acked: Acknowledged, stop: asyncio.Event) -> None:
    while not stop.is_set():
        nonce = uuid.uuid4().hex
        option = random.randrange(len(OPTIONS))
        await client.send(type="vote", stream=stream, poll=poll, option=option, nonce=nonce)
        answer = await client.wait_for(lambda m, nonce=nonce: m.get("nonce") == nonce, timeout_s=30)
        if answer["type"] == "ack":
            acked.votes.append(answer["event_id"])
        else:
            acked.refused.append(answer)
        await asyncio.sleep(random.uniform(0.5, 1.5) * VOTE_EVERY_S)


async def _heartbeats(client: Client, stream: str) -> None:
    while True:
        await client.send(type="heartbeat", stream=stream)
        await asyncio.sleep(HEARTBEAT_EVERY_S)


def _auth(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(settings, user)}"}


# --- the checker ---------------------------------------------------------------------------------


async def _check(
    ns: Settings, codec: EventCodec, stream: str, poll: str, acked: Acknowledged, worker: WorkerProcess
) -> None:
    assert not acked.refused, acked.refused[:3]
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        log = await read_topics(
            ns, codec, ["chat.sent", "chat.messages", "polls.votes", "polls.tallies", "viewers.counts"]
        )
        problems = _problems(log, stream, poll, acked)
        if not problems or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    assert not problems, "\n".join(problems) + "\n" + worker.log_tail(30)


def _problems(log: dict[str, list[Event]], stream: str, poll: str, acked: Acknowledged) -> list[str]:
    submitted = {e.message_id for e in log["chat.sent"] if isinstance(e, ChatMessageSent)}
    decisions = [e for e in log["chat.messages"] if isinstance(e, DECISIONS)]
    decided = Counter(e.message_id for e in decisions)
    distinct = Counter(m for m, _ in {(e.message_id, e.event_id) for e in decisions})
    missing = [m for m in acked.chat if m not in submitted]
    lost = [m for m in acked.chat if m in submitted and decided[m] == 0]
    twice = [m for m in acked.chat if decided[m] > 1]
    problems = []
    if missing:
        problems.append(f"{len(missing)} acknowledged messages are not in chat.sent: {missing[:5]}")
    if lost or twice:
        problems.append(
            f"of {len(acked.chat)} acknowledged messages {len(lost)} have no decision, {len(twice)} more"
            f" than one, {sum(distinct[m] > 1 for m in twice)} of those different ones"
            f" (first lost {lost[:5]}, first twice {twice[:5]})"
        )
    problems += _tally_problems(log, poll, acked)
    counts = [e for e in log["viewers.counts"] if isinstance(e, ViewerCountChanged) and e.stream_id == stream]
    if not counts or counts[-1].count != VIEWERS:
        problems.append(f"last viewer count {counts[-1].count if counts else None}, {VIEWERS} sessions beat")
    return problems


def _tally_problems(log: dict[str, list[Event]], poll: str, acked: Acknowledged) -> list[str]:
    votes = [e for e in log["polls.votes"] if isinstance(e, PollVoted) and e.poll_id == poll]
    in_log = {str(v.event_id) for v in votes}
    unlogged = [v for v in acked.votes if v not in in_log]
    latest: dict[str, int] = {}
    for vote in votes:  # keyed by voter: a voter's votes are in log order on one partition
        latest[vote.user_id] = vote.option
    recount = [list(latest.values()).count(i) for i in range(len(OPTIONS))]
    tallies = [e for e in log["polls.tallies"] if isinstance(e, PollTallyUpdated) and e.poll_id == poll]
    problems = []
    if unlogged:
        problems.append(f"{len(unlogged)} acknowledged votes are not in polls.votes")
    if not tallies or list(tallies[-1].counts) != recount:
        problems.append(f"last tally {tallies[-1].counts if tallies else None} != recount {recount}")
    return problems


async def read_topics(ns: Settings, codec: EventCodec, topics: list[str]) -> dict[str, list[Event]]:
    """Every event on ``topics`` up to their end offsets now, per topic in log order (per partition)."""
    names = TopicNames(ns.kafka.topic_prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=ns.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, names, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: dict[str, list[Event]] = defaultdict(list)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                found[names.logical(tp.topic)] += [codec.decode(r.value) for r in records if r.value]
        return found
    finally:
        await consumer.stop()
