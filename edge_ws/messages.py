"""Which server message each consumed event becomes, and who receives it. Pure: no I/O.

Four routes:

* ``history``: chat of a stream (messages, restored messages, deletions, bans, settings, clears). Kept
  in the stream's ring in log order, so a subscriber can be backfilled and a reconnecting client
  resumed by position.
* ``snapshot``: replace-by-key state of a stream (viewer count, a poll's tally, a prediction's pools,
  live or ended). Only the latest per key matters; a subscriber gets the current snapshot, then the
  changes.
* ``direct``: for one user only (the rejection or hold of their message, their notifications).
  A stream's results (a resolved prediction's winner) are snapshots of the stream's *results channel*
  (:func:`results_channel`), which a subscriber joins unless it hides the stream's match result
  (spoiler-free mode): the frames every subscriber gets carry no winner.
* ``moderators``: for the connections of a stream's moderators only (a connection joins with a
  moderator pass the API issued, ``moderate`` frame): the held message in full, then its resolution.
  Viewers never receive these; a held message's author gets the ``held`` notice (direct) instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge_ws.protocol import LogPosition, encode
from events import chat, notifications, points, polls, streams, viewers
from events.base import Event
from events.topics import Topic


class Route(enum.Enum):
    HISTORY = "history"
    SNAPSHOT = "snapshot"
    DIRECT = "direct"
    MODERATORS = "moderators"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One encoded server message and where it goes (a stream's subscribers, or one user)."""

    route: Route
    target: str  # stream id (history, snapshot, moderators) or user id (direct)
    position: LogPosition
    payload: bytes  # JSON, encoded once for every recipient
    snapshot_key: str = ""  # which snapshot entry it replaces (snapshot route)
    once_key: str = ""  # direct route: a delivery with a key a node already pushed is not pushed again
    at_ms: int = 0  # direct with a once key, moderators: when it happened (older than the node: not pushed)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _message(wire_type: str, stream: str, position: LogPosition, **fields: Any) -> bytes:
    return encode({"type": wire_type, "stream": stream, "pos": str(position), **fields})


def _history(event: Any, position: LogPosition, wire_type: str, **fields: Any) -> Delivery:
    payload = _message(wire_type, event.stream_id, position, **fields)
    return Delivery(Route.HISTORY, event.stream_id, position, payload)


def _state(event: Any, position: LogPosition, **fields: Any) -> Delivery:
    return _history(event, position, "state", **fields)


def _snapshot(event: Any, position: LogPosition, key: str, wire_type: str, **fields: Any) -> Delivery:
    payload = _message(wire_type, event.stream_id, position, **fields)
    return Delivery(Route.SNAPSHOT, event.stream_id, position, payload, key)


def delivery_for(event: Event, position: LogPosition) -> Delivery | None:
    """The message an event becomes on the wire, or None for events viewers never see."""
    build = _BUILDERS.get(type(event))
    return None if build is None else build(event, position)


def _message_fields(e: chat.ChatMessageAccepted | chat.ChatMessageHeld) -> dict[str, Any]:
    """A chat message as every frame that carries one spells it (``chat``, ``held``)."""
    return {
        "id": e.message_id,
        "user": e.user_id,
        "name": e.display_name,
        "text": e.text,
        "badges": list(e.badges),
        "at": _ms(e.occurred_at),
        "media_time_ms": e.media_time_ms,
        "reply_to": e.reply_to_message_id,
    }


def _accepted(e: chat.ChatMessageAccepted, p: LogPosition) -> Delivery:
    return _history(e, p, "chat", **_message_fields(e))


def _restored(e: chat.ChatMessageRestored, p: LogPosition) -> Delivery:
    """The message again, as first shown (``at`` is when it was sent); ``pos`` is the restore's."""
    return _history(
        e,
        p,
        "chat",
        id=e.message_id,
        user=e.user_id,
        name=e.display_name,
        text=e.text,
        badges=list(e.badges),
        at=_ms(e.sent_at),
        media_time_ms=e.media_time_ms,
        reply_to=e.reply_to_message_id,
        restored=True,
    )


def _deleted(e: chat.ChatMessageDeleted, p: LogPosition) -> Delivery:
    return _history(e, p, "deleted", id=e.message_id, by=e.deleted_by, reason=e.reason)


def _direct_notice(user_id: str, p: LogPosition, code: str, **fields: Any) -> Delivery:
    return Delivery(
        Route.DIRECT, user_id, p, encode({"type": "notice", "code": code, "pos": str(p), **fields})
    )


def _rejected(e: chat.ChatMessageRejected, p: LogPosition) -> Delivery:
    return _direct_notice(
        e.user_id, p, "rejected", stream=e.stream_id, id=e.message_id, reason=str(e.reason), detail=e.detail
    )


def _held(e: chat.ChatMessageHeld, p: LogPosition) -> Delivery:
    """Neither the score nor the signals: they would teach evasion."""
    return _direct_notice(e.user_id, p, "held", stream=e.stream_id, id=e.message_id)


def _timed_out(e: chat.UserTimedOut, p: LogPosition) -> Delivery:
    return _state(e, p, kind="timeout", user=e.user_id, until=_ms(e.until), reason=e.reason)


def _banned(e: chat.UserBanned, p: LogPosition) -> Delivery:
    return _state(e, p, kind="ban", user=e.user_id, reason=e.reason)


def _unbanned(e: chat.UserUnbanned, p: LogPosition) -> Delivery:
    return _state(e, p, kind="unban", user=e.user_id, reason=e.reason)


