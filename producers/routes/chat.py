"""The chat archive: a stream's visible messages by media-time range, for replaying chat with a VOD.

Reads the ``chat_messages`` projection (PostgreSQL), where deletions, bans and clears are already
applied (``visible``), so a replay shows what live viewers were left with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from producers.deps import Cursor, ReadYourWrites, ServicesDep
from producers.models.common import ID_PATTERN
from producers.pagination import decode_cursor, encode_cursor
from producers.problems import Unprocessable, documented
from producers.routes import API_PREFIX
from producers.routes.streams import find_stream
from projections.queries import Reader

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


class ChatArchive(Reader):
    """Visible messages of a stream between two media times, keyset-paginated."""

    async def messages(
        self, stream_id: str, from_ms: int, to_ms: int, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        where, params = (
            ["stream_id = %s", "visible", "media_time_ms >= %s", "media_time_ms < %s"],
            [
                stream_id,
                from_ms,
                to_ms,
            ],
        )
        if cursor:
            after_ms, after_id = decode_cursor(cursor, (int, str))
            where.append("(media_time_ms, message_id) > (%s, %s)")
            params += [after_ms, after_id]
        rows = await self._all(
            "SELECT message_id, user_id, display_name, text, sent_at, media_time_ms,"
            " reply_to_message_id AS reply_to FROM chat_messages WHERE "
            + " AND ".join(where)
            + " ORDER BY media_time_ms, message_id LIMIT %s",
            [*params, limit],
        )
        more = len(rows) == limit
        return rows, encode_cursor(rows[-1]["media_time_ms"], rows[-1]["message_id"]) if more else None


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
    rows, next_cursor = await ChatArchive(services.pool).messages(stream_id, from_ms, to_ms, limit, cursor)
    return ChatArchivePage(items=[ArchivedMessage.model_validate(r) for r in rows], next_cursor=next_cursor)
