"""The streamer's view of a live publisher: the latest ingest health report (``redis.ingest``)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from infra.redis import DRIVER_ERRORS, translate
from producers.deps import CurrentUser, ServicesDep
from producers.models.common import ID_PATTERN
from producers.problems import NotFound, documented
from producers.routes import API_PREFIX
from producers.routes.streams import owned_stream
from projections.redis_keys import IngestHealthKeys

router = APIRouter(prefix=API_PREFIX + "/streams", tags=["streams"])
StreamId = Annotated[str, Path(pattern=ID_PATTERN, description="The stream's id.")]


class IngestHealthOut(BaseModel):
    """The publisher's latest health report, measured by the transcoder (about every 5 s)."""

    session_id: str
    input_bitrate_kbps: float = Field(description="What the encoder (OBS) sends, in kbit/s.")
    fps: float = Field(description="Frames per second the transcoder receives.")
    encoder_speed: float = Field(
        description="Transcoding speed; below 1.0 the ladder falls behind real time."
    )
    dropped_frames: int
    restarts: int = Field(description="Transcoder restarts in this publishing session.")
    reported_at: str


@router.get("/{stream_id}/ingest", response_model=IngestHealthOut, responses=documented(401, 403, 404, 503))
async def ingest_health(stream_id: StreamId, user: CurrentUser, services: ServicesDep) -> IngestHealthOut:
    """The stream's ingest health (owner or admin); 404 when no publisher reported in the last 30 s."""
    await owned_stream(services, stream_id, user)
    key = IngestHealthKeys(services.namespace.redis_prefix).stream(stream_id)
    try:
        report = await services.redis.get(key)
    except DRIVER_ERRORS as e:  # the read model is unavailable (503), not empty
        raise translate(e, "reading ingest health") from e
    if report is None:
        raise NotFound(f"no recent ingest report for stream {stream_id} (is a publisher connected?)")
    return IngestHealthOut.model_validate(json.loads(report))
