"""Streams: create, update, schedule, end, delete the replay; listings (live from Redis) and details."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, get_route_path
from starlette.types import Receive, Scope, Send

from events.streams import (
    StreamEndReason,
    StreamEndRequested,
    StreamRole,
    StreamScheduled,
    StreamUpdated,
    StreamVodDeleted,
    VodDeletionReason,
)
from producers import rules
from producers.deps import (
    CurrentUser,
    Cursor,
    Limit,
    Principal,
    ReadYourWrites,
    ServicesDep,
    SpoilerViewDep,
    names_positions,
)
from producers.models.common import ID_PATTERN, Accepted
from producers.models.streams import (
    LivePage,
    ScheduleRequest,
    StreamAccepted,
    StreamCreateRequest,
    StreamOut,
    StreamPage,
    StreamUpdateRequest,
)
from producers.pagination import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, encode_cursor, sort_key
from producers.problems import Conflict, IllegalTransition, NotFound, Unprocessable, documented
from producers.routes import API_PREFIX, GameFilter, LanguageFilter, TagFilter, accepted
from producers.routes.stream_creation import stream_created_events
from producers.services import Services
from producers.spoilers import streams_seen

router = APIRouter(prefix=API_PREFIX + "/streams", tags=["streams"], dependencies=[ReadYourWrites])
StreamId = Annotated[str, Path(pattern=ID_PATTERN, description="The stream's id.")]
LIVE_PATH = API_PREFIX + "/streams/live"


# First: the hottest route, and a router tries its routes in order.
@router.get("/live", response_model=LivePage, responses=documented(400, 422))
async def live_streams(
    request: Request,
    services: ServicesDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    game: GameFilter = None,
    tag: TagFilter = None,
    language: LanguageFilter = None,
) -> Response:
    """Live streams, most viewers first; by game, tag or language: latest start first, with counts."""
    if game or tag or language:
        # Never the cached page (it holds every live stream) nor Redis (it keeps no tags or languages).
        body = await _filtered_live_json(services, game, tag, language, limit, cursor)
    else:  # encoded by the listing's per-process cache (a LivePage, see producers.listings)
        body = await services.streams.live_json(limit=limit, cursor=cursor, fresh=names_positions(request))
    return Response(body, media_type="application/json")


async def _filtered_live_json(
    services: Services,
    game: str | None,
    tag: str | None,
    language: str | None,
    limit: int,
    cursor: str | None,
) -> bytes:
    rows = await services.streams.live_filtered(
        game=game, tag=tag, language=language, limit=limit, after=sort_key(cursor, (datetime, str))
    )
    next_cursor = encode_cursor(rows[-1]["started_at"], rows[-1]["stream_id"]) if len(rows) == limit else None
    page = LivePage.model_validate({"items": rows, "next_cursor": next_cursor, "source": "postgres"})
    return page.model_dump_json().encode()


class LiveListingRoute(BaseRoute):
    """``GET /streams/live`` as nearly every client sends it: the cached page's bytes, without FastAPI's
    dependency solving and parameter validation (most of a request's cost, profiled). Registered ahead
    of the API's routers, it matches only a plain query (``limit`` and ``cursor``, each valid and given
    at most once) without ``X-Min-Position``; any other request falls through to :func:`live_streams`,
    which answers it exactly (validation problems, read-your-writes, the game/tag/language filters,
    which must never get the cached unfiltered page). Same body, headers and metrics
    label (``path``); errors raised here reach the app's problem handlers like a route's."""

    path = path_format = LIVE_PATH  # the metrics label and FastAPI's telemetry read these

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET" or get_route_path(scope) != LIVE_PATH:
            return Match.NONE, {}
        query = _plain_live_query(scope["query_string"])
        if query is None or any(name == b"x-min-position" for name, _ in scope["headers"]):
            return Match.NONE, {}
        return Match.FULL, {"route": self, _LIVE_QUERY: query}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # url_for() names the documented route, live_streams

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit, cursor = scope[_LIVE_QUERY]
        services: Services = scope["app"].state.services
        body = await services.streams.live_json(limit=limit, cursor=cursor)
        headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_LIVE_QUERY = "esports.live_query"
_CURSOR = re.compile(CURSOR_PATTERN.encode())
_LIMIT = re.compile(rb"[1-9][0-9]{0,2}")


def _plain_live_query(query_string: bytes) -> tuple[int, str | None] | None:
    """``(limit, cursor)`` of a query naming only valid ones, each at most once; None for anything
    else (left to FastAPI's validation, which answers it the same way or with its 422)."""
    values: dict[bytes, bytes] = {}
    for pair in query_string.split(b"&") if query_string else ():
        name, _, value = pair.partition(b"=")
        if name in values or name not in (b"limit", b"cursor"):
            return None
        values[name] = value
    limit = values.get(b"limit")
    cursor = values.get(b"cursor")
    if limit is not None and (not _LIMIT.fullmatch(limit) or int(limit) > MAX_LIMIT):
        return None
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        return None
    return (DEFAULT_LIMIT if limit is None else int(limit)), (None if cursor is None else cursor.decode())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StreamAccepted,
    responses=documented(401, 403, 404, 422, 503),
)
async def create_stream(
    body: StreamCreateRequest, user: CurrentUser, services: ServicesDep
) -> StreamAccepted:
    """Create a stream of your channel (optionally attached to a match, optionally scheduled)."""
    # Its common case is answered ahead of FastAPI by StreamCreationRoute; this answers every other.
    claim = await services.channels.by_id(body.channel_id)
    if claim is None:
        raise NotFound(f"no channel {body.channel_id}")
    rules.check_owner_or_admin(user.user_id, user.role, claim.owner_id, "channel")
    if body.match_id is not None:
        await _existing_match(services, body.match_id)
    stream_id = str(uuid.uuid4())
    events = stream_created_events(stream_id, claim, body)
    receipt = await services.bus.publish(*events)
    return StreamAccepted(**accepted(receipt), stream_id=stream_id)


