"""The viewer beacon: players without a websocket (embeds) say they are still watching over HTTP.

``POST /api/v1/streams/{stream_id}/beacon {session_id}`` publishes a ViewerPresenceBatch of one beat
on ``viewers.presence``, keyed by the session (so it lands on the session's partition, like the edges'
batches) with ``edge_id`` "api-beacon"; the viewer-count agent counts it like the edges' heartbeats
(one session counted once whichever way it beats). Anonymous viewers are welcome;
a valid access token adds the user id. Beacons are limited in fixed Redis windows per session and
per client IP (a player beats every 15 s; an IP may hide many viewers behind a NAT): over the limit
the answer is 429, and nothing is published.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict

from events.viewers import ViewerBeat, ViewerPresenceBatch
from infra.redis import DRIVER_ERRORS, translate
from producers.deps import ClientIp, OptionalCredentials, ServicesDep, optional_user_id
from producers.models.common import Id
from producers.problems import TooManyRequests, documented
from producers.routes import API_PREFIX
from producers.routes.streams import StreamId, find_stream
from producers.services import Services

__all__ = ["EDGE_ID", "PER_IP", "PER_SESSION", "WINDOW_S", "BeaconRequest", "router"]

EDGE_ID = "api-beacon"
WINDOW_S = 10
PER_SESSION = 3  # per window: a player beats every 15 s, so this leaves room for retries
PER_IP = 600  # per window: many viewers may share an address

router = APIRouter(prefix=f"{API_PREFIX}/streams", tags=["viewers"])


class BeaconRequest(BaseModel):
    """The player's session id (stable for the page's life; anonymous viewers have one too)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"session_id": "s-8f2c41"}]})

    session_id: Id


async def _check_rate(services: Services, stream_id: str, session_id: str, ip: str) -> None:
    prefix = f"{services.namespace.redis_prefix}api:beacon"
    limits = ((f"{prefix}:session:{stream_id}:{session_id}", PER_SESSION), (f"{prefix}:ip:{ip}", PER_IP))
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for key, _ in limits:
                pipe.incr(key)
                pipe.expire(key, WINDOW_S, nx=True)
                pipe.ttl(key)
            replies = await pipe.execute()
    except DRIVER_ERRORS as e:
        raise translate(e, "counting beacons") from e
    for index, (_, limit) in enumerate(limits):
        count, _, ttl = replies[3 * index : 3 * index + 3]
        if int(count) > limit:
            raise TooManyRequests("too many beacons; a player beats every 15 s", max(int(ttl), 1))


@router.post(
    "/{stream_id}/beacon",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=documented(401, 404, 422, 429, 503),
    # FastAPI lists the bearer the dependency declares; `{}` adds the anonymous alternative.
    openapi_extra={"security": [{}]},
)
async def beacon(
    stream_id: StreamId,
    body: BeaconRequest,
    ip: ClientIp,
    services: ServicesDep,
    credentials: OptionalCredentials,
) -> Response:
    """A player's heartbeat for viewers without a websocket (anonymous allowed); 204, nothing to read."""
    user_id = optional_user_id(services, credentials, anonymously="beat anonymously")
    await _check_rate(services, stream_id, body.session_id, ip)
    await find_stream(services, stream_id)
    beat = ViewerBeat(stream_id=stream_id, session_id=body.session_id, user_id=user_id)
    await services.bus.publish(ViewerPresenceBatch(shard_key=body.session_id, edge_id=EDGE_ID, beats=(beat,)))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
