"""Scenario 7 of ``bench/hot_stream.py``: one stream's chat through moderation, decided by the chat workers.

A helper module (``_``-prefixed: ``esports bench`` does not run it); the scenario is described in the
bench's docstring.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _hot_stream_support import (
    NotExact,
    Row,
    Sample,
    Sampler,
    Workers,
    namespace,
    progress,
    raw_consume,
    row,
)
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.base import Event
from events.chat import (
    ChatChannelSynced,
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageSent,
    ChatMessageSubmitted,
    ChatSettingsChanged,
)
from events.codec import EventCodec
from events.streams import StreamCreated
from infra.kafka import EventPublisher, Position, TopicNames, client_options
from infra.settings import Settings
from stream_processors.moderation.agent import chat_limits
from stream_processors.moderation.decisions import decide
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.state import ChatChannel

SOURCE = "chat.sent"
TICK_S = 0.01  # the paced producer submits a batch every 10 ms
VIEWERS = 20_000
SPAMMERS = 4
SPAM_SHARE = 0.04  # of the messages: ~20 msg/s per spammer at 2,000 msg/s, over the rate limit in a second
REPEAT_SHARE = 0.15  # a viewer sends their previous message again (a duplicate within the window)
OWNER = "owner"
TERM = "badword"  # blocked by the owner's ``/block badword`` before the load
ORDINARY = ("gg", "what a play", "LETS GO", "pog", "ez", "nice clutch", "that flick though", "gg wp")
BLOCKED = ("free skins badword", "badword")  # rejected: blocked_term
HELD = "you are a b.a.d.w.o.r.d"  # the term obfuscated: held for a moderator
BLOCKED_SHARE, HELD_SHARE = 0.10, 0.10  # of the texts that are not repeats; the rest are ORDINARY
GRACE_S = 30.0  # after the load, for the last decisions
SETTLE_S = 1.0  # after the last decision: anything published twice would land by now
SYNC_TIMEOUT_S = 60.0  # for the owner's /block to be decided and its rules to reach every partition
GOAL_P99_MS = 250.0
GOAL_RATE = 2_000
FETCH_RECORDS = 500  # per fetch of the chat.messages reader
DECISIONS = (ChatMessageAccepted, ChatMessageRejected, ChatMessageHeld)
Outcome = tuple[str, str]  # (event type, rejection reason or "")


def outcome(decision: Event) -> Outcome:
    return decision.event_type(), str(getattr(decision, "reason", ""))


# --- the chat -------------------------------------------------------------------------------------


@dataclass
class Chatter:
    """Builds one stream's messages as viewers send them: ~VIEWERS viewers, SPAMMERS spammers."""

    stream_id: str
    rng: random.Random = field(default_factory=lambda: random.Random(17))
    last: dict[str, str] = field(default_factory=dict)  # user -> their previous text
    count: int = 0

    def messages(self, n: int) -> list[ChatMessageSent]:
        """``n`` messages, built now: their ``occurred_at`` is the submit time."""
        built = []
        for _ in range(n):
            rng = self.rng
            if rng.random() < SPAM_SHARE:
                user = f"spammer-{rng.randrange(SPAMMERS)}"
            else:
                user = f"viewer-{rng.randrange(VIEWERS)}"
            text = self.last.get(user) if rng.random() < REPEAT_SHARE else None
            if text is None:
                texts = _texts(rng.random())
                text = rng.choice(texts) + ("" if rng.random() < 0.5 else f" {rng.randrange(10)}")
            self.last[user] = text
            self.count += 1
            built.append(
                ChatMessageSent(
                    message_id=f"m-{self.stream_id}-{self.count}",
                    stream_id=self.stream_id,
                    user_id=user,
                    display_name=user,
                    text=text,
                    edge_id="edge-bench",
                )
            )
        return built


def _texts(draw: float) -> tuple[str, ...]:
    if draw < BLOCKED_SHARE:
        return BLOCKED
    if draw < BLOCKED_SHARE + HELD_SHARE:
        return (HELD,)
    return ORDINARY


@dataclass
class Submitted:
    """What the paced producer sent, in send order, with where each landed; epoch s of the window."""

    messages: list[ChatMessageSent]
    positions: list[Position]
    started: float
    ended: float
    late_s: float  # the latest a tick started after its schedule

    @property
    def rate(self) -> float:
        return len(self.messages) / (self.ended - self.started)


