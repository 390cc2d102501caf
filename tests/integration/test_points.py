"""Channel points and predictions through the real processors (``esports processors --only polls``).

The acceptance of issue 18's points: over a random sequence of grants and stakes, with the worker killed
(-9) in the middle and requests read twice, every request is decided once, balances never go negative,
the points are conserved at every moment (the sum of all balances and all pots equals the sum of all
grants), each payout equals an independent recomputation, a stake after the lock is refused with a
clear reason, and a worker reading the ledger back has the same balances.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.base import Event
from events.chat import ChatMessageAccepted
from events.codec import EventCodec
from events.points import (
    PointsEarned,
    PointsGranted,
    PointsStaked,
    PredictionCancelled,
    PredictionLocked,
    PredictionOpened,
    PredictionResolved,
    PredictionUpdated,
    StakeRefunded,
    StakeRefused,
    StakeRequested,
    StakesClosed,
    StakeSettled,
)
from events.topics import Topic
from events.viewers import ViewerBeat, ViewerPresenceBatch
from infra.kafka import EventPublisher, TopicNames
from infra.settings import Settings
from schemas import SCHEMAS_DIR
from tests.integration.test_lifecycle import WorkerProcess
from tests.unit.test_points import expected_payouts

pytestmark = pytest.mark.integration

USERS = 12
STAKES = 60
OUTCOMES = ("NAVI", "G2", "FaZe")
SETTLE_TIMEOUT_S = 90.0
CODEC = EventCodec.load(SCHEMAS_DIR)


async def read_partitions(ns: Settings, topic: str) -> dict[int, list[Event]]:
    """Every event of ``topic`` to its end now, per partition in log order."""
    physical = TopicNames(ns.kafka.topic_prefix).physical(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=ns.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(physical, p) for p in sorted(consumer.partitions_for_topic(physical) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: dict[int, list[Event]] = defaultdict(list)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                found[tp.partition] += [CODEC.decode(r.value) for r in records if r.value]
        return found
    finally:
        await consumer.stop()


async def points_ready(
    worker: WorkerProcess, timeout_s: float = 60.0, roles: tuple[str, ...] = ("points", "predictions")
) -> None:
    """Until the workers of ``roles`` own every partition, read back."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        try:
            _, body = await asyncio.to_thread(worker.get, "/health")
            groups = json.loads(body)["kafka"]["partition_workers"]
            if all(len(groups.get(role, {}).get("ready", ())) == 3 for role in roles):
                return
        except (OSError, ValueError, KeyError):
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"points workers not ready in {timeout_s}s\n{worker.log_tail()}")


