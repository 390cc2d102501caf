"""Clips: any logged-in viewer asks for 5-60 s of a live stream's DVR window or of a replay.

``POST /clips`` (the stream in the body: a clip is the viewer's, not a sub-resource of the owner's
stream) checks the range against what the read model knows (the stream went live; the range lies
between the start of its DVR window and now, or the end of the replay) and publishes ClipRequested
on ``streams``; the ingest node holding the stream's segments cuts it exactly and publishes
ClipCreated or ClipFailed (:mod:`ingest_workers.clips`). Send the answer's ``position`` as
``X-Min-Position`` to read the pending clip at once in ``GET /clips/{id}`` or ``GET /streams/{id}/clips``
(every clip of the stream, with its status); ``GET /channels/{channel}/clips`` lists the ready ones.

A user may request ``api.clips_per_minute`` clips a minute (each node cuts one clip at a time, so a
flood would queue everyone's): past that, 429 with ``Retry-After``, and nothing is published. A
request no node answers reads as failed after ``api.clip_timeout_s`` (:mod:`projections.queries.clips`).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from events.base import utc_now
from events.streams import ClipRequested
from producers.deps import CurrentUser, Cursor, Limit, ReadYourWrites, ServicesDep
from producers.limits import ActionRate
from producers.models.clips import ClipAccepted, ClipOut, ClipPage, ClipRequest
from producers.models.common import ID_PATTERN
from producers.pagination import encode_cursor, sort_key
from producers.problems import NotFound, TooManyRequests, Unprocessable, documented
from producers.routes import API_PREFIX, accepted
from producers.routes.streams import StreamId, find_stream
from producers.services import Services
from projections.queries.clips import ClipQueries

router = APIRouter(prefix=API_PREFIX, tags=["clips"], dependencies=[ReadYourWrites])
SHORT_WINDOW_SEGMENTS = 6  # a live playlist without DVR still lists this many segments
SLACK_MS = 2_000  # the read model's times are wall-clock, the node checks the media exactly
RATE_WINDOW_S = 60  # api.clips_per_minute counts in windows of a minute
_CLIP_ID = re.compile(ID_PATTERN)


def clip_queries(services: Services) -> ClipQueries:
    """The clip queries with the configured timeout of a request no node answers (API and pages)."""
    return ClipQueries(services.pool, timeout_s=services.settings.api.clip_timeout_s)


async def find_clip(services: Services, clip_id: str) -> dict[str, Any] | None:
    """The clip as readers see it (None: unknown, or an id no clip can have)."""
    return await clip_queries(services).clip(clip_id) if _CLIP_ID.match(clip_id) else None


@router.post(
    "/clips",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ClipAccepted,
    responses=documented(401, 404, 422, 429, 503),
)
async def request_clip(body: ClipRequest, user: CurrentUser, services: ServicesDep) -> ClipAccepted:
    """Clip 5-60 s of a live stream's DVR window or of a replay (any logged-in viewer, rate limited)."""
    stream_id = body.stream_id
    stream = await find_stream(services, stream_id)
    await _check_available(services, stream, body)
    await _check_rate(services, user.user_id)
    event = ClipRequested(
        clip_id=str(uuid.uuid4()),
        stream_id=stream_id,
        channel_id=stream["channel_id"],
        requested_by=user.user_id,
        start_ms=body.start_ms,
        duration_ms=body.duration_ms,
        title=body.title,
    )
    return ClipAccepted(**accepted(await services.bus.publish(event)), clip_id=event.clip_id)


async def _check_rate(services: Services, user_id: str) -> None:
    """429 past ``api.clips_per_minute`` requests of ``user_id`` this minute (only requests that would
    be published count: a refused range is not a clip)."""
    per_minute = services.settings.api.clips_per_minute
    rate = ActionRate(
        services.redis,
        prefix=services.namespace.redis_prefix,
        kind="clip",
        per_window=per_minute,
        window_s=RATE_WINDOW_S,
    )
    if wait_s := await rate.take(f"user:{user_id}"):
        raise TooManyRequests(f"at most {per_minute} clips a minute; try again in {wait_s} s", wait_s)


