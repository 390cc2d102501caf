"""The pg.points projector on a real PostgreSQL schema, and over a real Kafka log.

The ledger events are written here as the ledger worker would (its worker is not needed): grants, a
stake, a refusal, a settlement, a refund. The projector must give each user the balance of their
latest entry (which equals the sum of the entries' changes), store each entry once even when it is
delivered again (same event id, new offset: a worker that re-published after a restart), track each
stake until it leaves the pot, and give the same prediction whichever of ``predictions`` and
``predictions.odds`` it applies first. A rebuild (a fresh schema fed the same log) gives the same
tables.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.base import Event
from events.codec import EventCodec
from events.points import (
    PointsGranted,
    PointsStaked,
    PredictionCancelled,
    PredictionLocked,
    PredictionOpened,
    PredictionResolved,
    PredictionUpdated,
    StakeRefunded,
    StakeRefused,
    StakesClosed,
    StakeSettled,
)
from events.topics import Topic
from infra.kafka import ConsumedEvent, EventPublisher, Position
from infra.settings import Settings
from projections.points import points_projector
from tests.integration.projections_support import (
    pg_caught_up,
    read_model,
    redis_space,
    running_service,
    unique_schema,
)
from tests.integration.test_polls_projection import interleavings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
TABLES = {
    "predictions": "SELECT prediction_id, stream_id, channel_id, title, outcomes, locks_at, opened_by,"
    " opened_at, status, winning_outcome, locked_at, locked_by, resolved_at, resolved_by, cancelled_at,"
    " cancelled_by, pools, stakers, settled FROM predictions ORDER BY prediction_id",
    # user_seq orders each user's entries (their log order), the same in every replay.
    "points_ledger": "SELECT event_id, user_id, kind, amount, change, balance, reason, prediction_id,"
    " stream_id, outcome, occurred_at FROM points_ledger ORDER BY user_id, user_seq",
    "points_balances": "SELECT user_id, balance, updated_at FROM points_balances ORDER BY user_id",
    "prediction_stakes": "SELECT prediction_id, user_id, stream_id, outcome, amount, payout, refunded,"
    " staked_at, settled_at FROM prediction_stakes ORDER BY prediction_id, user_id",
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ledger() -> list[Event]:
    """Two viewers: ana wins p1, bo loses it; bo's second stake is refused; p2 is cancelled."""
    return [
        PointsGranted(
            user_id="ana", amount=300, reason="watch", grant_id="g1", balance=300, occurred_at=at(1)
        ),
        PointsGranted(user_id="bo", amount=200, reason="chat", grant_id="g2", balance=200, occurred_at=at(2)),
        PointsStaked(
            user_id="ana",
            prediction_id="p1",
            outcome=0,
            amount=100,
            balance=200,
            occurred_at=at(3),
            stream_id="s1",
        ),
        PointsStaked(
            user_id="bo",
            prediction_id="p1",
            outcome=1,
            amount=150,
            balance=50,
            occurred_at=at(4),
            stream_id="s1",
        ),
        PointsStaked(
            user_id="ana",
            prediction_id="p1",
            outcome=0,
            amount=50,
            balance=150,
            occurred_at=at(5),
            stream_id="s1",
        ),
        StakeRefused(
            user_id="bo",
            prediction_id="p1",
            amount=500,
            reason="not enough points",
            balance=50,
            occurred_at=at(6),
            stream_id="s1",
        ),
        StakesClosed(user_id="k0", prediction_id="p1", marked_partition=0, occurred_at=at(7), stream_id="s1"),
        StakeSettled(
            user_id="ana",
            prediction_id="p1",
            staked=150,
            payout=300,
            balance=450,
            occurred_at=at(8),
            stream_id="s1",
        ),
        StakeSettled(
            user_id="bo",
            prediction_id="p1",
            staked=150,
            payout=0,
            balance=50,
            occurred_at=at(9),
            stream_id="s1",
        ),
        PointsStaked(
            user_id="bo",
            prediction_id="p2",
            outcome=0,
            amount=40,
            balance=10,
            occurred_at=at(10),
            stream_id="s1",
        ),
        StakeRefunded(
            user_id="bo", prediction_id="p2", amount=40, balance=50, occurred_at=at(11), stream_id="s1"
        ),
    ]


