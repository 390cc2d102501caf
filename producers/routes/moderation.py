"""Chat moderation over REST: the same command the edge's `mod` frame and chat commands produce."""

from __future__ import annotations

from fastapi import APIRouter, status

from events.chat import ModerationAction, ModerationActionRequested
from producers.deps import CurrentUser, ReadYourWrites, ServicesDep
from producers.models.common import Accepted
from producers.models.moderation import ModerationRequest
from producers.problems import documented
from producers.routes import API_PREFIX, accepted
from producers.routes.streams import StreamId, moderated_stream

router = APIRouter(prefix=f"{API_PREFIX}/streams", tags=["moderation"], dependencies=[ReadYourWrites])


@router.post(
    "/{stream_id}/moderation",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 422, 503),
)
async def moderate(
    stream_id: StreamId, body: ModerationRequest, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Ban, time out, unban, delete/undelete, approve/deny a held message, slow/followers-only, clear."""
    await moderated_stream(services, stream_id, user, "moderate this chat")
    event = ModerationActionRequested(
        stream_id=stream_id,
        action=ModerationAction(body.action),
        actor_id=user.user_id,
        target_user_id=body.user_id,
        target_message_id=body.message_id,
        reason=body.reason,
        duration_s=body.duration_s,
    )
    return Accepted(**accepted(await services.bus.publish(event)))
