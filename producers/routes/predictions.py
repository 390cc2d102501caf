"""Predictions with channel points: open, lock, resolve and cancel (the stream channel's owner, its
moderators or an admin), stake (any signed-in viewer), read, and the caller's balance and ledger.

Commands publish to ``predictions`` (PredictionOpened/Locked/Resolved/Cancelled) and, for a stake,
StakeRequested to ``points.requests``; the ``pg.points`` projector stores what the log says
(:mod:`projections.points`). The workers are the authority: the prediction worker decides the lock
and the settlement, the ledger worker takes or refuses each stake on the balance it holds. The API
refuses early (409, 422) what it can already see in the read model is bound to fail, so a viewer gets
a clear answer instead of a refusal in their ledger later. A prediction is readable as soon as its
opening is applied: send the command's ``position`` as ``X-Min-Position``. Reads take the
spoiler-free switch (``spoilers``, ``reveal``): on a stream of a hidden match a resolved prediction's
winner is a result, and is hidden (:func:`producers.spoilers.predictions_seen`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from events.base import utc_now
from events.points import (
    PredictionCancelled,
    PredictionLocked,
    PredictionOpened,
    PredictionResolved,
    StakeRequested,
)
from producers.deps import (
    CurrentUser,
    Cursor,
    Limit,
    OptionalCredentials,
    Principal,
    ReadYourWrites,
    ServicesDep,
    SpoilerViewDep,
    optional_user_id,
)
from producers.models.common import ID_PATTERN, Accepted
from producers.models.predictions import (
    PointsOut,
    PredictionAccepted,
    PredictionOpenRequest,
    PredictionOut,
    PredictionPage,
    PredictionResolveRequest,
    StakeAccepted,
    StakeRequest,
)
from producers.pagination import encode_cursor, sort_key
from producers.problems import Conflict, IllegalTransition, NotFound, Unprocessable, documented
from producers.routes import API_PREFIX, accepted
from producers.routes.streams import StreamId, find_stream, moderated_stream
from producers.services import Services
from producers.spoilers import SpoilerView, predictions_seen
from projections.queries.points import FINAL, PointsQueries, as_seen

router = APIRouter(prefix=API_PREFIX, tags=["predictions"], dependencies=[ReadYourWrites])
PredictionId = Annotated[str, Path(pattern=ID_PATTERN, description="The prediction's id.")]
RUN_PREDICTIONS = "run predictions here"
# FastAPI lists the bearer the dependency declares; `{}` adds the anonymous alternative.
_PUBLIC_READ: dict[str, Any] = {"openapi_extra": {"security": [{}]}}
_COMMAND: dict[str, Any] = {
    "status_code": status.HTTP_202_ACCEPTED,
    "response_model": Accepted,
    "responses": documented(401, 403, 404, 409, 422, 503),
}


# -- commands of the streamer and moderators --------------------------------------------------------


@router.post(
    "/streams/{stream_id}/predictions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PredictionAccepted,
    responses=documented(401, 403, 404, 409, 422, 503),
)
async def open_prediction(
    stream_id: StreamId, body: PredictionOpenRequest, user: CurrentUser, services: ServicesDep
) -> PredictionAccepted:
    """Open a prediction on a stream (channel owner, its moderators or an admin); one at a time."""
    stream = await moderated_stream(services, stream_id, user, RUN_PREDICTIONS)
    if stream["ended_at"] is not None:
        raise Conflict(f"stream {stream_id} has ended; predictions are for streams not over yet")
    active = await PointsQueries(services.pool).active_on(stream_id)
    if active is not None:
        raise Conflict(
            f"stream {stream_id} already has an active prediction ({active['prediction_id']}, "
            f"{active['status']}): resolve or cancel it first"
        )
    now = utc_now()
    event = PredictionOpened(
        occurred_at=now,
        prediction_id=str(uuid.uuid4()),
        stream_id=stream_id,
        channel_id=stream["channel_id"],
        title=body.title,
        outcomes=tuple(body.outcomes),
        locks_at=now + timedelta(seconds=body.window_s),
        opened_by=user.user_id,
    )
    receipt = await services.bus.publish(event)
    return PredictionAccepted(**accepted(receipt), prediction_id=event.prediction_id)


@router.post("/predictions/{prediction_id}/lock", **_COMMAND)
async def lock_prediction(prediction_id: PredictionId, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Stop taking stakes before the prediction's lock time (409 once it is locked)."""
    prediction = await _moderated_prediction(services, prediction_id, user)
    _check_transition(prediction, "lock")
    event = PredictionLocked(
        prediction_id=prediction_id, stream_id=prediction["stream_id"], locked_by=user.user_id
    )
    return Accepted(**accepted(await services.bus.publish(event)))