async def submit(publisher: EventPublisher, chatter: Chatter, rate: int, seconds: float) -> Submitted:
    """Every TICK_S, the messages due by then (rate x TICK_S a tick), built just before publishing;
    each tick is scheduled from the start (a late one does not delay the next); acks are awaited apart,
    so they never hold the schedule."""
    ticks = round(seconds / TICK_S)
    sent: list[ChatMessageSent] = []
    sends: list[asyncio.Task[list[Position]]] = []
    start_mono, started = time.monotonic(), time.time()
    late = 0.0
    for tick in range(ticks):
        delay = start_mono + tick * TICK_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        batch = chatter.messages(round(rate * (tick + 1) * TICK_S) - len(sent))
        sent.extend(batch)
        sends.append(asyncio.create_task(publisher.publish_many(batch)))
    ended = time.time() + max(0.0, start_mono + ticks * TICK_S - time.monotonic())  # the last tick's end
    positions = [p for landed in await asyncio.gather(*sends) for p in landed]
    return Submitted(sent, positions, started, ended, late)


def in_send_order(submitted: Submitted) -> None:
    """Each partition of chat.sent holds the messages in the order they were built (the order the
    whole-stream decide() is fed): concurrent batches never overtook one another."""
    last: dict[int, int] = {}
    for message, position in zip(submitted.messages, submitted.positions, strict=True):
        if position.offset < last.get(position.partition, -1):
            raise NotExact(
                f"the bench's producer reordered chat.sent partition {position.partition} at "
                f"{message.message_id}: the whole-stream reference would be fed another order"
            )
        last[position.partition] = position.offset


# --- decisions ------------------------------------------------------------------------------------


@dataclass
class Decisions:
    """What ``chat.messages`` showed: each message's decisions with their arrival (epoch s), the event
    ids seen twice, the streams' settings changes."""

    by_message: dict[str, list[tuple[float, Outcome, str]]] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    twice: list[str] = field(default_factory=list)
    settings: dict[str, list[ChatSettingsChanged]] = field(default_factory=dict)

    async def collect(self, consumer: AIOKafkaConsumer, codec: EventCodec) -> None:
        """Each fetch is timed as it returns, before its records are decoded."""
        while True:
            fetched = await consumer.getmany(timeout_ms=20, max_records=FETCH_RECORDS)
            now = time.time()
            for record in (r for records in fetched.values() for r in records):
                event = codec.decode(record.value) if record.value is not None else None
                if isinstance(event, ChatSettingsChanged):
                    self.settings.setdefault(event.stream_id, []).append(event)
                if not isinstance(event, DECISIONS):
                    continue
                event_id = str(event.event_id)
                if event_id in self.event_ids:
                    self.twice.append(event_id)
                    continue
                self.event_ids.add(event_id)
                self.by_message.setdefault(event.message_id, []).append((now, outcome(event), event_id))

    async def blocked(self, stream_id: str, block_id: str, timeout_s: float) -> None:
        """Until a ChatSettingsChanged of ``stream_id`` blocks TERM."""
        deadline = time.monotonic() + timeout_s
        while not any(TERM in s.blocked_terms for s in self.settings.get(stream_id, [])):
            if time.monotonic() > deadline or block_id in self.by_message:
                got = self.by_message.get(block_id, [])
                raise NotExact(
                    f"stream {stream_id}: no ChatSettingsChanged blocking {TERM!r} in {timeout_s:.0f}s "
                    f"(the /block was decided {[o for _, o, _ in got] or 'never'})"
                )
            await asyncio.sleep(0.05)

    def missing(self, message_ids: Sequence[str]) -> list[str]:
        return [m for m in message_ids if m not in self.by_message]

    async def complete(self, message_ids: Sequence[str], deadline_s: float) -> list[str]:
        """Until every message has a decision or the deadline (epoch s) passes; those without."""
        missing = self.missing(message_ids)
        while missing and time.time() < deadline_s:
            await asyncio.sleep(0.1)
            missing = self.missing(missing)
        return missing


