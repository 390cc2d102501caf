"""Internal endpoints for the ingest hooks (until the ingest issue brings its own control service).

Wrong stream keys are counted per publisher address (which the ingest node forwards; else the caller's)
in fixed Redis windows: past
``KEY_FAILURES_PER_WINDOW`` the check answers 429 (even for a right key) until the window ends, so
keys cannot be guessed at the hook's speed.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from events.streams import StreamCreated
from producers.auth.login_limiter import FailureWindow
from producers.deps import ClientIp, InternalCaller, ServicesDep
from producers.models.streams import IngestAuthorized, IngestAuthorizeRequest
from producers.problems import Forbidden, TooManyRequests, documented
from producers.services import Services

router = APIRouter(prefix="/internal", tags=["internal"])

KEY_FAILURES_PER_WINDOW = 20
KEY_WINDOW_S = 60


def _key_failures(services: Services) -> FailureWindow:
    return FailureWindow(
        services.redis,
        prefix=services.namespace.redis_prefix,
        kind="stream-key-fail",
        limit=KEY_FAILURES_PER_WINDOW,
        window_s=KEY_WINDOW_S,
    )


async def _carried_metadata(services: Services, channel_id: str, slug: str) -> dict[str, Any]:
    """Title, game, tags and language of the channel's newest stream in the read model (a streamer sets
    them once and every later push keeps them, as on Twitch); ``"{slug} live"`` for a first stream."""
    rows, _ = await services.streams.streams(state=None, channel=channel_id, match=None, limit=1, cursor=None)
    if not rows:
        return {"title": f"{slug} live"}
    last = rows[0]
    return {
        "title": last["title"],
        "game": last["game"],
        "tags": tuple(last["tags"]),
        "language": last["language"],
    }


@router.post(
    "/ingest/authorize", response_model=IngestAuthorized, responses=documented(401, 403, 422, 429, 503)
)
async def authorize_ingest(
    body: IngestAuthorizeRequest, _: InternalCaller, ip: ClientIp, services: ServicesDep
) -> IngestAuthorized:
    """Map a publisher's stream key to its channel and current stream (creating one if none is open)."""
    publisher = str(body.publisher_addr) if body.publisher_addr is not None else ip
    key_failures = _key_failures(services)
    if wait_s := await key_failures.blocked_for(f"ip:{publisher}"):
        raise TooManyRequests("too many wrong stream keys; try again later", wait_s)
    holder = await services.channels.holder_of_key(body.stream_key)
    if holder is None:
        await key_failures.record(f"ip:{publisher}")
        raise Forbidden("unknown stream key")
    channel_id, key_id = holder.channel_id, holder.key_id
    profile = await services.catalog.channel(channel_id)  # the channel's video settings, if projected
    dvr_window_s = profile["dvr_window_s"] if profile else None
    current = await services.streams.current_for_channel(channel_id)
    if current is not None:
        return IngestAuthorized(
            channel_id=channel_id,
            key_id=key_id,
            stream_id=current["stream_id"],
            created=False,
            dvr_window_s=dvr_window_s,
        )
    claim = await services.channels.by_id(channel_id)
    stream_id = str(uuid.uuid4())
    event = StreamCreated(
        stream_id=stream_id,
        channel_id=channel_id,
        owner_id=claim.owner_id if claim else "",
        **await _carried_metadata(services, channel_id, claim.slug if claim else "live"),
    )
    receipt = await services.bus.publish(event)
    return IngestAuthorized(
        channel_id=channel_id,
        key_id=key_id,
        stream_id=stream_id,
        created=True,
        position=str(receipt.position),
        dvr_window_s=dvr_window_s,
    )