async def until(what: str, check: Any, ns: Settings, worker: WorkerProcess) -> dict[int, list[Event]]:
    """Read the ledger until ``check(entries)`` holds."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        ledger = await read_partitions(ns, Topic.POINTS_LEDGER)
        entries = [e for part in ledger.values() for e in part]
        if check(entries):
            return ledger
        assert time.monotonic() < deadline, f"{what}: not in {SETTLE_TIMEOUT_S}s\n{worker.log_tail()}"
        await asyncio.sleep(0.5)


@pytest.mark.timeout(300)
async def test_points_are_conserved_and_paid_exactly_across_a_worker_kill(
    namespace: Settings, tmp_path: Path
) -> None:
    seed = int(os.environ.get("TEST_POINTS_SEED", random.randrange(1 << 30)))
    print(f"\nTEST_POINTS_SEED={seed}")
    rng = random.Random(seed)
    codec = CODEC
    run = uuid.uuid4().hex[:6]
    users = [f"u{i}-{run}" for i in range(USERS)]
    win, void, nobody = (f"{name}-{run}" for name in ("win", "void", "nobody"))
    streams = {win: f"s1-{run}", void: f"s1-{run}", nobody: f"s2-{run}"}
    locks_at = datetime.now(UTC) + timedelta(minutes=10)
    worker = WorkerProcess(
        namespace,
        tmp_path / "faust",
        tmp_path / "worker.log",
        args=["--only", "polls"],
        ESPORTS_PROCESSORS__SESSION_TIMEOUT_S="6",
    )
    grants = [
        PointsEarned(user_id=u, amount=rng.randrange(100, 1500), reason="watch", grant_id=f"g{k}-{u}")
        for u in users
        for k in range(2)
    ]
    again = [
        PointsEarned(user_id=g.user_id, amount=g.amount, reason="watch", grant_id=g.grant_id)
        for g in grants[:5]
    ]

    def stake(prediction: str) -> StakeRequested:
        outcomes = 2 if prediction == nobody else 3  # nobody backs the outcome that wins
        return StakeRequested(
            user_id=rng.choice(users),
            prediction_id=prediction,
            stream_id=streams[prediction],
            outcome=rng.randrange(outcomes),
            amount=rng.choice([rng.randrange(1, 400), rng.randrange(400, 2000)]),
            locks_at=locks_at,
        )

    stakes = [stake(rng.choice([win, void, nobody])) for _ in range(STAKES)]
    worker.start()
    try:
        async with EventPublisher(namespace.kafka, codec, producer="tests.points") as publisher:
            await points_ready(worker)
            for prediction in (win, void, nobody):
                await publisher.publish(
                    PredictionOpened(
                        prediction_id=prediction,
                        stream_id=streams[prediction],
                        channel_id="c1",
                        title="Who takes map 3?",
                        outcomes=OUTCOMES,
                        locks_at=locks_at,
                        opened_by="owner",
                    )
                )
            await publisher.publish_many([*grants, *again])
            half = STAKES // 2
            for chunk in range(0, half, 5):
                await publisher.publish_many(stakes[chunk : chunk + 5])
                await asyncio.sleep(0.05)
            worker.kill()  # -9 in the middle of the stakes: what it decided and did not commit comes again
            await publisher.publish_many([*stakes[half:], *stakes[:3]])  # and three requests sent twice
            worker.start()
            await points_ready(worker)
            request_ids = {str(s.event_id) for s in stakes}
            await until(
                "every stake decided",
                lambda es: request_ids <= {e.causation_id for e in es},
                namespace,
                worker,
            )

            await publisher.publish(
                PredictionLocked(prediction_id=win, stream_id=streams[win], locked_by="owner")
            )
            await until(
                "the lock on every partition",
                lambda es: len({e.marked_partition for e in es if isinstance(e, StakesClosed)}) == 3,
                namespace,
                worker,
            )
            richest = max(users, key=lambda u: sum(g.amount for g in grants if g.user_id == u))
            late = StakeRequested(
                user_id=richest,
                prediction_id=win,
                stream_id=streams[win],
                outcome=0,
                amount=1,
                locks_at=locks_at,
            )
            expired = StakeRequested(
                user_id=richest,
                prediction_id=void,
                stream_id=streams[void],
                outcome=0,
                amount=1,
                locks_at=datetime.now(UTC) - timedelta(seconds=1),
            )
            await publisher.publish_many([late, expired])
            backed = sorted({s.outcome for s in stakes if s.prediction_id == win})
            winning = rng.choice(backed) if backed else 0
            await publisher.publish_many(
                [
                    PredictionResolved(
                        prediction_id=win, stream_id=streams[win], outcome=winning, resolved_by="o"
                    ),
                    PredictionCancelled(prediction_id=void, stream_id=streams[void], cancelled_by="o"),
                    PredictionResolved(
                        prediction_id=nobody, stream_id=streams[nobody], outcome=2, resolved_by="o"
                    ),
                ]
            )
            odds = await _settled(namespace, {win, void, nobody}, worker)
            ledger = await read_partitions(namespace, Topic.POINTS_LEDGER)

            _check(ledger, grants, [*stakes, late, expired], {win: winning, void: None, nobody: 2})
            refusal = {e.causation_id: e for part in ledger.values() for e in part}
            for refused in (late, expired):
                entry = refusal[str(refused.event_id)]
                assert isinstance(entry, StakeRefused) and "locked" in entry.reason, entry
            assert odds[win].status == "resolved" and odds[win].winning_outcome == winning
            assert odds[void].status == "cancelled"

            # A worker reading the ledger back has the same balances: one more point each shows them.
            final = _balances(ledger)
            worker.kill()
            worker.start()
            await points_ready(worker)
            bonus = [PointsEarned(user_id=u, amount=1, reason="chat", grant_id=f"bonus-{u}") for u in users]
            await publisher.publish_many(bonus)
            after = await until(
                "the bonus granted",
                lambda es: {e.grant_id for e in es if isinstance(e, PointsGranted)}
                >= {b.grant_id for b in bonus},
                namespace,
                worker,
            )
            read_back = {
                e.user_id: e.balance
                for part in after.values()
                for e in part
                if isinstance(e, PointsGranted) and e.grant_id.startswith("bonus-")
            }
            assert read_back == {u: final.get(u, 0) + 1 for u in users}
    finally:
        worker.kill()


async def _settled(
    ns: Settings, predictions: set[str], worker: WorkerProcess
) -> dict[str, PredictionUpdated]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        updates = await read_partitions(ns, Topic.PREDICTIONS_ODDS)
        latest = {
            e.prediction_id: e for part in updates.values() for e in part if isinstance(e, PredictionUpdated)
        }
        if all(p in latest and latest[p].settled for p in predictions):
            return latest
        assert time.monotonic() < deadline, f"not settled: {latest}\n{worker.log_tail()}"
        await asyncio.sleep(0.5)


def _balances(ledger: dict[int, list[Event]]) -> dict[str, int]:
    balances: dict[str, int] = {}
    for part in ledger.values():
        for entry in part:
            if hasattr(entry, "balance"):
                balances[entry.user_id] = entry.balance
    return balances


def _check(
    ledger: dict[int, list[Event]],
    grants: list[PointsEarned],
    stakes: list[StakeRequested],
    results: dict[str, int | None],
) -> None:
    entries = [e for part in ledger.values() for e in part]
    # Every request decided once; every earning granted once, whatever was read twice.
    decided = Counter(e.causation_id for e in entries if isinstance(e, PointsStaked | StakeRefused))
    assert decided == Counter({str(s.event_id): 1 for s in stakes})
    granted = Counter(e.grant_id for e in entries if isinstance(e, PointsGranted))
    assert granted == Counter({g.grant_id: 1 for g in grants})

    # Each partition's entries carry the running balance, never negative; a refusal for points says so.
    running: dict[str, int] = defaultdict(int)
    staked: dict[tuple[str, str], tuple[int, int]] = {}
    for part in ledger.values():
        for e in part:
            if isinstance(e, PointsGranted):
                running[e.user_id] += e.amount
            elif isinstance(e, PointsStaked):
                running[e.user_id] -= e.amount
                outcome, before = staked.get((e.prediction_id, e.user_id), (e.outcome, 0))
                assert outcome == e.outcome
                staked[(e.prediction_id, e.user_id)] = (outcome, before + e.amount)
            elif isinstance(e, StakeSettled):
                running[e.user_id] += e.payout
            elif isinstance(e, StakeRefunded):
                running[e.user_id] += e.amount
            elif isinstance(e, StakeRefused) and e.reason.startswith("not enough points"):
                assert e.amount > running[e.user_id]
            if hasattr(e, "balance"):
                assert e.balance == running[e.user_id] >= 0, e

    # Conserved at every moment: in time order, balances + pots == grants after each entry.
    balances, pots, total = 0, Counter[str](), 0
    for e in sorted(entries, key=lambda e: e.occurred_at):
        if isinstance(e, PointsGranted):
            balances, total = balances + e.amount, total + e.amount
        elif isinstance(e, PointsStaked):
            balances, pots[e.prediction_id] = balances - e.amount, pots[e.prediction_id] + e.amount
        elif isinstance(e, StakeSettled):
            balances, pots[e.prediction_id] = balances + e.payout, pots[e.prediction_id] - e.payout
        elif isinstance(e, StakeRefunded):
            balances, pots[e.prediction_id] = balances + e.amount, pots[e.prediction_id] - e.amount
        assert balances + sum(pots.values()) == total
        assert all(v >= 0 for v in pots.values()), (e, pots)
    assert not +pots, f"pots not emptied: {pots}"  # every stake is out

    # Each stake settled once, as an independent recomputation of the rule says.
    for prediction, winning in results.items():
        pot = {user: s for (p, user), s in staked.items() if p == prediction}
        shares = None if winning is None else expected_payouts(pot, winning)
        settled = [
            e
            for e in entries
            if isinstance(e, StakeSettled | StakeRefunded) and e.prediction_id == prediction
        ]
        assert Counter(e.user_id for e in settled) == Counter(pot.keys()), prediction
        for e in settled:
            if shares is None:
                assert isinstance(e, StakeRefunded) and e.amount == pot[e.user_id][1], e
            else:
                assert isinstance(e, StakeSettled) and e.payout == shares[e.user_id], (e, shares)


@pytest.mark.timeout(180)
async def test_watching_and_chatting_earn_once_from_what_the_log_saw(
    namespace: Settings, tmp_path: Path
) -> None:
    """Watching earns per window seen in 4 of its 5 fifths (once, however many tabs), chatting once per
    window; a worker restarted re-reads its window and grants nothing twice."""
    run = uuid.uuid4().hex[:6]
    stream = f"s-{run}"
    a, b, c, d = (f"{name}-{run}" for name in "abcd")
    worker = WorkerProcess(
        namespace,
        tmp_path / "faust",
        tmp_path / "worker.log",
        args=["--only", "polls"],
        ESPORTS_PROCESSORS__SESSION_TIMEOUT_S="6",
        ESPORTS_POINTS__WATCH_WINDOW_S="5",
        ESPORTS_POINTS__WATCH_POINTS="10",
        ESPORTS_POINTS__CHAT_POINTS="5",
    )
    now = datetime.now(UTC)
    start = now - timedelta(milliseconds=int(now.timestamp() * 1000) % 5000) - timedelta(seconds=5)

    def beat(user: str | None, session: str, at_s: float) -> ViewerPresenceBatch:
        return ViewerPresenceBatch(
            occurred_at=start + timedelta(seconds=at_s),
            shard_key=session,
            edge_id="edge-1",
            beats=(ViewerBeat(stream_id=stream, session_id=session, user_id=user),),
        )

    watched = [
        *(beat(a, f"sa-{run}", t) for t in (0.1, 1.1, 2.1, 4.5)),  # four fifths: earns
        *(beat(b, f"sb-{run}", t) for t in (0.1, 1.1, 1.9, 2.2)),  # three fifths: nothing
        *(beat(c, f"sc1-{run}", t) for t in (0.2, 1.2, 2.2, 3.2)),  # two tabs, both four fifths:
        *(beat(c, f"sc2-{run}", t) for t in (0.3, 1.3, 3.3, 4.3)),  # earns once
        *(beat(None, f"guest-{run}", t) for t in (0.1, 1.1, 2.1, 3.1, 4.1)),  # not signed in
    ]

    def said(user: str) -> ChatMessageAccepted:
        return ChatMessageAccepted(
            message_id=uuid.uuid4().hex, stream_id=stream, user_id=user, display_name=user, text="gg"
        )

    worker.start()
    try:
        async with EventPublisher(namespace.kafka, CODEC, producer="tests.points") as publisher:
            await points_ready(worker, roles=("points", "points-watch", "points-chat"))
            await publisher.publish_many([*watched, said(a), said(a), said(b)])
            wanted = {("watch", a), ("watch", c), ("chat", a), ("chat", b)}
            await until("the earnings", lambda es: wanted <= _grants(es), namespace, worker)
            worker.kill()  # the next worker re-reads the last two windows: nothing is granted twice
            worker.start()
            await points_ready(worker, roles=("points", "points-watch", "points-chat"))
            await publisher.publish(said(d))
            ledger = await until("d's earning", lambda es: ("chat", d) in _grants(es), namespace, worker)
        granted = Counter(
            (e.reason, e.user_id, e.amount)
            for part in ledger.values()
            for e in part
            if isinstance(e, PointsGranted)
        )
        assert granted == Counter(
            {
                ("watch", a, 10): 1,
                ("watch", c, 10): 1,
                ("chat", a, 5): 1,
                ("chat", b, 5): 1,
                ("chat", d, 5): 1,
            }
        )
    finally:
        worker.kill()


def _grants(entries: list[Event]) -> set[tuple[str, str]]:
    return {(e.reason, e.user_id) for e in entries if isinstance(e, PointsGranted)}
