"""The chat archive: a stream's visible messages by media-time range, for replaying chat with a VOD.

Reads the ``chat_messages`` projection (PostgreSQL), where deletions, bans and clears are already
applied (``visible``), so a replay shows what live viewers were left with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from producers.deps import Cursor, ReadYourWrites, ServicesDep
from producers.models.common import ID_PATTERN
from producers.pagination import encode_cursor, sort_key
from producers.problems import Unprocessable, documented
from producers.routes import API_PREFIX
from producers.routes.streams import find_stream
from projections.queries.chat import ChatQueries

router = APIRouter(prefix=API_PREFIX + "/streams", tags=["chat"], dependencies=[ReadYourWrites])
MAX_PAGE = 500
MAX_MEDIA_MS = 10**12  # ~31 years of media time: a bound, not a limit anyone meets


class ArchivedMessage(BaseModel):
    """A chat message as it stands in the archive (only visible ones are listed)."""

    message_id: str
    user_id: str
    display_name: str
    text: str
    sent_at: datetime
    media_time_ms: int
    reply_to: str | None


class ChatArchivePage(BaseModel):
    """Messages in media-time order; ``next_cursor`` continues after the last one."""

    items: list[ArchivedMessage]
    next_cursor: str | None


@router.get("/{stream_id}/chat", response_model=ChatArchivePage, responses=documented(400, 404, 422))
async def chat_archive(
    stream_id: Annotated[str, Path(pattern=ID_PATTERN, description="The stream's id.")],
    services: ServicesDep,
    from_ms: Annotated[int, Query(ge=0, le=MAX_MEDIA_MS, description="Media time (ms) from, inclusive.")] = 0,
    to_ms: Annotated[
        int, Query(ge=0, le=MAX_MEDIA_MS, description="Media time (ms) to, exclusive.")
    ] = MAX_MEDIA_MS,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size (max {MAX_PAGE}).")] = 100,
    cursor: Cursor = None,
) -> ChatArchivePage:
    """A stream's visible chat messages by media time (for replay beside the VOD), oldest first."""
    if to_ms <= from_ms:
        raise Unprocessable("to_ms must be after from_ms")
    await find_stream(services, stream_id)
    after = sort_key(cursor, (int, str))
    rows = await ChatQueries(services.pool).messages_after(
        stream_id, from_ms, to_ms, limit=limit, after=after
    )
    last = rows[-1] if len(rows) == limit else None
    return ChatArchivePage(
        items=[ArchivedMessage.model_validate(r) for r in rows],
        next_cursor=None if last is None else encode_cursor(last["media_time_ms"], last["message_id"]),
    )