@router.patch(
    "/{stream_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 409, 422, 503),
)
async def update_stream(
    stream_id: StreamId, body: StreamUpdateRequest, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Change a stream's metadata or attach it to a match (owner or admin; not once ended)."""
    stream = await owned_stream(services, stream_id, user)
    rules.check_stream_transition("update", stream["state"])
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise Unprocessable("nothing to change")
    if body.match_id is not None:
        await _existing_match(services, body.match_id)
    event = StreamUpdated(
        stream_id=stream_id,
        updated_by=user.user_id,
        title=body.title,
        game=body.game,
        tags=None if body.tags is None else tuple(body.tags),
        match_id=body.match_id,
        role=None if body.role is None else StreamRole(body.role),
        language=body.language,
    )
    return Accepted(**accepted(await services.bus.publish(event)))


@router.post(
    "/{stream_id}/schedule",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 409, 422, 503),
)
async def schedule_stream(
    stream_id: StreamId, body: ScheduleRequest, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Set (or move) a stream's planned start; only before it goes live."""
    stream = await owned_stream(services, stream_id, user)
    rules.check_stream_transition("schedule", stream["state"])
    event = StreamScheduled(
        stream_id=stream_id,
        channel_id=stream["channel_id"],
        scheduled_start=body.scheduled_start,
        title=stream["title"],
        match_id=stream["match_id"],
    )
    return Accepted(**accepted(await services.bus.publish(event)))


@router.post(
    "/{stream_id}/end",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 409, 503),
)
async def end_stream(stream_id: StreamId, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Ask to end a live stream (owner, channel moderator or admin); the lifecycle agent decides."""
    stream = await find_stream(services, stream_id)
    is_moderator = await services.catalog.is_moderator(stream["channel_id"], user.user_id)
    reason = rules.check_can_end_stream(user.user_id, user.role, stream["owner_id"], is_moderator)
    rules.check_stream_transition("end", stream["state"])
    event = StreamEndRequested(
        stream_id=stream_id,
        channel_id=stream["channel_id"],
        requested_by=user.user_id,
        reason=StreamEndReason(reason),
    )
    return Accepted(**accepted(await services.bus.publish(event)))


@router.delete(
    "/{stream_id}/vod",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 409, 503),
)
async def delete_vod(stream_id: StreamId, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Delete an ended stream's replay (owner or admin): every ingest node removes its files."""
    stream = await owned_stream(services, stream_id, user)
    check_vod_deletable(stream)
    by_owner = user.user_id == stream["owner_id"]
    event = StreamVodDeleted(
        stream_id=stream_id,
        deleted_by=user.user_id,
        reason=VodDeletionReason.DELETED_BY_OWNER if by_owner else VodDeletionReason.DELETED_BY_ADMIN,
    )
    return Accepted(**accepted(await services.bus.publish(event)))


def check_vod_deletable(stream: dict[str, Any]) -> None:
    """Only an ended stream has a replay to delete, and only once (409 otherwise)."""
    if stream["state"] != "ended":
        raise IllegalTransition(f"cannot delete the replay of a stream that is {stream['state']}")
    if stream.get("vod_deleted_at") is not None:
        raise Conflict("the replay of this stream was already deleted")


@router.get("", response_model=StreamPage, responses=documented(400, 422))
async def list_streams(
    services: ServicesDep,
    view: SpoilerViewDep,
    state: Annotated[Literal["created", "scheduled", "live", "ended"] | None, Query()] = None,
    channel: Annotated[str | None, Query(pattern=ID_PATTERN, description="Channel id or slug.")] = None,
    match: Annotated[str | None, Query(pattern=ID_PATTERN, description="Match id.")] = None,
    game: GameFilter = None,
    tag: TagFilter = None,
    language: LanguageFilter = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> StreamPage:
    """Streams, newest first, filtered by state, channel, match, game, tag or language (cursor-paginated)."""
    rows = await services.streams.streams_after(
        state=state,
        channel=channel,
        match=match,
        game=game,
        tag=tag,
        language=language,
        limit=limit,
        after=sort_key(cursor, (datetime, str)),
    )
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["stream_id"]) if len(rows) == limit else None
    return StreamPage(
        items=[StreamOut.model_validate(r) for r in streams_seen(rows, view)], next_cursor=next_cursor
    )


@router.get("/{stream_id}", response_model=StreamOut, responses=documented(404))
async def get_stream(stream_id: StreamId, services: ServicesDep, view: SpoilerViewDep) -> StreamOut:
    """One stream."""
    return StreamOut.model_validate(streams_seen([await find_stream(services, stream_id)], view)[0])


async def find_stream(services: Services, stream_id: str) -> dict[str, Any]:
    stream = await services.streams.stream(stream_id)
    if stream is None or stream["created_at"] is None:
        raise NotFound(f"no stream {stream_id}")
    return stream


async def moderated_stream(services: Services, stream_id: str, user: Principal, what: str) -> dict[str, Any]:
    """The stream, if ``user`` may moderate it (its owner, a moderator of its channel or an admin)."""
    stream = await find_stream(services, stream_id)
    is_moderator = await services.catalog.is_moderator(stream["channel_id"], user.user_id)
    rules.check_can_moderate(user.user_id, user.role, stream["owner_id"], is_moderator, what)
    return stream


async def owned_stream(services: Services, stream_id: str, user: Principal) -> dict[str, Any]:
    stream = await find_stream(services, stream_id)
    rules.check_owner_or_admin(user.user_id, user.role, stream["owner_id"], "stream")
    return stream


async def _existing_match(services: Services, match_id: str) -> dict[str, Any]:
    match = await services.tournaments.match(match_id)
    if match is None:
        raise NotFound(f"no match {match_id}")
    return match