async def synced_everywhere(
    settings: Settings, codec: EventCodec, stream_id: str, partitions: int, blocked: bool
) -> None:
    """Until every partition of chat.sent holds the stream's channel with its owner (and TERM blocked,
    if ``blocked``): the markers the stream's moderation writes after deciding StreamCreated (and
    the ``/block``), so that no message of the load precedes them."""
    topic = TopicNames(settings.kafka.topic_prefix).physical(SOURCE)
    consumer = AIOKafkaConsumer(**client_options(settings.kafka, "bench-sync"), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        synced: set[int] = set()
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while len(synced) < partitions:
            if time.monotonic() > deadline:
                what = "rules" if blocked else "channel"
                raise NotExact(f"stream {stream_id}: its {what} reached only partitions {sorted(synced)}")
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    event = codec.decode(record.value) if record.value is not None else None
                    if (
                        isinstance(event, ChatChannelSynced)
                        and event.stream_id == stream_id
                        and event.owner_id == OWNER
                        and (TERM in event.blocked_terms or not blocked)
                    ):
                        synced.add(tp.partition)
    finally:
        await consumer.stop()


# --- the reference --------------------------------------------------------------------------------


def whole_stream(
    settings: Settings, setup: Sequence[Event], sent: Sequence[ChatMessageSent]
) -> dict[str, Outcome]:
    """What the whole-stream decide() (the unit table) decides for every message, fed in send order.

    Fed one stream state per sender (each after ``setup``): with unique-chat off and the rules set
    before the load, a message's decision depends only on its sender's earlier messages, and one
    whole-stream state would cost time in the number of recent senders per message (it prunes every
    sender's history on each), ~2.5 min for 60,000 messages from 20,000 senders."""
    roster, limits = ChatRoster(), chat_limits(settings.chat)
    start = ChatChannel(stream_id=sent[0].stream_id)
    for cause in setup:
        start, _ = decide(start, cause, cause.occurred_at, roster=roster, limits=limits)
    states: dict[str, ChatChannel] = {}
    expected: dict[str, Outcome] = {}
    for cause in sent:
        state, decisions = decide(
            states.get(cause.user_id, start), cause, cause.occurred_at, roster=roster, limits=limits
        )
        states[cause.user_id] = state
        expected.update((d.message_id, outcome(d)) for d in decisions if isinstance(d, DECISIONS))
    return expected


def compared(
    sent: Sequence[ChatMessageSent], decisions: Decisions, expected: dict[str, Outcome]
) -> tuple[list[str], Counter[Outcome]]:
    """The messages decided otherwise than ``expected`` (or more than once), described; the outcomes."""
    wrong: list[str] = []
    outcomes = Counter[Outcome]()
    for message in sent:
        got = [o for _, o, _ in decisions.by_message.get(message.message_id, [])]
        outcomes.update(got[:1])
        want = expected.get(message.message_id)
        if got != [want]:
            wrong.append(
                f"{message.message_id} from {message.user_id} {message.text!r} at "
                f"{message.occurred_at:%H:%M:%S.%f}: decided {got}, decide() says {want}"
            )
    return wrong, outcomes


# --- the workers -----------------------------------------------------------------------------------


def _tails(workers: Workers) -> str:
    return "\n".join(
        f"--- worker {n} (exit {w.process.poll() if w.process else 'killed'}) log tail:\n{w.log_tail(30)}"
        for n, w in enumerate(workers.processes)
    )


# --- one run --------------------------------------------------------------------------------------


@dataclass
class ChatBench:
    """One scenario's chat workers (``esports processors --only moderation``) and what they decide."""

    workers: Workers
    decisions: Decisions
    publisher: EventPublisher
    reading: asyncio.Task[None] | None = None

    async def stop_reading(self) -> None:
        if self.reading is not None:
            self.reading.cancel()
            await asyncio.gather(self.reading, return_exceptions=True)
            self.reading = None


@asynccontextmanager
async def chat_bench(base: Settings, codec: EventCodec, partitions: int) -> AsyncIterator[ChatBench]:
    """Fresh topics, a ``chat.messages`` reader and a sampler; every worker killed on exit."""
    async with namespace(base, partitions) as settings:
        with tempfile.TemporaryDirectory(prefix="bench-hot-chat-") as data:
            async with EventPublisher(settings.kafka, codec, producer="bench.hot_stream") as publisher:
                output = TopicNames(settings.kafka.topic_prefix).physical("chat.messages")
                reader = AIOKafkaConsumer(
                    **client_options(settings.kafka, "bench-decisions"),
                    group_id=None,
                    enable_auto_commit=False,
                )
                sampler = Sampler('esports_chat_events_total{type="ChatMessageSent"}')
                only = ["--only", "moderation"]
                workers = Workers(settings, codec, Path(data), sampler, "chat", SOURCE, only)
                await reader.start()
                here = ChatBench(workers, Decisions(), publisher)
                try:
                    tps = [TopicPartition(output, p) for p in range(partitions)]
                    reader.assign(tps)
                    await reader.seek_to_beginning(*tps)
                    here.reading = asyncio.create_task(here.decisions.collect(reader, codec))
                    yield here
                finally:
                    await here.stop_reading()
                    sampler.stop()
                    workers.kill()
                    await reader.stop()


async def one_chat(
    base: Settings, codec: EventCodec, partitions: int, count: int, rate: int, seconds: float
) -> dict[str, float]:
    """The stream and the owner's ``/block`` published; ``count`` chat workers split ``chat.sent``
    and the rules reach every partition; ``rate`` msg/s for ``seconds``; every decision's latency and
    its check against the whole-stream decide(); then the baselines on the same records."""
    tag = uuid.uuid4().hex[:8]
    stream_id = f"hot-{tag}"
    created = StreamCreated(stream_id=stream_id, channel_id="c", owner_id=OWNER, title=f"Final {tag}")
    block = ChatMessageSubmitted(
        message_id=f"m-block-{tag}",
        stream_id=stream_id,
        user_id=OWNER,
        display_name="Owner",
        text=f"/block {TERM}",
        edge_id="edge-bench",
    )
    async with chat_bench(base, codec, partitions) as here:
        settings = here.workers.settings
        await here.publisher.publish(created)
        here.workers.start(count)
        await here.workers.ready(partitions)  # its "chat: took" lines, written once restored
        # The command only once the stream's moderation knows the owner: it reads streams and
        # chat.submitted in no set order, and a /block read first would be refused (not the owner's).
        await synced_everywhere(settings, codec, stream_id, partitions, blocked=False)
        await here.publisher.publish(block)
        await here.decisions.blocked(stream_id, block.message_id, SYNC_TIMEOUT_S)
        await synced_everywhere(settings, codec, stream_id, partitions, blocked=True)
        progress(f"{count} chat worker(s): rules on every partition, {rate:,} msg/s for {seconds:g} s")
        # The bench's own cyclic collector off while it paces and times: its full collections
        # (~90 ms with the messages and decisions held) would delay ticks, sends and arrivals.
        gc.collect()
        gc.disable()
        try:
            submitted = await submit(here.publisher, Chatter(stream_id), rate, seconds)
            ids = [m.message_id for m in submitted.messages]
            missing = await here.decisions.complete(ids, submitted.ended + GRACE_S)
        finally:
            gc.enable()
        if submitted.late_s > 0.05:
            progress(f"warning: a tick of the paced producer started {1000 * submitted.late_s:.0f} ms late")
        in_send_order(submitted)
        if missing:
            raise NotExact(
                f"{len(missing):,} of {len(ids):,} chat messages without a decision {GRACE_S:.0f}s after "
                f"the load (first {missing[:5]})\n{_tails(here.workers)}"
            )
        await asyncio.sleep(SETTLE_S)
        await here.stop_reading()
        decisions, tails = here.decisions, _tails(here.workers)
        figures = load_figures(submitted, decisions)
        figures.update(worker_figures(here.workers.sampler.samples, submitted))
        here.workers.kill()  # the baselines read alone
        figures.update(await baselines(settings, codec, partitions, len(ids)))
    if decisions.twice:
        raise NotExact(f"decision event ids on chat.messages twice: {decisions.twice[:5]}\n{tails}")
    # Once nothing else runs (the topics are gone): minutes at 60,000 messages from 20,000 senders.
    progress(f"checking {len(ids):,} decisions against the whole-stream decide()")
    expected = whole_stream(settings, [created, block], submitted.messages)
    wrong, outcomes = compared(submitted.messages, decisions, expected)
    shown = ", ".join(f"{k}{'/' + r if r else ''} {n:,}" for (k, r), n in outcomes.most_common())
    progress(f"decisions: {shown}")
    if wrong:
        raise NotExact(
            f"{len(wrong):,} of {len(ids):,} chat messages decided otherwise than the whole-stream "
            f"decide():\n  " + "\n  ".join(wrong[:10]) + f"\n{tails}"
        )
    figures["mismatches"] = float(len(wrong))
    return figures


def load_figures(submitted: Submitted, decisions: Decisions) -> dict[str, float]:
    """Latency submit -> chat.messages (each message's first decision), decided and accepted per
    second of the load window."""
    latencies, decided, accepted = [], 0, 0
    for message in submitted.messages:
        at, (kind, _reason), _id = decisions.by_message[message.message_id][0]
        latencies.append(1000 * (at - message.occurred_at.timestamp()))
        if submitted.started <= at <= submitted.ended:
            decided += 1
            accepted += kind == ChatMessageAccepted.event_type()
    window = submitted.ended - submitted.started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "submit_rate": submitted.rate,
        "decided_s": decided / window,
        "accepted_s": accepted / window,
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
        "max_ms": max(latencies),
    }


