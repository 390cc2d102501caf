"""Channels: create, update, list, show; stream-key rotation; moderators."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from events.base import Event
from events.channels import ChannelCreated, ChannelStreamKeyRotated, ChannelUpdated
from events.users import ModeratorAppointed, ModeratorRemoved, UserRole, UserRoleChanged
from infra.kafka import KafkaError
from producers import rules, stream_keys
from producers.commands import nothing_recorded
from producers.deps import CurrentUser, Cursor, Limit, Principal, ReadYourWrites, ServicesDep
from producers.idempotency import DO_NOT_STORE_HEADER
from producers.models.channels import (
    ChannelAccepted,
    ChannelCreateRequest,
    ChannelDetail,
    ChannelOut,
    ChannelPage,
    ChannelUpdateRequest,
    StreamKeyIssued,
)
from producers.models.common import ID_PATTERN, Accepted
from producers.problems import Conflict, NotFound, Unprocessable, documented
from producers.routes import API_PREFIX, accepted
from producers.services import Services
from producers.store.channels import ChannelClaim, StoredKey

router = APIRouter(prefix=API_PREFIX + "/channels", tags=["channels"], dependencies=[ReadYourWrites])
ChannelRef = Annotated[str, Path(pattern=ID_PATTERN, description="The channel's id or slug.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ChannelAccepted,
    responses=documented(401, 409, 422, 503),
)
async def create_channel(
    body: ChannelCreateRequest, user: CurrentUser, services: ServicesDep
) -> ChannelAccepted:
    """Open a channel; a viewer who opens one becomes a streamer."""
    channel_id = str(uuid.uuid4())
    if not await services.channels.claim(ChannelClaim(channel_id, user.user_id, body.slug)):
        raise Conflict(f"the slug {body.slug!r} is taken")
    events: list[Event] = [
        ChannelCreated(
            channel_id=channel_id,
            owner_id=user.user_id,
            slug=body.slug,
            display_name=body.display_name,
            description=body.description,
            language=body.language,
        )
    ]
    if user.role == "viewer":
        events.append(_became_streamer(user))
        await services.accounts.set_role(user.user_id, "streamer")
    try:
        receipt = await services.bus.publish(*events)
    except KafkaError as e:
        if nothing_recorded(e):  # in doubt the slug stays claimed: never two channels with one slug
            await services.channels.release(channel_id)
            await services.accounts.set_role(user.user_id, user.role)
        raise
    return ChannelAccepted(**accepted(receipt), channel_id=channel_id, slug=body.slug)


def _became_streamer(user: Principal) -> UserRoleChanged:
    return UserRoleChanged(
        user_id=user.user_id, role=UserRole.STREAMER, previous_role=UserRole.VIEWER, changed_by=user.user_id
    )


@router.patch(
    "/{channel}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 422, 503),
)
async def update_channel(
    channel: ChannelRef, body: ChannelUpdateRequest, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Change a channel's profile or its latency mode (owner or admin)."""
    channel_id = (await _owned_channel(services, channel, user)).channel_id
    changes = body.model_dump(exclude_none=True)  # None = unchanged, in the request as in the event
    if not changes:
        raise Unprocessable("nothing to change")
    event = ChannelUpdated(channel_id=channel_id, updated_by=user.user_id, **changes)
    return Accepted(**accepted(await services.bus.publish(event)))


@router.get("", response_model=ChannelPage, responses=documented(400, 422))
async def list_channels(
    services: ServicesDep,
    owner: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this user's channels.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ChannelPage:
    """Channels, newest first (cursor-paginated)."""
    rows, next_cursor = await services.catalog.channels(owner=owner, limit=limit, cursor=cursor)
    return ChannelPage(items=[ChannelOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{channel}", response_model=ChannelDetail, responses=documented(404))
async def get_channel(channel: ChannelRef, services: ServicesDep) -> ChannelDetail:
    """A channel by slug (or id), with its moderators."""
    row = await services.catalog.channel(channel)
    if row is None:
        raise NotFound(f"no channel {channel}")
    moderators = await services.catalog.moderators(row["channel_id"])
    return ChannelDetail.model_validate({**row, "moderators": moderators})


@router.post(
    "/{channel}/stream-key",
    status_code=status.HTTP_201_CREATED,
    response_model=StreamKeyIssued,
    responses=documented(401, 403, 404, 409, 503),
)
async def rotate_stream_key(
    channel: ChannelRef, user: CurrentUser, services: ServicesDep, response: Response
) -> StreamKeyIssued:
    """Issue a new stream key (shown once in this response; the previous key stops working)."""
    channel_id = (await _owned_channel(services, channel, user)).channel_id
    previous = await services.channels.active_key(channel_id)
    key = stream_keys.issue_key()
    await services.channels.put_key(channel_id, StoredKey(key.key_id, key.key_hash))
    event = ChannelStreamKeyRotated(channel_id=channel_id, key_id=key.key_id, rotated_by=user.user_id)
    try:
        receipt = await services.bus.publish(event)
    except KafkaError as e:
        if nothing_recorded(e):  # in doubt the new key stays: the rotation may be in the log
            await services.channels.put_key(channel_id, previous)
        raise
    response.headers["Cache-Control"] = "no-store"
    response.headers[DO_NOT_STORE_HEADER] = "secret"  # the idempotency layer must not keep this body
    return StreamKeyIssued(
        **accepted(receipt), channel_id=channel_id, key_id=key.key_id, stream_key=key.secret
    )


@router.put(
    "/{channel}/moderators/{user_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 503),
)
async def appoint_moderator(
    channel: ChannelRef,
    user_id: Annotated[str, Path(pattern=ID_PATTERN, description="The user's id, or their username.")],
    user: CurrentUser,
    services: ServicesDep,
) -> Accepted:
    """Make a user (by id or username) a moderator of the channel (owner or admin)."""
    channel_id = (await _owned_channel(services, channel, user)).channel_id
    account = await services.accounts.by_id(user_id) or await services.accounts.by_username(user_id)
    if account is None:
        raise NotFound(f"no user {user_id}")
    event = ModeratorAppointed(user_id=account.user_id, channel_id=channel_id, appointed_by=user.user_id)
    return Accepted(**accepted(await services.bus.publish(event)))


@router.delete(
    "/{channel}/moderators/{user_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 503),
)
async def remove_moderator(
    channel: ChannelRef,
    user_id: Annotated[str, Path(pattern=ID_PATTERN)],
    user: CurrentUser,
    services: ServicesDep,
) -> Accepted:
    """Remove a moderator from the channel (owner or admin)."""
    channel_id = (await _owned_channel(services, channel, user)).channel_id
    event = ModeratorRemoved(user_id=user_id, channel_id=channel_id, removed_by=user.user_id)
    return Accepted(**accepted(await services.bus.publish(event)))


async def _owned_channel(services: Services, channel: str, user: Principal) -> ChannelClaim:
    claim = await services.channels.by_id(channel)
    if claim is None:
        raise NotFound(f"no channel {channel}")
    rules.check_owner_or_admin(user.user_id, user.role, claim.owner_id, "channel")
    return claim
