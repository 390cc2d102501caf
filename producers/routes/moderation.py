"""Chat moderation over REST: the same command the edge's `mod` frame and chat commands produce, and
the moderators' views: the held messages still waiting for a decision, the moderation log, and the
pass that lets a moderator's page receive held messages live from the edge.

The views read the ``pg.chat`` projection (``held_messages``, ``moderation_log``); send
``X-Min-Position: chat.messages:<pos>`` (a position the edge delivered) to read what it includes.
Only the channel's owner, its moderators and admins may read them (403 for anyone else).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from events.chat import LinkPolicy, ModerationAction, ModerationActionRequested
from infra.moderator_passes import ModeratorPasses
from producers.deps import CurrentUser, Cursor, Limit, ReadYourWrites, ServicesDep
from producers.idempotency import DO_NOT_STORE_HEADER
from producers.models.common import Accepted
from producers.models.moderation import ModerationRequest
from producers.pagination import DEFAULT_LIMIT, encode_cursor, sort_key
from producers.problems import documented
from producers.routes import API_PREFIX, accepted
from producers.routes.streams import StreamId, moderated_stream
from producers.services import Services
from projections.queries.moderation import ModerationQueries

router = APIRouter(prefix=f"{API_PREFIX}/streams", tags=["moderation"], dependencies=[ReadYourWrites])

LogAction = Literal[
    "hold", "approve", "deny", "delete", "undelete", "ban", "timeout", "unban", "settings", "clear"
]


@router.post(
    "/{stream_id}/moderation",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 422, 503),
)
async def moderate(
    stream_id: StreamId, body: ModerationRequest, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Ban, time out, unban, delete/undelete, approve/deny a held message, chat settings and rules, clear."""
    await moderated_stream(services, stream_id, user, "moderate this chat")
    event = ModerationActionRequested(
        stream_id=stream_id,
        action=ModerationAction(body.action),
        actor_id=user.user_id,
        target_user_id=body.user_id,
        target_message_id=body.message_id,
        reason=body.reason,
        duration_s=body.duration_s,
        term=body.term or "",
        link_policy=None if body.link_policy is None else LinkPolicy(body.link_policy),
        link_allowlist=tuple(body.link_allowlist),
        enabled=body.enabled,
    )
    return Accepted(**accepted(await services.bus.publish(event)))


class HeldMessage(BaseModel):
    """A message the rules held for review: unseen by viewers until a moderator approves it."""

    message_id: str
    user_id: str
    display_name: str
    text: str = Field(description="Plain text: render with textContent.")
    score: float = Field(description="Risk score, 0-1.")
    reasons: list[str] = Field(description='The risk signals, e.g. "link", "obfuscated_term".')
    badges: list[str]
    media_time_ms: int | None
    reply_to: str | None
    held_at: datetime


class HeldQueue(BaseModel):
    """Held messages still pending, oldest first."""

    items: list[HeldMessage]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class LogEntry(BaseModel):
    """One moderation outcome: who did what to whom, and why."""

    event_id: str
    action: str = Field(
        description="hold, approve, deny, delete, undelete, ban, timeout, unban, settings, clear"
    )
    actor_id: str = Field(description='The moderator; "automod" for a hold.')
    target_user_id: str | None
    target_message_id: str | None
    reason: str
    duration_s: int | None
    at: datetime
    request_id: str | None = Field(description="The moderation request it answers, if any.")
    details: dict[str, Any]


class ModerationLog(BaseModel):
    """The stream's moderation log, newest first."""

    items: list[LogEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class ModeratorPassOut(BaseModel):
    """Send as `{"type": "moderate", "stream": ..., "pass": ...}` to an edge node (see its PROTOCOL)."""

    stream_id: str
    moderator_pass: str = Field(description="Signed, short-lived; valid for this user and stream only.")
    expires_in_s: int


@router.get(
    "/{stream_id}/moderation/held", response_model=HeldQueue, responses=documented(400, 401, 403, 404, 422)
)
async def held_queue(
    stream_id: StreamId,
    user: CurrentUser,
    services: ServicesDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> HeldQueue:
    """The stream's held messages waiting for approval or denial, oldest first (moderators only)."""
    await moderated_stream(services, stream_id, user, "see this chat's held messages")
    rows = await ModerationQueries(services.pool).pending_after(
        stream_id, limit=limit, after=sort_key(cursor, (datetime, str))
    )
    last = rows[-1] if len(rows) == limit else None
    return HeldQueue(
        items=[HeldMessage.model_validate(r) for r in rows],
        next_cursor=None if last is None else encode_cursor(last["held_at"], last["message_id"]),
    )


@router.get(
    "/{stream_id}/moderation/log", response_model=ModerationLog, responses=documented(400, 401, 403, 404, 422)
)
async def moderation_log(
    stream_id: StreamId,
    user: CurrentUser,
    services: ServicesDep,
    action: Annotated[LogAction | None, Query(description="Only entries of this action.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ModerationLog:
    """The stream's moderation log with actor and reason, newest first (moderators only)."""
    await moderated_stream(services, stream_id, user, "see this chat's moderation log")
    rows = await ModerationQueries(services.pool).log_after(
        stream_id, limit=limit, after=sort_key(cursor, (datetime, str)), action=action
    )
    last = rows[-1] if len(rows) == limit else None
    return ModerationLog(
        items=[LogEntry.model_validate(r) for r in rows],
        next_cursor=None if last is None else encode_cursor(last["at"], last["event_id"]),
    )


@router.post(
    "/{stream_id}/moderation/pass", response_model=ModeratorPassOut, responses=documented(401, 403, 404, 422)
)
async def moderator_pass(
    stream_id: StreamId, user: CurrentUser, services: ServicesDep, response: Response
) -> ModeratorPassOut:
    """A short-lived pass with which an edge node sends this connection the held messages live."""
    await moderated_stream(services, stream_id, user, "moderate this chat")
    passes = _passes(services)
    token = passes.issue(user.user_id, stream_id)
    response.headers["Cache-Control"] = "no-store"
    response.headers[DO_NOT_STORE_HEADER] = "secret"  # a credential: the idempotency layer keeps no copy
    return ModeratorPassOut(stream_id=stream_id, moderator_pass=token, expires_in_s=passes.ttl_s)


def _passes(services: Services) -> ModeratorPasses:
    auth = services.settings.auth
    secret = auth.jwt_secret.get_secret_value() if auth.jwt_secret else ""
    return ModeratorPasses(secret, issuer=auth.jwt_issuer, audience=auth.jwt_audience)