def commands() -> list[Event]:
    """What the API wrote to ``predictions``: p1 locked then resolved, p2 cancelled, p3 left open."""
    return [
        opened("p1", 0),
        PredictionLocked(prediction_id="p1", stream_id="s1", locked_by="owner", occurred_at=at(6)),
        PredictionLocked(prediction_id="p1", stream_id="s1", locked_by="mod", occurred_at=at(6.5)),  # no-op
        PredictionResolved(
            prediction_id="p1", stream_id="s1", outcome=0, resolved_by="mod", occurred_at=at(7)
        ),
        PredictionCancelled(
            prediction_id="p1", stream_id="s1", cancelled_by="owner", occurred_at=at(7.5)
        ),  # late
        opened("p2", 9),
        PredictionCancelled(prediction_id="p2", stream_id="s1", cancelled_by="owner", occurred_at=at(10.5)),
        opened("p3", 12),
    ]


def odds() -> list[Event]:
    """What the prediction worker wrote to ``predictions.odds``."""
    return [
        updated("p1", "open", (0, 0), (0, 0), 0.1),
        updated("p1", "open", (100, 150), (1, 1), 4.1),
        updated("p1", "locked", (150, 150), (1, 1), 6.1),
        updated("p1", "resolved", (150, 150), (1, 1), 7.1, winner=0),
        updated("p1", "resolved", (150, 150), (1, 1), 9.1, winner=0, settled=True),
        updated("p2", "open", (40,), (1,), 10.1),
        updated("p2", "cancelled", (40,), (1,), 11.1, settled=True),
    ]


def opened(prediction: str, seconds: float) -> PredictionOpened:
    outcomes = ("yes",) if prediction == "p2" else ("ana's", "bo's")
    return PredictionOpened(
        prediction_id=prediction,
        stream_id="s1",
        channel_id="c1",
        title=f"{prediction}?",
        outcomes=outcomes,
        locks_at=at(seconds + 60),
        opened_by="owner",
        occurred_at=at(seconds),
    )


def updated(
    prediction: str,
    status: str,
    pools: tuple[int, ...],
    stakers: tuple[int, ...],
    seconds: float,
    *,
    winner: int = -1,
    settled: bool = False,
) -> PredictionUpdated:
    return PredictionUpdated(
        prediction_id=prediction,
        stream_id="s1",
        status=status,
        pools=pools,
        stakers=stakers,
        winning_outcome=winner,
        settled=settled,
        occurred_at=at(seconds),
    )


def consumed(topic: str, events: Sequence[Event], first_offset: int = 0) -> list[ConsumedEvent]:
    return [ConsumedEvent(e, Position(topic, 0, first_offset + i), b"k", [], 0) for i, e in enumerate(events)]


async def tables(pool: Any) -> dict[str, list[tuple[Any, ...]]]:
    async with pool.connection() as conn:
        return {name: await (await conn.execute(query)).fetchall() for name, query in TABLES.items()}


async def project(settings: Settings, batches: list[list[ConsumedEvent]]) -> dict[str, list[tuple[Any, ...]]]:
    schema = unique_schema()
    async with read_model(settings, schema) as pool:
        projector = points_projector(pool, schema=schema)
        for batch in batches:
            await projector.store(batch)
        return await tables(pool)


async def test_balances_entries_and_stakes_follow_the_ledger(settings: Settings) -> None:
    rows = await project(settings, [consumed(Topic.POINTS_LEDGER, ledger())])
    assert [(u, b) for u, b, _ in rows["points_balances"]] == [("ana", 450), ("bo", 50)]
    entries = rows["points_ledger"]
    assert len(entries) == len(ledger()) - 1  # StakesClosed is a partition's marker, not a user's entry
    for user, balance, _ in rows["points_balances"]:
        mine = [e for e in entries if e[1] == user]
        assert sum(e[4] for e in mine) == balance  # the sum of the changes is the latest balance
        assert mine[-1][5] == balance
    assert [(e[1], e[2], e[3], e[4], e[6]) for e in entries] == [
        ("ana", "grant", 300, 300, "watch"),
        ("ana", "stake", 100, -100, ""),
        ("ana", "stake", 50, -50, ""),
        ("ana", "settled", 300, 300, "won"),
        ("bo", "grant", 200, 200, "chat"),
        ("bo", "stake", 150, -150, ""),
        ("bo", "refused", 500, 0, "not enough points"),
        ("bo", "settled", 0, 0, "lost"),
        ("bo", "stake", 40, -40, ""),
        ("bo", "refund", 40, 40, "cancelled"),
    ]
    stakes = [
        (p, u, o, a, pay, ref, settled is not None)
        for p, u, _, o, a, pay, ref, _, settled in rows["prediction_stakes"]
    ]
    assert stakes == [
        ("p1", "ana", 0, 150, 300, False, True),
        ("p1", "bo", 1, 150, 0, False, True),
        ("p2", "bo", 0, 40, None, True, True),
    ]


