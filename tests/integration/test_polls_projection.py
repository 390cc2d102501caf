"""The pg.polls projector on a real PostgreSQL schema: the same rows whichever topic is applied first.

``polls`` and ``polls.tallies`` are two topics read by one consumer, so a tally can be applied before
its PollOpened and a final tally before the PollClosed that caused it. Every interleaving of the two
topics (each in its own log order) must give the same tables; a batch applied twice changes nothing;
a refused open (no tally) never becomes a poll.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.base import Event
from events.polls import PollClosed, PollOpened, PollTallyUpdated, PollVoteCast
from infra.kafka import ConsumedEvent, Position
from infra.settings import Settings
from projections.polls import polls_projector
from tests.integration.projections_support import read_model, unique_schema

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def logs() -> tuple[list[Event], list[Event]]:
    """What the edge/API wrote to ``polls`` and what the agent decided on ``polls.tallies``."""
    requests: list[Event] = [
        PollOpened(
            poll_id="p1",
            stream_id="s1",
            question="Who wins?",
            options=("a", "b"),
            opened_by="owner",
            occurred_at=at(0),
        ),
        PollOpened(  # a viewer's: the agent refused it, no tally follows
            poll_id="p2",
            stream_id="s1",
            question="Rigged?",
            options=("y", "n"),
            opened_by="troll",
            occurred_at=at(1),
        ),
        PollVoteCast(poll_id="p1", stream_id="s1", user_id="u1", option=1, occurred_at=at(2)),
        PollClosed(poll_id="*", stream_id="s1", closed_by="troll", occurred_at=at(3)),  # refused
        PollOpened(
            poll_id="p3",
            stream_id="s1",
            question="MVP?",
            options=("x", "y", "z"),
            opened_by="mod",
            closes_at=at(60),
            occurred_at=at(4),
        ),
        PollClosed(poll_id="*", stream_id="s1", closed_by="owner", occurred_at=at(5)),  # closes p1 (and p3)
    ]
    tallies: list[Event] = [
        tally("p1", (0, 0), at(0.1)),
        tally("p1", (0, 1), at(2.1)),
        tally("p3", (0, 0, 0), at(4.1)),
        tally("p1", (0, 1), at(5), final=True),  # stamped with the close's time
        tally("p3", (0, 0, 0), at(5), final=True),
        tally("p1", (0, 1), at(2.1)),  # a running tally re-published after an agent restart
    ]
    return requests, tallies


def tally(poll: str, counts: tuple[int, ...], when: datetime, *, final: bool = False) -> PollTallyUpdated:
    return PollTallyUpdated(
        poll_id=poll, stream_id="s1", counts=counts, total=sum(counts), final=final, occurred_at=when
    )


def consumed(topic: str, events: list[Event]) -> list[ConsumedEvent]:
    return [ConsumedEvent(e, Position(topic, 0, i), b"s1", [], 0) for i, e in enumerate(events)]


def interleavings(a: list[Any], b: list[Any], limit: int) -> list[list[Any]]:
    """Up to ``limit`` merges of ``a`` and ``b`` keeping each one's order (both extremes included)."""
    merges = []
    for slots in itertools.islice(itertools.combinations(range(len(a) + len(b)), len(a)), limit):
        chosen, ia, ib, merged = set(slots), iter(a), iter(b), []
        for i in range(len(a) + len(b)):
            merged.append(next(ia) if i in chosen else next(ib))
        merges.append(merged)
    return [a + b, b + a, *merges]


async def project(settings: Settings, batches: list[list[ConsumedEvent]]) -> dict[str, list[tuple[Any, ...]]]:
    schema = unique_schema()
    async with read_model(settings, schema) as pool:
        projector = polls_projector(pool, schema=schema)
        for batch in batches:
            await projector.store(batch)
        async with pool.connection() as conn:
            polls = await (
                await conn.execute(
                    "SELECT poll_id, stream_id, question, options, opened_by, opened_at, closes_at,"
                    " closed_at, closed_by, counts, total, final FROM polls ORDER BY poll_id"
                )
            ).fetchall()
            requests = await (
                await conn.execute(
                    "SELECT kind, poll_id, actor, requested_at FROM poll_requests ORDER BY requested_at"
                )
            ).fetchall()
    return {"polls": polls, "poll_requests": requests}


async def test_every_order_of_the_two_topics_gives_the_same_polls(settings: Settings) -> None:
    requests, tallies = logs()
    a, b = consumed("polls", requests), consumed("polls.tallies", tallies)
    expected = await project(settings, [a, b])
    assert expected["polls"] == [
        ("p1", "s1", "Who wins?", ["a", "b"], "owner", at(0), None, at(5), "owner", [0, 1], 1, True),
        ("p3", "s1", "MVP?", ["x", "y", "z"], "mod", at(4), at(60), at(5), "owner", [0, 0, 0], 0, True),
    ]
    assert [r[:3] for r in expected["poll_requests"]] == [
        ("open", "p1", "owner"),
        ("open", "p2", "troll"),
        ("close", "*", "troll"),
        ("open", "p3", "mod"),
        ("close", "*", "owner"),
    ]
    for order in interleavings(a, b, limit=12):
        one_by_one = [[record] for record in order]  # every record its own batch: the worst order
        assert await project(settings, one_by_one) == expected
    assert await project(settings, [a + b, a + b, b]) == expected  # batches delivered again


async def test_a_poll_is_open_until_its_final_tally(settings: Settings) -> None:
    requests, tallies = logs()
    result = await project(
        settings, [consumed("polls", requests[:3]), consumed("polls.tallies", tallies[:2])]
    )
    assert result["polls"] == [
        ("p1", "s1", "Who wins?", ["a", "b"], "owner", at(0), None, None, None, [0, 1], 1, False)
    ]
