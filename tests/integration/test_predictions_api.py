"""Predictions and channel points over REST, against the real stack (without the points workers).

The channel's staff (owner, moderators, admins) open, lock, resolve and cancel; a viewer cannot.
The API refuses with a clear 409 what the read model shows is bound to fail (a second active
prediction, a transition the state does not allow, a stake after the lock, more points than the
balance, a second outcome) and with 422 what is malformed; otherwise a stake is a StakeRequested on
``points.requests`` with the prediction's lock time. What the ledger and prediction workers would
decide is published here directly, and the reads (a prediction with the caller's stake, the
caller's balance and ledger) show it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.base import Event
from events.points import (
    MAX_STAKE,
    PointsGranted,
    PointsStaked,
    PredictionOpened,
    PredictionUpdated,
    StakeRefused,
    StakeRequested,
    StakeSettled,
)
from events.topics import Topic
from infra.kafka import ConsumedEvent, DeadLetters, EventConsumer, TopicNames
from infra.settings import Settings
from tests.integration.projections_support import last_positions
from tests.integration.test_api_support import ApiStack, User, eventually, open_api_stack

pytestmark = pytest.mark.integration

TEAMS = ["NAVI", "G2"]


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiStack]:
    # No lifecycle decisions needed, and no points workers: what they decide is published here.
    async with open_api_stack(settings, tmp_path_factory.mktemp("predictions"), lifecycle=False) as opened:

        async def ready() -> bool:  # the projector migrates the read model as it starts
            return (await opened.client.get("/api/v1/predictions/none")).status_code == 404

        await eventually(ready, timeout_s=60)
        yield opened


class Staff:
    """A stream with its channel's owner, a moderator of it, and a plain viewer."""

    def __init__(self, stream_id: str, channel_id: str, owner: User, moderator: User, viewer: User) -> None:
        self.stream_id, self.channel_id = stream_id, channel_id
        self.owner, self.moderator, self.viewer = owner, moderator, viewer


async def _staffed_stream(stack: ApiStack) -> Staff:
    owner, moderator, viewer = await stack.register(), await stack.register(), await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"p-{uuid.uuid4().hex[:12]}", "display_name": "P"}
    )
    appointed = await stack.command(
        "PUT", f"/api/v1/channels/{channel['channel_id']}/moderators/{moderator.user_id}", owner
    )
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Grand final"}
    )
    await stack.query(
        f"/api/v1/streams/{created['stream_id']}", after=[*created["positions"], *appointed["positions"]]
    )
    return Staff(created["stream_id"], channel["channel_id"], owner, moderator, viewer)


def _opening(**overrides: Any) -> dict[str, Any]:
    return {"title": "Who wins map 3?", "outcomes": TEAMS, "window_s": 600, **overrides}


async def _open(stack: ApiStack, staff: Staff, who: User | None = None, **overrides: Any) -> dict[str, Any]:
    """Open a prediction and read it back once the projector applied it."""
    url = f"/api/v1/streams/{staff.stream_id}/predictions"
    accepted = await stack.command("POST", url, who or staff.owner, _opening(**overrides), expect=202)
    return dict(await _read(stack, accepted["prediction_id"], after=accepted["positions"]))


async def _read(stack: ApiStack, prediction_id: str, user: User | None = None, after: Any = ()) -> Any:
    return await stack.query(f"/api/v1/predictions/{prediction_id}", user, after=list(after))


async def _command(
    stack: ApiStack, prediction_id: str, action: str, who: User, body: Any = None, *, expect: int = 202
) -> dict[str, Any]:
    return await stack.command(
        "POST", f"/api/v1/predictions/{prediction_id}/{action}", who, body, expect=expect
    )


async def _decided(stack: ApiStack, *events: Event) -> None:
    """Publish what a worker would have decided, and wait until the read model has it."""
    positions = await stack.publisher.publish_many(list(events))
    await _reached(stack, [str(p) for p in last_positions(positions)])