async def test_an_entry_delivered_again_changes_nothing(settings: Settings) -> None:
    events = ledger()
    first = consumed(Topic.POINTS_LEDGER, events)
    once = await project(settings, [first])
    # The same batch again (offsets stored: skipped), then the same events at new offsets (a worker
    # that re-published after a crash: only their event ids tell), one at a time and all at once.
    again = consumed(Topic.POINTS_LEDGER, events, first_offset=len(events))
    later = consumed(Topic.POINTS_LEDGER, events, first_offset=2 * len(events))
    twice = await project(settings, [first, first, *([c] for c in again), later])
    assert twice == once


async def test_either_topic_first_gives_the_same_predictions(settings: Settings) -> None:
    a, b = consumed(Topic.PREDICTIONS, commands()), consumed(Topic.PREDICTIONS_ODDS, odds())
    results = [await project(settings, [[c] for c in order]) for order in interleavings(a, b, limit=8)]
    first = results[0]
    assert all(r["predictions"] == first["predictions"] for r in results)
    by_id = {row[0]: row for row in first["predictions"]}
    columns = TABLES["predictions"].split("SELECT ")[1].split(" FROM")[0].split(", ")
    p1, p2, p3 = ({c: v for c, v in zip(columns, by_id[p], strict=True)} for p in ("p1", "p2", "p3"))
    assert (p1["status"], p1["winning_outcome"], p1["pools"], p1["stakers"], p1["settled"]) == (
        "resolved",
        0,
        [150, 150],
        [1, 1],
        True,
    )
    assert (p1["locked_at"], p1["locked_by"], p1["resolved_by"], p1["cancelled_by"]) == (
        at(6),
        "owner",
        "mod",
        None,
    )
    assert (p2["status"], p2["winning_outcome"], p2["cancelled_by"], p2["settled"]) == (
        "cancelled",
        None,
        "owner",
        True,
    )
    assert (p3["status"], p3["pools"], p3["stakers"], p3["title"]) == ("open", [0, 0], [0, 0], "p3?")


async def test_the_worker_wins_when_it_settled_otherwise(settings: Settings) -> None:
    """A resolve the worker refused (it had read a cancel first): its odds say cancelled, and stay."""
    events = [
        opened("p9", 0),
        PredictionResolved(
            prediction_id="p9", stream_id="s1", outcome=1, resolved_by="mod", occurred_at=at(1)
        ),
    ]
    worker = [updated("p9", "cancelled", (0, 0), (0, 0), 2, settled=True)]
    rows = await project(
        settings, [consumed(Topic.PREDICTIONS, events), consumed(Topic.PREDICTIONS_ODDS, worker)]
    )
    (row,) = rows["predictions"]
    assert (row[8], row[9]) == ("cancelled", None)


async def test_a_rebuild_from_the_log_gives_the_same_tables(namespace: Settings, codec: EventCodec) -> None:
    """The events on real topics, projected by the projector service into one schema, then again into
    a fresh one (what `esports rebuild` does): the same rows, and every balance the sum of its entries."""
    suffix = uuid.uuid4().hex[:6]
    events = [_renamed(e, suffix) for e in [*commands(), *odds(), *ledger()]]
    async with EventPublisher(namespace.kafka, codec, producer="tests") as publisher:
        positions = await publisher.publish_many(events)
    seen = []
    for _ in range(2):
        schema = unique_schema()
        async with read_model(namespace, schema) as pool, redis_space(namespace) as (_, prefix):
            async with running_service(namespace, schema, prefix):
                await pg_caught_up(pool, schema, positions, timeout_s=60)
            seen.append(await tables(pool))
    live, rebuilt = seen
    assert live == rebuilt
    balances = {u: b for u, b, _ in live["points_balances"]}
    assert balances == {f"ana-{suffix}": 450, f"bo-{suffix}": 50}
    assert len(live["points_ledger"]) == 10 and len(live["predictions"]) == 3


def _renamed(event: Event, suffix: str) -> Event:
    """The same event for users of this run only (keys spread them over the partitions)."""
    user = getattr(event, "user_id", None)
    return event if user is None else dataclasses.replace(event, user_id=f"{user}-{suffix}")  # type: ignore[call-arg]