def worker_figures(samples: dict[int, list[Sample]], submitted: Submitted) -> dict[str, float]:
    """Each worker's CPU busy over the load window (mean), and messages read more than once (a
    rebalance re-reads a partition from its last checkpoint)."""
    busy = []
    for taken in samples.values():
        during = [s for s in taken if submitted.started <= s[0] <= submitted.ended]
        if len(during) >= 2:
            busy.append((during[-1][2] - during[0][2]) / (during[-1][0] - during[0][0]))
    read = sum(taken[-1][1] for taken in samples.values() if taken)
    return {
        "cpu_busy": statistics.mean(busy) if busy else float("nan"),
        "reread": float(max(0, read - len(submitted.messages))),
    }


async def baselines(
    settings: Settings, codec: EventCodec, partitions: int, messages: int
) -> dict[str, float]:
    topic = TopicNames(settings.kafka.topic_prefix).physical(SOURCE)
    raw_s, _ = await raw_consume(settings, topic, partitions, messages)
    decode_s, _ = await raw_consume(settings, topic, partitions, messages, codec)
    return {"raw_msgs": messages / raw_s, "decode_msgs": messages / decode_s}


# --- rows of the table ----------------------------------------------------------------------------


def chat_rows(rate: int, seconds: float, one: dict[str, float], two: dict[str, float]) -> list[Row]:
    if not one:
        return []
    raw = one["raw_msgs"]
    rows = [
        (
            f"1 stream's chat, {rate:,} msg/s for {seconds:g} s, ~{VIEWERS:,} viewers + {SPAMMERS} spammers:",
            "",
            "",
            "",
        ),
        row("submitted (paced, a batch every 10 ms)", one["submit_rate"], "msg/s"),
        row(f"raw aiokafka consume, {round(rate * seconds):,} messages", raw, "msg/s"),
        row("  + EventCodec.decode in the same loop", one["decode_msgs"], "msg/s", raw),
    ]
    for count, figures in ((1, one), (2, two)):
        if not figures:
            continue
        workers = f"{count} chat worker{'s' if count > 1 else ''}"
        base = figures["raw_msgs"]
        rows += [
            row(f"{workers}, decided (load window)", figures["decided_s"], "msg/s", base),
            row("  accepted (load window)", figures["accepted_s"], "msg/s", base),
            row("  submit -> chat.messages p50", figures["p50_ms"], "ms"),
            row("  submit -> chat.messages p99", figures["p99_ms"], "ms"),
            row("  worker CPU busy during the load (mean)", 100 * figures["cpu_busy"], "%"),
            row("  decisions differing from decide() (must be 0)", figures["mismatches"], "messages"),
        ]
    return rows


def print_goal(rate: int, one: dict[str, float], two: dict[str, float]) -> None:
    if not one:
        return
    runs = [(1, one), *([(2, two)] if two else [])]
    worst = max(f["p99_ms"] for _, f in runs)
    achieved = min(f["submit_rate"] for _, f in runs)
    shown = ", ".join(f"{n} worker{'s' if n > 1 else ''} {f['p99_ms']:,.0f} ms" for n, f in runs)
    if rate < GOAL_RATE:
        verdict = f"not measured (--chat-rate {rate:,} < {GOAL_RATE:,})"
    else:
        verdict = "met" if worst <= GOAL_P99_MS and achieved >= 0.98 * GOAL_RATE else "NOT met"
    print(
        f"  moderation goal p99 <= {GOAL_P99_MS:.0f} ms at {GOAL_RATE:,} msg/s: p99 {shown} at "
        f"{achieved:,.0f} msg/s submitted -> {verdict}; every decision equal to the whole-stream decide()"
    )
    rereads = [f.get("reread", 0.0) for _, f in runs]
    if any(rereads):
        print(f"  note: a rebalance during the chat load re-read {max(rereads):,.0f} messages")
