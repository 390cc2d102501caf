"""Polls: open and close (the REST twin of `/poll` and `/endpoll` typed in chat), list and read.

Commands publish PollOpened / PollClosed to ``polls``; the poll agent tallies (and, like for the
edge's chat commands, checks the actor's rights again: it is the authority), the ``pg.polls``
projector stores what it decided. A poll is listed from its first tally on, which the agent
publishes as soon as it reads the open: send a tally's position (``polls.tallies:P:O``, the ``pos``
of an edge ``poll`` frame) as ``X-Min-Position`` to read it right away.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, status

from events.base import utc_now
from events.polls import PollClosed, PollOpened
from producers.deps import CurrentUser, Cursor, Limit, Principal, ReadYourWrites, ServicesDep
from producers.listings import PollReader
from producers.models.common import ID_PATTERN, Accepted
from producers.models.polls import PollAccepted, PollOpenRequest, PollOut, PollPage
from producers.problems import Conflict, NotFound, documented
from producers.routes import API_PREFIX, accepted
from producers.routes.streams import StreamId, find_stream, moderated_stream
from producers.services import Services

router = APIRouter(prefix=API_PREFIX, tags=["polls"], dependencies=[ReadYourWrites])
PollId = Annotated[str, Path(pattern=ID_PATTERN, description="The poll's id.")]


@router.post(
    "/streams/{stream_id}/polls",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PollAccepted,
    responses=documented(401, 403, 404, 422, 503),
)
async def open_poll(
    stream_id: StreamId, body: PollOpenRequest, user: CurrentUser, services: ServicesDep
) -> PollAccepted:
    """Open a poll on a stream (channel owner, its moderators or an admin)."""
    await _check_can_run_polls(services, stream_id, user)
    now = utc_now()
    event = PollOpened(
        occurred_at=now,
        poll_id=str(uuid.uuid4()),
        stream_id=stream_id,
        question=body.question,
        options=tuple(body.options),
        opened_by=user.user_id,
        closes_at=None if body.duration_s is None else now + timedelta(seconds=body.duration_s),
    )
    return PollAccepted(**accepted(await services.bus.publish(event)), poll_id=event.poll_id)


@router.post(
    "/streams/{stream_id}/polls/{poll_id}/close",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 409, 503),
)
async def close_poll(
    stream_id: StreamId, poll_id: PollId, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Close a poll before its deadline; its final tally follows (409 if it is already closed)."""
    await _check_can_run_polls(services, stream_id, user)
    polls = PollReader(services.pool)
    poll = await polls.poll(poll_id)
    if poll is None:  # maybe not tallied yet: asked for, and on this stream?
        poll = await polls.requested(poll_id)
    if poll is None or poll["stream_id"] != stream_id:
        raise NotFound(f"no poll {poll_id} on stream {stream_id}")
    if poll.get("final"):
        raise Conflict(f"poll {poll_id} is already closed")
    event = PollClosed(poll_id=poll_id, stream_id=stream_id, closed_by=user.user_id)
    return Accepted(**accepted(await services.bus.publish(event)))


@router.get("/streams/{stream_id}/polls", response_model=PollPage, responses=documented(400, 404, 422))
async def list_polls(
    stream_id: StreamId, services: ServicesDep, limit: Limit = 20, cursor: Cursor = None
) -> PollPage:
    """A stream's polls with their tallies, newest first (cursor-paginated)."""
    await find_stream(services, stream_id)
    rows, next_cursor = await PollReader(services.pool).of_stream(stream_id, limit=limit, cursor=cursor)
    return PollPage(items=[PollOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/polls/{poll_id}", response_model=PollOut, responses=documented(404, 422))
async def get_poll(poll_id: PollId, services: ServicesDep) -> PollOut:
    """One poll: question, options and its latest tally (final once closed)."""
    poll = await PollReader(services.pool).poll(poll_id)
    if poll is None:
        raise NotFound(f"no poll {poll_id}")
    return PollOut.model_validate(poll)


async def _check_can_run_polls(services: Services, stream_id: str, user: Principal) -> None:
    await moderated_stream(services, stream_id, user, "run polls here")
