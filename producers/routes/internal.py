"""Internal endpoints for the ingest hooks (until the ingest issue brings its own control service)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from events.streams import StreamCreated
from producers.deps import InternalCaller, ServicesDep
from producers.models.streams import IngestAuthorized, IngestAuthorizeRequest
from producers.problems import Forbidden, documented

router = APIRouter(prefix="/internal", tags=["internal"])


@router.post("/ingest/authorize", response_model=IngestAuthorized, responses=documented(401, 403, 422, 503))
async def authorize_ingest(
    body: IngestAuthorizeRequest, _: InternalCaller, services: ServicesDep
) -> IngestAuthorized:
    """Map a publisher's stream key to its channel and current stream (creating one if none is open)."""
    channel_id = await services.channels.channel_for_key(body.stream_key)
    if channel_id is None:
        raise Forbidden("unknown stream key")
    current = await services.streams.current_for_channel(channel_id)
    if current is not None:
        return IngestAuthorized(channel_id=channel_id, stream_id=current["stream_id"], created=False)
    claim = await services.channels.by_id(channel_id)
    owner_id = claim.owner_id if claim else ""
    stream_id = str(uuid.uuid4())
    event = StreamCreated(
        stream_id=stream_id,
        channel_id=channel_id,
        owner_id=owner_id,
        title=f"{claim.slug if claim else 'live'} live",
    )
    receipt = await services.bus.publish(event)
    return IngestAuthorized(
        channel_id=channel_id, stream_id=stream_id, created=True, position=str(receipt.position)
    )