async def _reached(stack: ApiStack, positions: list[str]) -> None:
    response = await stack.client.get("/api/v1/streams", headers={"X-Min-Position": ",".join(positions)})
    assert response.status_code == 200 and "x-read-model-lag" not in response.headers, response.text


def _detail(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["detail"])


async def _stake(stack: ApiStack, prediction_id: str, who: User, outcome: int, amount: int) -> Any:
    return await stack.client.post(
        f"/api/v1/predictions/{prediction_id}/stakes",
        json={"outcome": outcome, "amount": amount},
        headers=who.auth,
    )


def _granted(user: User, amount: int, balance: int) -> PointsGranted:
    return PointsGranted(
        user_id=user.user_id, amount=amount, reason="watch", grant_id=uuid.uuid4().hex, balance=balance
    )


async def _on_log(stack: ApiStack, topic: str, event_id: str) -> ConsumedEvent:
    """The event with ``event_id`` as read back from ``topic``."""
    names = TopicNames(stack.settings.kafka.topic_prefix)
    consumer = EventConsumer(
        stack.settings.kafka,
        stack.services.codec,
        topics=[topic],
        group_id=None,
        dead_letters=DeadLetters(stack.publisher, names.physical(Topic.DEADLETTER)),
        from_beginning=True,
    )

    async def find() -> ConsumedEvent:
        async for batch in consumer.batches(timeout_ms=200):
            for consumed in batch:
                if str(consumed.event.event_id) == event_id:
                    return consumed
        raise AssertionError("the consumer stopped")

    async with consumer:
        return await asyncio.wait_for(find(), timeout=30)


# -- the streamer's side -----------------------------------------------------------------------------


async def test_only_the_channel_staff_runs_predictions(stack: ApiStack) -> None:
    staff = await _staffed_stream(stack)
    url = f"/api/v1/streams/{staff.stream_id}/predictions"
    assert (await stack.client.post(url, json=_opening())).status_code == 401
    refused = await stack.client.post(url, json=_opening(), headers=staff.viewer.auth)
    assert "owner, its moderators or an admin" in _detail(refused, 403)
    prediction = await _open(stack, staff, staff.moderator)
    assert (prediction["status"], prediction["outcomes"], prediction["channel_id"]) == (
        "open",
        TEAMS,
        staff.channel_id,
    )
    assert prediction["opened_by"] == staff.moderator.user_id
    assert (prediction["pools"], prediction["stakers"], prediction["settled"]) == ([0, 0], [0, 0], False)
    pid = prediction["prediction_id"]
    for action, body in (("lock", None), ("resolve", {"outcome": 0}), ("cancel", None)):
        _detail(
            await stack.client.post(
                f"/api/v1/predictions/{pid}/{action}", json=body, headers=staff.viewer.auth
            ),
            403,
        )
    admin = await stack.make_admin(await stack.register())
    locked = await _command(stack, pid, "lock", staff.owner)
    cancelled = await _command(stack, pid, "cancel", admin)
    seen = await _read(stack, pid, after=[*locked["positions"], *cancelled["positions"]])
    assert (seen["status"], seen["locked_at"] is not None, seen["cancelled_at"] is not None) == (
        "cancelled",
        True,
        True,
    )


async def test_opening_is_validated(stack: ApiStack) -> None:
    staff = await _staffed_stream(stack)
    url = f"/api/v1/streams/{staff.stream_id}/predictions"
    bad = [
        _opening(outcomes=["only one"]),
        _opening(outcomes=[f"o{i}" for i in range(11)]),
        _opening(outcomes=["NAVI", "navi"]),
        _opening(window_s=29),
        _opening(window_s=1801),
        _opening(title=""),
        _opening(title="x" * 181),
        _opening(outcomes=["x" * 101, "y"]),
        {"title": "no window", "outcomes": TEAMS},
    ]
    for body in bad:
        _detail(await stack.client.post(url, json=body, headers=staff.owner.auth), 422)
    missing = await stack.client.post(
        "/api/v1/streams/no-such-stream/predictions", json=_opening(), headers=staff.owner.auth
    )
    _detail(missing, 404)
    prediction = await _open(stack, staff, window_s=30, outcomes=[f"o{i}" for i in range(10)])
    opened_at = datetime.fromisoformat(prediction["opened_at"])
    assert datetime.fromisoformat(prediction["locks_at"]) - opened_at == timedelta(seconds=30)


