"""``POST /streams``: the events a stream's creation records, and the route that answers the common case
of it without FastAPI's dependency solving and validation (most of a request's cost, profiled).

:class:`StreamCreationRoute` sits ahead of the API's routers, like
:class:`~producers.routes.streams.LiveListingRoute`. It answers a request only when the outcome is
certain to be FastAPI's own: a JSON body that is a valid :class:`StreamCreateRequest` without a match,
a valid access token, an account that exists and a channel (named by its id) that the caller owns.
Anything else (a bad body or token, another's channel, a slug, a match to look up, read-your-writes,
another content type) is handed, untouched, to :func:`~producers.routes.streams.create_stream`, which
answers it exactly as before (problems, roles: an admin's right to another's channel is read afresh
there). The account and channel facts come from the process's cache (:mod:`producers.store.facts`),
which never outlives a change of their rows. Errors raised here (PostgreSQL or Kafka unavailable)
reach the app's problem handlers like a route's; the published events are built by the same function
as the route's, and the answer's bytes by the same serializer.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, get_route_path
from starlette.types import Receive, Scope, Send

from events.base import Event
from events.streams import StreamCreated, StreamRole, StreamScheduled
from infra.tokens import InvalidToken
from producers.idempotency import BODY_SCOPE_KEY
from producers.models.streams import StreamAccepted, StreamCreateRequest
from producers.routes import API_PREFIX, accepted
from producers.services import Services
from producers.store.channels import ChannelClaim

CREATE_PATH = API_PREFIX + "/streams"
_HANDED_ON = "esports.stream_creation_handed_on"
_ANSWER = TypeAdapter(StreamAccepted)  # what FastAPI serializes a response_model with


def stream_created_events(stream_id: str, claim: ChannelClaim, body: StreamCreateRequest) -> list[Event]:
    """StreamCreated, and StreamScheduled when the body schedules it at once."""
    events: list[Event] = [
        StreamCreated(
            stream_id=stream_id,
            channel_id=claim.channel_id,
            owner_id=claim.owner_id,
            title=body.title,
            game=body.game,
            tags=tuple(body.tags),
            language=body.language,
            match_id=body.match_id,
            role=StreamRole(body.role),
        )
    ]
    if body.scheduled_start is not None:
        events.append(
            StreamScheduled(
                stream_id=stream_id,
                channel_id=claim.channel_id,
                scheduled_start=body.scheduled_start,
                title=body.title,
                match_id=body.match_id,
            )
        )
    return events


class StreamCreationRoute(BaseRoute):
    """``POST /api/v1/streams`` by the channel's owner (see the module docstring); same status, body,
    headers and metrics label (``path``) as the documented route."""

    path = path_format = CREATE_PATH

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or get_route_path(scope) != CREATE_PATH
            or _HANDED_ON in scope
        ):
            return Match.NONE, {}
        content_type = authorization = None
        for name, value in scope["headers"]:
            if name == b"x-min-position":
                return Match.NONE, {}  # the router's ReadYourWrites waits for it first
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"authorization" and authorization is None:
                authorization = value
        if content_type is None or content_type.lower() != b"application/json" or authorization is None:
            return Match.NONE, {}
        return Match.FULL, {"route": self, _AUTHORIZATION: authorization}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # url_for() names the documented route, create_stream

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await _create(scope)
        if answer is None:  # not certainly ours: the documented route decides, from the same request
            scope[_HANDED_ON] = True
            await scope["router"].app(scope, receive, send)
            return
        headers = [(b"content-length", b"%d" % len(answer)), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


_AUTHORIZATION = "esports.stream_creation_authorization"


async def _create(scope: Scope) -> bytes | None:
    """Publish the stream's events and return the answer's body; None (nothing done) when the request
    is not the common case."""
    services: Services = scope["app"].state.services
    body = _request(scope.get(BODY_SCOPE_KEY))
    user_id = _bearer_user(services, scope[_AUTHORIZATION])
    if body is None or body.match_id is not None or user_id is None:
        return None
    claim = await services.channels.by_channel_id(body.channel_id)
    if claim is None or claim.owner_id != user_id or not await services.accounts.exists(user_id):
        return None
    stream_id = str(uuid.uuid4())
    receipt = await services.bus.publish(*stream_created_events(stream_id, claim, body))
    return _ANSWER.dump_json(StreamAccepted(**accepted(receipt), stream_id=stream_id), by_alias=True)


def _request(raw: bytes | None) -> StreamCreateRequest | None:
    """The body as FastAPI reads it (``json.loads``, then validated), or None if it is not valid."""
    if not raw:
        return None
    try:
        return StreamCreateRequest.model_validate(json.loads(raw))
    except (ValueError, ValidationError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _bearer_user(services: Services, authorization: bytes) -> str | None:
    """The user id of a valid access token, read as HTTPBearer reads the header; None otherwise."""
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return services.tokens.verify(token).user_id
    except InvalidToken:
        return None
