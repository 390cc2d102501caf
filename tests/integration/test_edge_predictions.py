"""Live odds through the edge, against the real Kafka: `PredictionUpdated` on ``predictions.odds``
reaches a stream's websocket subscribers as `prediction` frames, in log order, and a viewer who
joins later (or a node started afterwards, from its warm start) gets each prediction's latest state.
The winner comes apart, in a `prediction_result` frame, and never to a viewer who subscribed with
``spoilers: hide`` (spoiler-free mode).

Simulated: the prediction worker (the lead's ``stream_processors.points``). The test publishes the
PredictionUpdated events it would, with the project's publisher, so it does not depend on the worker.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from events.codec import EventCodec
from events.points import PredictionUpdated
from infra.kafka import EventPublisher, Position
from infra.settings import Settings
from tests.integration.test_api_support import eventually
from tests.integration.test_edge_support import Client, edge_settings, running_node

pytestmark = pytest.mark.integration


def ids() -> tuple[str, str]:
    return f"s-{uuid.uuid4().hex[:8]}", f"p-{uuid.uuid4().hex[:8]}"


def updated(stream: str, prediction: str, pools: tuple[int, ...], **fields: Any) -> PredictionUpdated:
    stakers = tuple(1 if pool else 0 for pool in pools)
    state: dict[str, Any] = {"status": "open", "stakers": stakers, **fields}
    return PredictionUpdated(prediction_id=prediction, stream_id=stream, pools=pools, **state)


def pos(position: Position) -> str:
    return f"{position.partition}:{position.offset}"


def odds(client: Client, prediction: str) -> list[tuple[str, list[int]]]:
    return [(m["status"], m["pools"]) for m in client.of("prediction") if m["prediction"] == prediction]


def winners(client: Client, prediction: str) -> list[int]:
    return [m["winning_outcome"] for m in client.of("prediction_result") if m["prediction"] == prediction]


async def test_two_viewers_see_the_odds_move_and_a_late_one_gets_the_latest(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace)
    stream, prediction = ids()
    other_stream, other_prediction = ids()
    async with (
        running_node(settings, codec) as a,
        running_node(settings, codec) as b,
        EventPublisher(settings.kafka, codec, producer="tests") as publisher,
    ):
        viewers = [await Client.open(a.port), await Client.open(b.port)]
        for viewer in viewers:
            await viewer.subscribe(stream)
        spoiler_free = await Client.open(a.port)
        await spoiler_free.subscribe(stream, spoilers="hide")
        states = [
            updated(stream, prediction, (0, 0)),
            updated(stream, prediction, (500, 0)),
            updated(stream, prediction, (500, 1500)),
            updated(stream, prediction, (500, 1500), status="locked"),
            updated(stream, prediction, (500, 1500), status="resolved", winning_outcome=1),
        ]
        await publisher.publish(updated(other_stream, other_prediction, (9, 9)))
        positions = [await publisher.publish(state) for state in states]
        last = positions[-1]
        for viewer in [*viewers, spoiler_free]:
            done = await viewer.wait_for(lambda m: m["type"] == "prediction" and m["pos"] == pos(last))
            assert done == {
                "type": "prediction",
                "stream": stream,
                "pos": pos(last),
                "prediction": prediction,
                "status": "resolved",
                "pools": [500, 1500],
                "stakers": [1, 1],
                "total": 2000,
                "settled": False,
            }
            # Every change, once, in the order of the log; nothing of the other stream.
            assert odds(viewer, prediction) == [
                ("open", [0, 0]),
                ("open", [500, 0]),
                ("open", [500, 1500]),
                ("locked", [500, 1500]),
                ("resolved", [500, 1500]),
            ]
            assert [m["pos"] for m in viewer.of("prediction")] == [pos(p) for p in positions]
            assert odds(viewer, other_prediction) == []
        for viewer in viewers:  # the winner, once, for who shows results
            result = await viewer.wait_for(lambda m: m["type"] == "prediction_result")
            assert result == {
                "type": "prediction_result",
                "stream": stream,
                "pos": pos(last),
                "prediction": prediction,
                "winning_outcome": 1,
            }

        # A viewer joining now gets the latest state alone, before the subscribed marker.
        late = await Client.open(b.port)
        await late.subscribe(stream)
        assert [m["type"] for m in late.messages[:3]] == ["prediction", "state", "prediction_result"]
        assert odds(late, prediction) == [("resolved", [500, 1500])]
        assert winners(late, prediction) == [1]

        settled = await publisher.publish(
            updated(stream, prediction, (500, 1500), status="resolved", winning_outcome=1, settled=True)
        )
        for viewer in [*viewers, late, spoiler_free]:
            frame = await viewer.wait_for(lambda m: m["type"] == "prediction" and m["pos"] == pos(settled))
            assert frame["settled"] is True
        for viewer in [*viewers, late]:  # the settled frame re-states the result (node a's written too)
            await viewer.wait_for(lambda m: m["type"] == "prediction_result" and m["pos"] == pos(settled))
        # Spoiler-free: every frame of the odds, never the winner (nor on a subscribe of its own later).
        late_spoiler_free = await Client.open(b.port)
        await late_spoiler_free.subscribe(stream, spoilers="hide")
        for viewer in (spoiler_free, late_spoiler_free):
            assert not viewer.of("prediction_result")
            assert not [m for m in viewer.messages if "winning_outcome" in m]
        assert winners(late, prediction) == [1, 1]
        for viewer in [*viewers, late, spoiler_free, late_spoiler_free]:
            await viewer.close()


async def test_a_node_started_later_sends_each_predictions_latest_state_from_its_warm_start(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace)
    stream, first = ids()
    _, second = ids()
    async with EventPublisher(settings.kafka, codec, producer="tests") as publisher:
        await publisher.publish(updated(stream, first, (10, 0)))
        await publisher.publish(updated(stream, first, (10, 40), status="cancelled", settled=True))
        await publisher.publish(updated(stream, second, (0, 0, 0)))
        newest = await publisher.publish(updated(stream, second, (0, 25, 0)))
        async with running_node(settings, codec) as node:

            async def read_back() -> bool:  # ready means listening; the warm start is read after
                return node.metrics.consumed >= 4

            await eventually(read_back)
            viewer = await Client.open(node.port)
            marker = await viewer.subscribe(stream)
            shown = viewer.messages[: viewer.messages.index(marker)]
            assert [(m["prediction"], m["status"], m["pools"]) for m in shown] == [
                (first, "cancelled", [10, 40]),
                (second, "open", [0, 25, 0]),
            ]
            assert shown[-1]["pos"] == pos(newest)
            await viewer.close()