async def test_one_prediction_at_a_time_and_only_the_transitions_its_state_allows(stack: ApiStack) -> None:
    staff = await _staffed_stream(stack)
    first = (await _open(stack, staff))["prediction_id"]
    second = await stack.client.post(
        f"/api/v1/streams/{staff.stream_id}/predictions", json=_opening(), headers=staff.owner.auth
    )
    assert f"already has an active prediction ({first}, open)" in _detail(second, 409)
    locked = await _command(stack, first, "lock", staff.owner)
    await _read(stack, first, after=locked["positions"])
    assert "it locked at" in _detail(
        await stack.client.post(f"/api/v1/predictions/{first}/lock", headers=staff.owner.auth), 409
    )
    out_of_range = await stack.client.post(
        f"/api/v1/predictions/{first}/resolve", json={"outcome": 2}, headers=staff.owner.auth
    )
    assert "outcomes 0 to 1" in _detail(out_of_range, 422)
    resolved = await _command(stack, first, "resolve", staff.moderator, {"outcome": 1})
    seen = await _read(stack, first, after=resolved["positions"])
    assert (seen["status"], seen["winning_outcome"]) == ("resolved", 1)
    for action, body in (("cancel", None), ("resolve", {"outcome": 0}), ("lock", None)):
        refused = await stack.client.post(
            f"/api/v1/predictions/{first}/{action}", json=body, headers=staff.owner.auth
        )
        assert "it was resolved ('G2' won)" in _detail(refused, 409)
    # Resolved: the stream may have its next one; resolving while still open locks it too.
    then = await _open(stack, staff)
    resolved = await _command(stack, then["prediction_id"], "resolve", staff.owner, {"outcome": 0})
    seen = await _read(stack, then["prediction_id"], after=resolved["positions"])
    assert (seen["status"], seen["winning_outcome"], seen["locked_at"] is not None) == ("resolved", 0, True)
    last = await _open(stack, staff)
    cancelled = await _command(stack, last["prediction_id"], "cancel", staff.owner)
    await _read(stack, last["prediction_id"], after=cancelled["positions"])
    refused = await stack.client.post(
        f"/api/v1/predictions/{last['prediction_id']}/resolve", json={"outcome": 0}, headers=staff.owner.auth
    )
    assert "it was cancelled" in _detail(refused, 409)
    _detail(await stack.client.post("/api/v1/predictions/no-such/lock", headers=staff.owner.auth), 404)


# -- viewers' stakes -----------------------------------------------------------------------------------


