"""The current user's notification inbox: list it (newest first, unread filter), mark notifications read.

Reading is an event (``NotificationsRead`` on ``users``), projected into the inbox by
``pg.notifications``. Ids that are not the caller's (or not known yet) change nothing: the projection
only ever marks the caller's own notifications, so the command does not reveal which ids exist.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.base import utc_now
from events.topics import Topic
from events.users import NotificationsRead
from producers.consistency import InvalidPosition, parse_positions
from producers.deps import CurrentUser, Cursor, Limit, ReadYourWrites, ServicesDep, SpoilerViewDep
from producers.models.common import Accepted
from producers.pagination import encode_cursor, sort_key
from producers.problems import documented
from producers.routes import API_PREFIX, accepted
from producers.services import Services
from producers.spoilers import notifications_seen
from projections.notifications import NAME as INBOX_PROJECTOR
from projections.positions import wait_for_position
from projections.queries.notifications import InboxQueries

router = APIRouter(
    prefix=API_PREFIX + "/me/notifications", tags=["notifications"], dependencies=[ReadYourWrites]
)

MAX_IDS = 100
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class NotificationOut(BaseModel):
    """One notification of the inbox."""

    notification_id: str
    kind: str = Field(description="stream_live, match_starting, ...")
    title: str
    url: str = Field(description="Where the notification leads, e.g. `/live/{stream_id}`.")
    body: str
    created_at: datetime = Field(description="When its cause happened.")
    read: bool


class Inbox(BaseModel):
    """One page of the caller's notifications, newest first, with the number still unread."""

    items: list[NotificationOut]
    unread_count: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class MarkRead(BaseModel):
    """Which notifications to mark read: some by id, or all (everything created until now)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"ids": ["5b0e2c1a-7d3f-5e49-9a8b-1c2d3e4f5a6b"]}, {"all": True}]},
    )

    ids: list[Annotated[str, Field(pattern=UUID_PATTERN)]] = Field(default_factory=list, max_length=MAX_IDS)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MarkRead:
        if self.all == bool(self.ids):
            raise ValueError("give either ids (1 to 100) or all: true")
        return self


@router.get("", response_model=Inbox, responses=documented(400, 401, 422))
async def my_notifications(
    user: CurrentUser,
    services: ServicesDep,
    response: Response,
    view: SpoilerViewDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    unread: Annotated[bool, Query(description="Only the notifications not read yet.")] = False,
    x_min_position: Annotated[list[str] | None, Header(include_in_schema=False)] = None,
) -> Inbox:
    """Your notifications, newest first (`unread=true`: only unread ones), with the unread count."""
    if not await _inbox_reached(services, x_min_position):
        response.headers["X-Read-Model-Lag"] = "stale"
    inbox = InboxQueries(services.pool)
    after = sort_key(cursor, (datetime, str))
    rows = await inbox.page_after(user.user_id, unread=unread, limit=limit, after=after)
    last = rows[-1] if len(rows) == limit else None
    return Inbox(
        items=[NotificationOut(**row) for row in notifications_seen(rows, view)],
        unread_count=await inbox.unread_count(user.user_id),
        next_cursor=None if last is None else encode_cursor(last["created_at"], last["notification_id"]),
    )


@router.post(
    "/read",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 422, 503),
)
async def mark_read(body: MarkRead, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Mark notifications read: `{"ids": [...]}` (ids not yours are ignored) or `{"all": true}`."""
    event = NotificationsRead(
        user_id=user.user_id,
        notification_ids=tuple(dict.fromkeys(body.ids)),
        all_before=utc_now() if body.all else None,
    )
    return Accepted(**accepted(await services.bus.publish(event)))


async def _inbox_reached(services: Services, header: list[str] | None) -> bool:
    """Read-your-writes for ``users`` positions (a read): the shared check waits for ``pg.catalog``
    there, the inbox needs ``pg.notifications`` to have applied them too."""
    try:
        positions = [p for p in parse_positions(header or []) if p.topic == Topic.USERS]
    except InvalidPosition:
        return True  # the shared dependency has answered 400 already
    deadline = time.monotonic() + services.settings.api.read_your_writes_timeout_s
    for position in positions:
        remaining = max(0.0, deadline - time.monotonic())
        schema = services.namespace.read_schema
        if not await wait_for_position(
            services.pool, position, remaining, schema=schema, projector=INBOX_PROJECTOR
        ):
            return False
    return True