def _settings(e: chat.ChatSettingsChanged, p: LogPosition) -> Delivery:
    """What a chatter needs to know; never the blocked terms (moderators' data)."""
    return _state(
        e,
        p,
        kind="settings",
        slow_mode_s=e.slow_mode_s,
        followers_only_min_s=e.followers_only_min_s,
        link_policy=None if e.link_policy is None else str(e.link_policy),
        link_allowlist=list(e.link_allowlist),
        unique_chat=e.unique_chat,
    )


def _cleared(e: chat.ChatCleared, p: LogPosition) -> Delivery:
    return _state(e, p, kind="clear", before=_ms(e.cleared_before), reason=e.reason)


def _count(e: viewers.ViewerCountChanged, p: LogPosition) -> Delivery:
    return _snapshot(e, p, "count", "count", count=e.count, peak=e.peak, average=e.average)


def _tally(e: polls.PollTallyUpdated, p: LogPosition) -> Delivery:
    key = f"poll:{e.poll_id}"
    return _snapshot(e, p, key, "poll", poll=e.poll_id, counts=list(e.counts), total=e.total, final=e.final)


def _prediction(e: points.PredictionUpdated, p: LogPosition) -> Delivery:
    """A prediction's state and pools, keyed by prediction like a poll's tally (a subscriber gets the
    latest of each the node has seen). Title, outcomes and lock time come from the API; the winner
    comes in a ``prediction_result`` frame (:func:`result_delivery_for`), for who shows results."""
    return _snapshot(
        e,
        p,
        f"prediction:{e.prediction_id}",
        "prediction",
        prediction=e.prediction_id,
        status=e.status,
        pools=list(e.pools),
        stakers=list(e.stakers),
        total=sum(e.pools),
        settled=e.settled,
    )


RESULTS_SUFFIX = "#results"  # not a stream id character (protocol.STREAM_ID): no stream collides


def results_channel(stream: str) -> str:
    """The hub channel of a stream's results: joined by its subscribers who do not hide them."""
    return stream + RESULTS_SUFFIX


def result_delivery_for(event: Event, position: LogPosition) -> Delivery | None:
    """What only the subscribers who see results receive of an event (a prediction's winner), or None."""
    if (
        isinstance(event, points.PredictionUpdated)
        and event.status == "resolved"
        and event.winning_outcome >= 0
    ):
        payload = _message(
            "prediction_result",
            event.stream_id,
            position,
            prediction=event.prediction_id,
            winning_outcome=event.winning_outcome,
        )
        key = f"result:{event.prediction_id}"
        return Delivery(Route.SNAPSHOT, results_channel(event.stream_id), position, payload, key)
    return None


def _live(e: streams.StreamWentLive, p: LogPosition) -> Delivery:
    return _snapshot(e, p, "live", "state", kind="live", started_at=_ms(e.started_at))


def _ended(e: streams.StreamEnded, p: LogPosition) -> Delivery:
    return _snapshot(e, p, "live", "state", kind="ended", ended_at=_ms(e.ended_at), reason=str(e.reason))


def _notification(e: notifications.NotificationIssued, p: LogPosition) -> Delivery:
    payload = encode(
        {
            "type": "notice",
            "code": "notification",
            "pos": str(p),
            "id": e.notification_id,
            "kind": str(e.kind),
            "title": e.title,
            "url": e.url,
            "body": e.body,
        }
    )
    # The agent may publish a notification again after a restart (same id, new offset): pushed once.
    key, at_ms = f"notification:{e.notification_id}", _ms(e.occurred_at)
    return Delivery(Route.DIRECT, e.user_id, p, payload, once_key=key, at_ms=at_ms)


def moderator_delivery_for(event: Event, position: LogPosition) -> Delivery | None:
    """What the stream's moderators alone receive of an event (its held queue), or None."""
    match event:
        case chat.ChatMessageHeld():
            return _for_moderators(
                event,
                position,
                "held",
                **_message_fields(event),
                score=event.score,
                reasons=list(event.reasons),
            )
        case chat.ChatMessageAccepted(approved_by=str(moderator)):
            return _for_moderators(
                event, position, "resolved", id=event.message_id, outcome="approved", by=moderator
            )
        case chat.ChatMessageRejected(reason=chat.RejectionReason.DENIED):
            return _for_moderators(
                event,
                position,
                "resolved",
                id=event.message_id,
                outcome="denied",
                by=event.denied_by or "",
                reason=event.detail,
            )
    return None


def _for_moderators(event: Any, position: LogPosition, wire_type: str, **fields: Any) -> Delivery:
    payload = _message(wire_type, event.stream_id, position, **fields)
    return Delivery(Route.MODERATORS, event.stream_id, position, payload, at_ms=_ms(event.occurred_at))


_BUILDERS: dict[type[Event], Any] = {
    chat.ChatMessageAccepted: _accepted,
    chat.ChatMessageRestored: _restored,
    chat.ChatMessageDeleted: _deleted,
    chat.ChatMessageRejected: _rejected,
    chat.ChatMessageHeld: _held,
    chat.UserTimedOut: _timed_out,
    chat.UserBanned: _banned,
    chat.UserUnbanned: _unbanned,
    chat.ChatSettingsChanged: _settings,
    chat.ChatCleared: _cleared,
    viewers.ViewerCountChanged: _count,
    polls.PollTallyUpdated: _tally,
    points.PredictionUpdated: _prediction,
    streams.StreamWentLive: _live,
    streams.StreamEnded: _ended,
    notifications.NotificationIssued: _notification,
}

# The topics the reader consumes: every topic some builder above reads from.
CONSUMED_TOPICS = (
    Topic.CHAT_MESSAGES,
    Topic.VIEWERS_COUNTS,
    Topic.POLLS_TALLIES,
    Topic.PREDICTIONS_ODDS,
    Topic.STREAMS_LIFECYCLE,
    Topic.NOTIFICATIONS,
)