@router.post("/predictions/{prediction_id}/resolve", **_COMMAND)
async def resolve_prediction(
    prediction_id: PredictionId, body: PredictionResolveRequest, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Name the winning outcome (locking it first if still open); the winners are paid out."""
    prediction = await _moderated_prediction(services, prediction_id, user)
    _check_outcome(prediction, body.outcome)
    _check_transition(prediction, "resolve")
    event = PredictionResolved(
        prediction_id=prediction_id,
        stream_id=prediction["stream_id"],
        outcome=body.outcome,
        resolved_by=user.user_id,
    )
    return Accepted(**accepted(await services.bus.publish(event)))


@router.post("/predictions/{prediction_id}/cancel", **_COMMAND)
async def cancel_prediction(
    prediction_id: PredictionId, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Call the prediction off: every stake goes back to its staker."""
    prediction = await _moderated_prediction(services, prediction_id, user)
    _check_transition(prediction, "cancel")
    event = PredictionCancelled(
        prediction_id=prediction_id, stream_id=prediction["stream_id"], cancelled_by=user.user_id
    )
    return Accepted(**accepted(await services.bus.publish(event)))


async def _moderated_prediction(services: Services, prediction_id: str, user: Principal) -> dict[str, Any]:
    """The prediction as seen now, if ``user`` may run predictions on its stream (404, then 403)."""
    prediction = await _find_prediction(services, prediction_id)
    await moderated_stream(services, prediction["stream_id"], user, RUN_PREDICTIONS)
    return prediction


def _check_transition(prediction: dict[str, Any], command: str) -> None:
    """409 unless ``command`` may follow the prediction's state: a lock needs it open, a resolve or a
    cancel needs it open or locked."""
    state = prediction["status"]
    if state in FINAL:
        winner = prediction["winning_outcome"]
        how = f"resolved ({prediction['outcomes'][winner]!r} won)" if state == "resolved" else "cancelled"
        raise IllegalTransition(f"cannot {command} prediction {prediction['prediction_id']}: it was {how}")
    if command == "lock" and state == "locked":
        raise IllegalTransition(
            f"cannot lock prediction {prediction['prediction_id']}: it locked at {_locked_at(prediction)}"
        )


def _check_outcome(prediction: dict[str, Any], outcome: int) -> None:
    count = len(prediction["outcomes"])
    if outcome >= count:
        raise Unprocessable(
            f"outcome {outcome} does not exist: this prediction has outcomes 0 to {count - 1}"
        )


def _locked_at(prediction: dict[str, Any]) -> str:
    moment: datetime = prediction["locked_at"] or prediction["locks_at"]
    return moment.astimezone(UTC).isoformat(timespec="seconds")


# -- viewers ---------------------------------------------------------------------------------------


@router.post(
    "/predictions/{prediction_id}/stakes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StakeAccepted,
    responses=documented(401, 404, 409, 422, 503),
)
async def stake(
    prediction_id: PredictionId, body: StakeRequest, user: CurrentUser, services: ServicesDep
) -> StakeAccepted:
    """Stake channel points on an outcome of an open prediction (any signed-in viewer)."""
    queries = PointsQueries(services.pool)
    prediction = await _find_prediction(services, prediction_id)
    _check_outcome(prediction, body.outcome)
    _check_taking_stakes(prediction)
    _check_same_outcome(
        prediction, (await queries.stakes(user.user_id, [prediction_id])).get(prediction_id), body
    )
    balance = await queries.balance(user.user_id)
    if balance < body.amount:
        raise Conflict(f"not enough points: you have {balance}")
    event = StakeRequested(
        user_id=user.user_id,
        prediction_id=prediction_id,
        stream_id=prediction["stream_id"],
        outcome=body.outcome,
        amount=body.amount,
        locks_at=prediction["locks_at"],
    )
    return StakeAccepted(**accepted(await services.bus.publish(event)), request_id=event.event_id)


def _check_taking_stakes(prediction: dict[str, Any]) -> None:
    state = prediction["status"]
    if state == "locked":
        raise Conflict(f"this prediction locked at {_locked_at(prediction)}; stakes are no longer taken")
    if state in FINAL:
        raise Conflict(f"this prediction was {state}; stakes are no longer taken")


def _check_same_outcome(prediction: dict[str, Any], mine: dict[str, Any] | None, body: StakeRequest) -> None:
    """A viewer backs one outcome per prediction (a second stake adds to the first)."""
    if mine is not None and mine["outcome"] != body.outcome:
        name = prediction["outcomes"][mine["outcome"]]
        raise Conflict(
            f"you already staked {mine['amount']} points on outcome {mine['outcome']} ({name!r}); "
            "you can only add to that outcome"
        )


# -- queries ---------------------------------------------------------------------------------------


@router.get(
    "/streams/{stream_id}/predictions",
    response_model=PredictionPage,
    responses=documented(400, 401, 404, 422),
    **_PUBLIC_READ,
)
async def list_predictions(
    stream_id: StreamId,
    services: ServicesDep,
    credentials: OptionalCredentials,
    view: SpoilerViewDep,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> PredictionPage:
    """A stream's predictions, newest first (cursor-paginated); with a token, your stake in each."""
    user_id = optional_user_id(services, credentials, anonymously="read anonymously")
    await find_stream(services, stream_id)
    queries = PointsQueries(services.pool)
    after = sort_key(cursor, (datetime, str))
    rows = await queries.of_stream_after(stream_id, limit=limit, after=after)
    items = await _seen(queries, rows, user_id, view)
    full = len(rows) == limit
    next_cursor = encode_cursor(rows[-1]["opened_at"], rows[-1]["prediction_id"]) if full else None
    return PredictionPage(items=items, next_cursor=next_cursor)


@router.get(
    "/predictions/{prediction_id}",
    response_model=PredictionOut,
    responses=documented(401, 404, 422),
    **_PUBLIC_READ,
)
async def get_prediction(
    prediction_id: PredictionId, services: ServicesDep, credentials: OptionalCredentials, view: SpoilerViewDep
) -> PredictionOut:
    """One prediction: outcomes, state, pools and stakers; with a token, your stake and its payout."""
    user_id = optional_user_id(services, credentials, anonymously="read anonymously")
    queries = PointsQueries(services.pool)
    row = await queries.prediction(prediction_id)
    if row is None:
        raise NotFound(f"no prediction {prediction_id}")
    return (await _seen(queries, [row], user_id, view))[0]


@router.get("/me/points", response_model=PointsOut, responses=documented(401))
async def my_points(user: CurrentUser, services: ServicesDep) -> PointsOut:
    """Your channel-point balance and your latest 50 ledger entries, newest first."""
    queries = PointsQueries(services.pool)
    balance = await queries.balance(user.user_id)
    entries = await queries.ledger(user.user_id)
    return PointsOut.model_validate({"balance": balance, "entries": entries})


async def _find_prediction(services: Services, prediction_id: str) -> dict[str, Any]:
    row = await PointsQueries(services.pool).prediction(prediction_id)
    if row is None:
        raise NotFound(f"no prediction {prediction_id}")
    return as_seen(row, now=utc_now())


async def _seen(
    queries: PointsQueries, rows: list[dict[str, Any]], user_id: str | None, view: SpoilerView
) -> list[PredictionOut]:
    """The rows as ``view``'s reader sees them, each with the caller's stake (``user_id`` None:
    anonymous)."""
    now = utc_now()
    stakes = await queries.stakes(user_id, [r["prediction_id"] for r in rows]) if user_id else {}
    seen = [{**as_seen(r, now=now), "my_stake": stakes.get(r["prediction_id"])} for r in rows]
    return [PredictionOut.model_validate(p) for p in predictions_seen(seen, view)]
