"""The edge's `prediction` frame: what a PredictionUpdated becomes on the wire, and how a stream's
subscribers get it (the latest of each prediction on subscribe, then every change), like a poll's tally."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_ws.fanout import FanoutHub
from edge_ws.messages import CONSUMED_TOPICS, Route, delivery_for
from edge_ws.metrics import Metrics
from edge_ws.protocol import LogPosition
from events.points import PredictionUpdated
from events.topics import Topic, topic_for
from tests.unit.edge_peers import Peer


def updated(prediction: str = "p-1", stream: str = "s-1", **fields: Any) -> PredictionUpdated:
    state: dict[str, Any] = {"status": "open", "pools": (0, 0), "stakers": (0, 0), **fields}
    return PredictionUpdated(prediction_id=prediction, stream_id=stream, **state)


def frame(event: PredictionUpdated, offset: int) -> dict[str, Any]:
    delivery = delivery_for(event, LogPosition(2, offset))
    assert delivery is not None
    shown: dict[str, Any] = json.loads(delivery.payload)
    return shown


async def applied(hub: FanoutHub, event: PredictionUpdated, offset: int) -> None:
    delivery = delivery_for(event, LogPosition(0, offset))
    assert delivery is not None
    await hub.apply(delivery)


def predictions(peer: Peer) -> list[tuple[str, str, list[int]]]:
    return [(m["prediction"], m["status"], m["pools"]) for m in peer.messages() if m["type"] == "prediction"]


def test_an_open_prediction_is_a_snapshot_of_its_stream_keyed_by_prediction() -> None:
    event = updated(pools=(1200, 3400), stakers=(3, 5))
    delivery = delivery_for(event, LogPosition(2, 57))
    assert delivery is not None
    assert (delivery.route, delivery.target, delivery.snapshot_key) == (
        Route.SNAPSHOT,
        "s-1",
        "prediction:p-1",
    )
    assert frame(event, 57) == {
        "type": "prediction",
        "stream": "s-1",
        "pos": "2:57",
        "prediction": "p-1",
        "status": "open",
        "pools": [1200, 3400],
        "stakers": [3, 5],
        "total": 4600,
        "winning_outcome": None,
        "settled": False,
    }


@pytest.mark.parametrize(
    ("fields", "winner", "settled"),
    [
        ({"status": "locked"}, None, False),
        ({"status": "resolved", "winning_outcome": 0}, 0, False),
        ({"status": "resolved", "winning_outcome": 2, "settled": True}, 2, True),
        ({"status": "cancelled", "settled": True}, None, True),
    ],
)
def test_the_winner_is_an_index_once_resolved_and_null_before(
    fields: dict[str, Any], winner: int | None, settled: bool
) -> None:
    shown = frame(updated(pools=(5, 0, 7), stakers=(1, 0, 1), **fields), 3)
    assert (shown["status"], shown["winning_outcome"], shown["settled"]) == (
        fields["status"],
        winner,
        settled,
    )
    assert shown["total"] == 12


def test_the_node_reads_the_topic_the_worker_publishes_to() -> None:
    assert topic_for(PredictionUpdated).name == Topic.PREDICTIONS_ODDS
    assert Topic.PREDICTIONS_ODDS in CONSUMED_TOPICS


async def test_a_subscriber_gets_the_latest_state_of_each_prediction_then_every_change() -> None:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5)
    watching = Peer()
    hub.subscribe(watching, "s-1", None)
    await applied(hub, updated("p-1", pools=(0, 0)), 1)
    await applied(hub, updated("p-1", pools=(100, 0), stakers=(1, 0)), 2)
    await applied(hub, updated("p-1", status="resolved", pools=(100, 50), winning_outcome=0), 3)
    await applied(hub, updated("p-2", pools=(10, 20)), 4)
    await applied(hub, updated("p-9", stream="s-other"), 5)  # another stream's: never here

    assert predictions(watching) == [
        ("p-1", "open", [0, 0]),
        ("p-1", "open", [100, 0]),
        ("p-1", "resolved", [100, 50]),
        ("p-2", "open", [10, 20]),
    ]
    joining = Peer()
    hub.subscribe(joining, "s-1", None)
    # One frame per prediction, its latest, before the subscribed marker; none of the history.
    assert predictions(joining) == [("p-1", "resolved", [100, 50]), ("p-2", "open", [10, 20])]
    kinds = [m["type"] for m in joining.messages()]
    assert kinds == ["prediction", "prediction", "state"]
    await applied(hub, updated("p-2", status="locked", pools=(10, 25)), 6)
    for peer in (watching, joining):
        assert predictions(peer)[-1] == ("p-2", "locked", [10, 25])
    assert watching.frames[-1] is joining.frames[-1]  # encoded and framed once for both