async def test_a_stake_is_asked_for_on_the_log_with_the_lock_time(stack: ApiStack) -> None:
    staff = await _staffed_stream(stack)
    prediction = await _open(stack, staff)
    pid, viewer = prediction["prediction_id"], staff.viewer
    assert _detail(await _stake(stack, pid, viewer, 0, 100), 409) == "not enough points: you have 0"
    await _decided(stack, _granted(viewer, 500, 500))
    for outcome, amount in ((0, 0), (0, -5), (0, MAX_STAKE + 1), (-1, 10)):
        _detail(await _stake(stack, pid, viewer, outcome, amount), 422)
    assert "outcomes 0 to 1" in _detail(await _stake(stack, pid, viewer, 2, 10), 422)
    assert _detail(await _stake(stack, pid, viewer, 0, 501), 409) == "not enough points: you have 500"
    assert (
        await stack.client.post(f"/api/v1/predictions/{pid}/stakes", json={"outcome": 0, "amount": 1})
    ).status_code == 401
    key = {"Idempotency-Key": uuid.uuid4().hex, **viewer.auth}
    url, body = f"/api/v1/predictions/{pid}/stakes", {"outcome": 1, "amount": 200}
    response = await stack.client.post(url, json=body, headers=key)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["request_id"] == accepted["event_id"]
    assert accepted["position"].startswith(f"{Topic.POINTS_REQUESTS}:")
    replayed = await stack.client.post(url, json=body, headers=key)  # a retry is not a second stake
    assert replayed.json()["request_id"] == accepted["request_id"]
    consumed = await _on_log(stack, Topic.POINTS_REQUESTS, accepted["request_id"])
    event = consumed.event
    assert isinstance(event, StakeRequested)
    assert str(consumed.position) == accepted["position"] and consumed.key == viewer.user_id.encode()
    assert (event.user_id, event.prediction_id, event.stream_id, event.outcome, event.amount) == (
        viewer.user_id,
        pid,
        staff.stream_id,
        1,
        200,
    )
    assert event.locks_at == datetime.fromisoformat(prediction["locks_at"])


async def test_a_viewer_backs_one_outcome(stack: ApiStack) -> None:
    staff = await _staffed_stream(stack)
    pid, viewer = (await _open(stack, staff))["prediction_id"], staff.viewer
    staked = PointsStaked(
        user_id=viewer.user_id,
        prediction_id=pid,
        stream_id=staff.stream_id,
        outcome=0,
        amount=50,
        balance=250,
    )
    await _decided(stack, _granted(viewer, 300, 300), staked)
    refused = await _stake(stack, pid, viewer, 1, 10)
    assert (
        _detail(refused, 409)
        == "you already staked 50 points on outcome 0 ('NAVI'); you can only add to that outcome"
    )
    assert (await _stake(stack, pid, viewer, 0, 10)).status_code == 202


async def test_stakes_after_the_lock_are_refused_with_its_time(stack: ApiStack) -> None:
    staff = await _staffed_stream(stack)
    await _decided(stack, _granted(staff.viewer, 100, 100))
    pid = (await _open(stack, staff))["prediction_id"]
    locked = await _command(stack, pid, "lock", staff.moderator)
    seen = await _read(stack, pid, after=locked["positions"])
    when = datetime.fromisoformat(seen["locked_at"]).astimezone(UTC).isoformat(timespec="seconds")
    refused = await _stake(stack, pid, staff.viewer, 0, 10)
    assert _detail(refused, 409) == f"this prediction locked at {when}; stakes are no longer taken"
    await _command(stack, pid, "cancel", staff.owner)
    # Its lock time passed, and the worker has not locked it yet: the API sees it locked already.
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    stale = PredictionOpened(
        prediction_id=str(uuid.uuid4()),
        stream_id=f"s-{uuid.uuid4().hex[:8]}",
        channel_id=staff.channel_id,
        title="Overtime?",
        outcomes=("yes", "no"),
        locks_at=past,
        opened_by=staff.owner.user_id,
        occurred_at=past - timedelta(minutes=5),
    )
    await _decided(stack, stale)
    assert (await _read(stack, stale.prediction_id))["status"] == "locked"
    refused = await _stake(stack, stale.prediction_id, staff.viewer, 0, 10)
    assert (
        _detail(refused, 409) == f"this prediction locked at {past.isoformat()}; stakes are no longer taken"
    )


# -- reads ---------------------------------------------------------------------------------------------