async def _check_available(services: Services, stream: dict[str, Any], body: ClipRequest) -> None:
    """422 unless ``body``'s range can be in the stream's segments (the node checks it exactly)."""
    started: datetime | None = stream["started_at"]
    if started is None:
        raise Unprocessable("the stream has not gone live: there is nothing to clip")
    if stream.get("vod_deleted_at") is not None:
        raise Unprocessable("the replay of this stream was deleted")
    ended: datetime | None = stream["ended_at"]
    elapsed_ms = int(((ended or utc_now()) - started).total_seconds() * 1000)
    end_ms = body.start_ms + body.duration_ms
    if end_ms > elapsed_ms + SLACK_MS:
        raise Unprocessable(f"the clip ends at {end_ms} ms, after the stream's {max(elapsed_ms, 0)} ms")
    if ended is None:
        ingest = services.settings.ingest
        channel = await services.catalog.channel(stream["channel_id"])
        chosen = None if channel is None else channel.get("dvr_window_s")
        window_s = max(
            ingest.dvr_window_s if chosen is None else chosen, SHORT_WINDOW_SEGMENTS * ingest.segment_s
        )
        oldest_ms = elapsed_ms - int(window_s * 1000)
        if body.start_ms < oldest_ms - SLACK_MS:
            raise Unprocessable(
                f"the clip starts at {body.start_ms} ms, before the DVR window ({oldest_ms} ms)"
            )


@router.get("/clips/{clip_id}", response_model=ClipOut, responses=documented(400, 404))
async def get_clip(
    clip_id: Annotated[str, Path(description="The clip's id (`clip_id` of the request's answer).")],
    services: ServicesDep,
) -> ClipOut:
    """One clip, whatever its status (pending, ready or failed); 404 for an unknown id."""
    row = await find_clip(services, clip_id)
    if row is None:
        raise NotFound(f"no clip {clip_id}")
    return ClipOut.model_validate(row)


@router.get("/streams/{stream_id}/clips", response_model=ClipPage, responses=documented(400, 404, 422))
async def list_stream_clips(
    stream_id: StreamId, services: ServicesDep, limit: Limit = 20, cursor: Cursor = None
) -> ClipPage:
    """A stream's clips, newest request first, whatever their status: pending, ready or failed."""
    await find_stream(services, stream_id)
    after = sort_key(cursor, (datetime, str))
    rows = await clip_queries(services).of_stream_after(stream_id, limit=limit, after=after)
    full = len(rows) == limit
    next_cursor = encode_cursor(rows[-1]["requested_at"], rows[-1]["clip_id"]) if full else None
    return ClipPage(items=[ClipOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/channels/{channel}/clips", response_model=ClipPage, responses=documented(400, 404, 422))
async def list_channel_clips(
    channel: Annotated[str, Path(pattern=ID_PATTERN, description="Channel id or slug.")],
    services: ServicesDep,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ClipPage:
    """A channel's ready clips, newest first (cursor-paginated)."""
    found = await services.catalog.channel(channel)
    if found is None:
        raise NotFound(f"no channel {channel}")
    rows, next_cursor = await channel_clips(services, found["channel_id"], limit=limit, cursor=cursor)
    return ClipPage(items=[ClipOut.model_validate(r) for r in rows], next_cursor=next_cursor)


async def channel_clips(
    services: Services, channel_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the channel's ready clips and the cursor of the next one (None: the last page)."""
    after = sort_key(cursor, (datetime, str))
    rows = await clip_queries(services).of_channel_after(channel_id, limit=limit, after=after)
    full = len(rows) == limit
    return rows, encode_cursor(rows[-1]["created_at"], rows[-1]["clip_id"]) if full else None
