"""The edge's `prediction` frame: what a PredictionUpdated becomes on the wire, and how a stream's
subscribers get it (the latest of each prediction on subscribe, then every change), like a poll's tally.
The winner travels apart, as a `prediction_result` frame, to the subscribers who do not hide the
stream's match result (spoiler-free mode)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_ws.fanout import FanoutHub
from edge_ws.messages import CONSUMED_TOPICS, Route, delivery_for, result_delivery_for
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
        "settled": False,
    }
    assert result_delivery_for(event, LogPosition(2, 57)) is None


@pytest.mark.parametrize(
    ("fields", "winner", "settled"),
    [
        ({"status": "locked"}, None, False),
        ({"status": "resolved", "winning_outcome": 0}, 0, False),
        ({"status": "resolved", "winning_outcome": 2, "settled": True}, 2, True),
        ({"status": "cancelled", "settled": True}, None, True),
    ],
)
def test_the_winner_is_a_result_frame_of_its_own_once_resolved(
    fields: dict[str, Any], winner: int | None, settled: bool
) -> None:
    event = updated(pools=(5, 0, 7), stakers=(1, 0, 1), **fields)
    shown = frame(event, 3)
    assert (shown["status"], shown["settled"], shown["total"]) == (fields["status"], settled, 12)
    assert "winning_outcome" not in shown  # the frame every subscriber gets tells no result
    result = result_delivery_for(event, LogPosition(2, 3))
    if winner is None:
        assert result is None
        return
    assert result is not None
    assert (result.route, result.target, result.snapshot_key) == (Route.SNAPSHOT, "s-1#results", "result:p-1")
    assert json.loads(result.payload) == {
        "type": "prediction_result",
        "stream": "s-1",
        "pos": "2:3",
        "prediction": "p-1",
        "winning_outcome": winner,
    }


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


async def resolved(hub: FanoutHub, event: PredictionUpdated, offset: int) -> None:
    """Apply every delivery of ``event`` (the odds, and the result once resolved), as the reader does."""
    for build in (delivery_for, result_delivery_for):
        delivery = build(event, LogPosition(0, offset))
        if delivery is not None:
            await hub.apply(delivery)


def results(peer: Peer) -> list[tuple[str, int]]:
    return [
        (m["prediction"], m["winning_outcome"]) for m in peer.messages() if m["type"] == "prediction_result"
    ]


async def test_only_subscribers_who_show_results_get_the_winner() -> None:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5)
    showing, hiding = Peer(), Peer()
    hub.subscribe(showing, "s-1", None)
    hub.subscribe(hiding, "s-1", None, results=False)
    await resolved(hub, updated("p-1", pools=(100, 50)), 1)
    await resolved(hub, updated("p-1", status="resolved", pools=(100, 50), winning_outcome=1), 2)
    hub.write_pending()
    for peer in (showing, hiding):
        assert predictions(peer) == [("p-1", "open", [100, 50]), ("p-1", "resolved", [100, 50])]
    assert results(showing) == [("p-1", 1)]
    assert results(hiding) == []
    assert not [f for f in hiding.frames if b"winning_outcome" in bytes(f)]

    # Joining later: the result's snapshot for who shows results, nothing for who hides them.
    late_showing, late_hiding = Peer(), Peer()
    hub.subscribe(late_showing, "s-1", None)
    hub.subscribe(late_hiding, "s-1", None, results=False)
    assert results(late_showing) == [("p-1", 1)] and results(late_hiding) == []

    # Revealing is subscribing again with results; hiding again leaves the results channel.
    hub.subscribe(hiding, "s-1", None)
    assert results(hiding) == [("p-1", 1)]
    hub.subscribe(showing, "s-1", None, results=False)
    hub.unsubscribe(late_showing, "s-1")
    await resolved(hub, updated("p-2", status="resolved", pools=(1, 2), winning_outcome=0), 3)
    hub.write_pending()
    assert results(hiding)[-1] == ("p-2", 0)
    assert results(showing) == [("p-1", 1)] and results(late_showing) == [("p-1", 1)]