async def test_a_prediction_shows_the_callers_stake_and_its_payout(stack: ApiStack) -> None:
    staff = await _staffed_stream(stack)
    older = await _open(stack, staff)
    cancelled = await _command(stack, older["prediction_id"], "cancel", staff.owner)
    listed = await stack.query(f"/api/v1/streams/{staff.stream_id}/predictions", after=cancelled["positions"])
    assert [(p["prediction_id"], p["status"]) for p in listed["items"]] == [
        (older["prediction_id"], "cancelled")
    ]
    prediction = await _open(stack, staff)
    pid, viewer, stream = prediction["prediction_id"], staff.viewer, staff.stream_id
    await _decided(
        stack,
        _granted(viewer, 400, 400),
        PointsStaked(
            user_id=viewer.user_id, prediction_id=pid, outcome=1, amount=100, balance=300, stream_id=stream
        ),
        PredictionUpdated(
            prediction_id=pid,
            status="resolved",
            pools=(300, 100),
            stakers=(2, 1),
            winning_outcome=1,
            stream_id=stream,
        ),
        StakeSettled(
            user_id=viewer.user_id, prediction_id=pid, staked=100, payout=400, balance=700, stream_id=stream
        ),
        PredictionUpdated(
            prediction_id=pid,
            status="resolved",
            pools=(300, 100),
            stakers=(2, 1),
            winning_outcome=1,
            settled=True,
            stream_id=stream,
        ),
    )
    mine = await _read(stack, pid, viewer)
    assert (mine["status"], mine["winning_outcome"], mine["pools"], mine["stakers"], mine["settled"]) == (
        "resolved",
        1,
        [300, 100],
        [2, 1],
        True,
    )
    stake = mine["my_stake"]
    assert (stake["outcome"], stake["amount"], stake["payout"], stake["refunded"]) == (1, 100, 400, False)
    assert (await _read(stack, pid))["my_stake"] is None
    assert (await _read(stack, pid, staff.moderator))["my_stake"] is None
    bad_token = await stack.client.get(f"/api/v1/predictions/{pid}", headers={"Authorization": "Bearer nope"})
    _detail(bad_token, 401)
    url = f"/api/v1/streams/{staff.stream_id}/predictions"
    page = (await stack.client.get(url, params={"limit": 1}, headers=viewer.auth)).json()
    assert [p["prediction_id"] for p in page["items"]] == [pid] and page["items"][0]["my_stake"][
        "payout"
    ] == 400
    rest = await stack.query(f"{url}?limit=1&cursor={page['next_cursor']}")
    assert [p["prediction_id"] for p in rest["items"]] == [older["prediction_id"]]
    _detail(await stack.client.get("/api/v1/streams/no-such/predictions"), 404)


async def test_my_points_are_my_balance_and_my_latest_entries(stack: ApiStack) -> None:
    viewer, other = await stack.register(), await stack.register()
    assert (await stack.client.get("/api/v1/me/points")).status_code == 401
    assert await stack.query("/api/v1/me/points", viewer) == {"balance": 0, "entries": []}
    grants = [_granted(viewer, 10, 10 * (i + 1)) for i in range(54)]
    refusal = StakeRefused(
        user_id=viewer.user_id,
        prediction_id="p-late",
        stream_id="s-x",
        amount=75,
        reason="the prediction locked before this stake",
        balance=540,
    )
    await _decided(stack, *grants, refusal, _granted(other, 5, 5))
    mine = await stack.query("/api/v1/me/points", viewer)
    assert mine["balance"] == 540 and len(mine["entries"]) == 50
    newest = mine["entries"][0]
    assert (newest["kind"], newest["amount"], newest["change"], newest["balance"], newest["reason"]) == (
        "refused",
        75,
        0,
        540,
        "the prediction locked before this stake",
    )
    assert newest["event_id"] == str(refusal.event_id) and newest["prediction_id"] == "p-late"
    assert [e["balance"] for e in mine["entries"][1:4]] == [540, 530, 520]
    assert all(e["kind"] == "grant" and e["reason"] == "watch" for e in mine["entries"][1:])
    assert (await stack.query("/api/v1/me/points", other))["balance"] == 5
