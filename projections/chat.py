"""The ``pg.chat`` projector: the chat archive with its visibility, and the moderation log.

From ``chat.messages``: accepted messages into ``chat_messages``; deletions, bans/time-outs and clears
set one hiding flag each (``visible`` and ``hidden_reason`` are generated from them), and an unban or
an undelete (``ChatMessageRestored``) clears its flag again, so what it hid comes back. Settings and
channel rules into ``chat_settings`` (each event states them in full). Every moderation outcome is a
``moderation_log`` row: bans, time-outs, unbans, deletes, undeletes, settings, clears, and for held
messages the hold (actor :data:`AUTOMOD`), the approval and the denial. Other rejections are told to
their author only and are not logged.
From ``chat.moderation``: every request into ``moderation_requests`` (refused ones too: a request
without an outcome in the log was refused), which also lends its reason to outcomes that carry none.

Exactly-once comes from :class:`~projections.projector.PostgresProjector`; each apply is idempotent by
key as well, and converges whichever of the two topics is applied first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.chat import (
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageDeleted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageRestored,
    ChatSettingsChanged,
    ModerationActionRequested,
    RejectionReason,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    outcome_ids,
)
from events.topics import Topic
from projections.projector import Apply, Cursor, PostgresProjector, handles

__all__ = ["AUTOMOD", "HANDLERS", "NAME", "TOPICS", "chat_projector"]

NAME = "pg.chat"
TOPICS = (Topic.CHAT_MESSAGES, Topic.CHAT_MODERATION)
AUTOMOD = "automod"  # the actor of log rows the rules decided (a message held for review)

INSERT_MESSAGE = """
INSERT INTO chat_messages (message_id, stream_id, user_id, display_name, text, sent_at, media_time_ms,
                           reply_to_message_id, deleted, suspended, cleared)
VALUES (%(id)s, %(stream)s, %(user)s, %(name)s, %(text)s, %(at)s, %(media)s, %(reply)s,
        EXISTS (SELECT 1 FROM chat_deletions WHERE message_id = %(id)s),
        EXISTS (SELECT 1 FROM chat_suspensions WHERE stream_id = %(stream)s AND user_id = %(user)s),
        %(at)s < COALESCE((SELECT cleared_before FROM chat_clears WHERE stream_id = %(stream)s), '-infinity'))
ON CONFLICT (message_id) DO NOTHING
"""
INSERT_LOG = """
INSERT INTO moderation_log (event_id, stream_id, actor_id, action, target_user_id, target_message_id,
                            reason, duration_s, at, request_id, details)
SELECT %(id)s, %(stream)s, %(actor)s, %(action)s, %(user)s, %(message)s,
       COALESCE(NULLIF(%(reason)s, ''), r.reason, ''), %(duration)s, %(at)s, r.event_id, %(details)s
FROM (SELECT 1) AS one LEFT JOIN moderation_requests r ON r.outcome_ids @> ARRAY[%(id)s::uuid]
ON CONFLICT (event_id) DO NOTHING
"""
INSERT_REQUEST = """
INSERT INTO moderation_requests (event_id, stream_id, actor_id, action, target_user_id,
                                 target_message_id, reason, duration_s, at, outcome_ids)
VALUES (%(id)s, %(stream)s, %(actor)s, %(action)s, %(user)s, %(message)s, %(reason)s, %(duration)s,
        %(at)s, %(outcomes)s::uuid[])
ON CONFLICT (event_id) DO NOTHING
"""
UPSERT_SETTINGS = """
INSERT INTO chat_settings (stream_id, slow_mode_s, followers_only_min_s, blocked_terms, link_policy,
                           link_allowlist, unique_chat, changed_by, changed_at, event_id)
VALUES (%(stream)s, %(slow)s, %(followers)s, %(terms)s, %(links)s, %(allowlist)s, %(unique)s,
        %(actor)s, %(at)s, %(id)s)
ON CONFLICT (stream_id) DO UPDATE SET
    slow_mode_s = EXCLUDED.slow_mode_s, followers_only_min_s = EXCLUDED.followers_only_min_s,
    blocked_terms = EXCLUDED.blocked_terms, link_policy = EXCLUDED.link_policy,
    link_allowlist = EXCLUDED.link_allowlist, unique_chat = EXCLUDED.unique_chat,
    changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at, event_id = EXCLUDED.event_id
WHERE chat_settings.changed_at <= EXCLUDED.changed_at
"""
LINK_OUTCOMES = """
UPDATE moderation_log SET request_id = %(id)s, reason = CASE WHEN reason = '' THEN %(reason)s ELSE reason END
WHERE event_id = ANY(%(outcomes)s::uuid[])
"""


async def _log(
    cur: Cursor,
    e: Event,
    *,
    stream_id: str,
    actor_id: str,
    action: str,
    user_id: str | None = None,
    message_id: str | None = None,
    reason: str = "",
    duration_s: int | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    await cur.execute(
        INSERT_LOG,
        {
            "id": e.event_id,
            "stream": stream_id,
            "actor": actor_id,
            "action": action,
            "user": user_id,
            "message": message_id,
            "reason": reason,
            "duration": duration_s,
            "at": e.occurred_at,
            "details": Jsonb(dict(details or {})),
        },
    )


async def _insert_message(
    cur: Cursor, e: ChatMessageAccepted | ChatMessageRestored, sent_at: datetime
) -> None:
    params = {
        "id": e.message_id,
        "stream": e.stream_id,
        "user": e.user_id,
        "name": e.display_name,
        "text": e.text,
        "at": sent_at,
        "media": e.media_time_ms,
        "reply": e.reply_to_message_id,
    }
    await cur.execute(INSERT_MESSAGE, params)


async def message_accepted(cur: Cursor, e: ChatMessageAccepted) -> None:
    await _insert_message(cur, e, e.occurred_at)
    if e.approved_by is not None:
        await _log(
            cur,
            e,
            stream_id=e.stream_id,
            actor_id=e.approved_by,
            action="approve",
            user_id=e.user_id,
            message_id=e.message_id,
        )


async def message_held(cur: Cursor, e: ChatMessageHeld) -> None:
    await _log(
        cur,
        e,
        stream_id=e.stream_id,
        actor_id=AUTOMOD,
        action="hold",
        user_id=e.user_id,
        message_id=e.message_id,
        reason=", ".join(e.reasons),
        details={"score": e.score, "reasons": list(e.reasons), "text": e.text},
    )


async def message_rejected(cur: Cursor, e: ChatMessageRejected) -> None:
    """Only a moderator's denial of a held message is moderation; the rules' rejections are not logged."""
    if e.reason is not RejectionReason.DENIED:
        return
    await _log(
        cur,
        e,
        stream_id=e.stream_id,
        actor_id=e.denied_by or "",
        action="deny",
        user_id=e.user_id,
        message_id=e.message_id,
        reason=e.detail,
    )


async def message_deleted(cur: Cursor, e: ChatMessageDeleted) -> None:
    await cur.execute(
        "INSERT INTO chat_deletions (message_id, stream_id, deleted_by) VALUES (%s, %s, %s)"
        " ON CONFLICT (message_id) DO UPDATE SET deleted_by = EXCLUDED.deleted_by",
        (e.message_id, e.stream_id, e.deleted_by),
    )
    await cur.execute("UPDATE chat_messages SET deleted = true WHERE message_id = %s", (e.message_id,))
    await _log(
        cur,
        e,
        stream_id=e.stream_id,
        actor_id=e.deleted_by,
        action="delete",
        message_id=e.message_id,
        reason=e.reason,
    )


async def message_restored(cur: Cursor, e: ChatMessageRestored) -> None:
    await cur.execute("DELETE FROM chat_deletions WHERE message_id = %s", (e.message_id,))
    await _insert_message(cur, e, e.sent_at)  # the event carries the message: converge even without it
    await cur.execute("UPDATE chat_messages SET deleted = false WHERE message_id = %s", (e.message_id,))
    await _log(
        cur,
        e,
        stream_id=e.stream_id,
        actor_id=e.restored_by,
        action="undelete",
        user_id=e.user_id,
        message_id=e.message_id,
        reason=e.reason,
    )


async def _suspend(cur: Cursor, stream_id: str, user_id: str, actor_id: str) -> None:
    await cur.execute(
        "INSERT INTO chat_suspensions (stream_id, user_id, actor_id) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (stream_id, user_id, actor_id),
    )
    await cur.execute(
        "UPDATE chat_messages SET suspended = true WHERE stream_id = %s AND user_id = %s",
        (stream_id, user_id),
    )


async def user_banned(cur: Cursor, e: UserBanned) -> None:
    await _suspend(cur, e.stream_id, e.user_id, e.actor_id)
    await _log(
        cur, e, stream_id=e.stream_id, actor_id=e.actor_id, action="ban", user_id=e.user_id, reason=e.reason
    )


async def user_timed_out(cur: Cursor, e: UserTimedOut) -> None:
    await _suspend(cur, e.stream_id, e.user_id, e.actor_id)
    await _log(
        cur,
        e,
        stream_id=e.stream_id,
        actor_id=e.actor_id,
        action="timeout",
        user_id=e.user_id,
        reason=e.reason,
        duration_s=e.duration_s,
        details={"until": e.until.isoformat()},
    )


async def user_unbanned(cur: Cursor, e: UserUnbanned) -> None:
    await cur.execute(
        "DELETE FROM chat_suspensions WHERE stream_id = %s AND user_id = %s", (e.stream_id, e.user_id)
    )
    await cur.execute(
        "UPDATE chat_messages SET suspended = false WHERE stream_id = %s AND user_id = %s",
        (e.stream_id, e.user_id),
    )
    await _log(
        cur, e, stream_id=e.stream_id, actor_id=e.actor_id, action="unban", user_id=e.user_id, reason=e.reason
    )


async def settings_changed(cur: Cursor, e: ChatSettingsChanged) -> None:
    link_policy = None if e.link_policy is None else e.link_policy.value
    await cur.execute(
        UPSERT_SETTINGS,
        {
            "stream": e.stream_id,
            "slow": e.slow_mode_s,
            "followers": e.followers_only_min_s,
            "terms": list(e.blocked_terms),
            "links": link_policy,
            "allowlist": list(e.link_allowlist),
            "unique": e.unique_chat,
            "actor": e.actor_id,
            "at": e.occurred_at,
            "id": e.event_id,
        },
    )
    details = {
        "slow_mode_s": e.slow_mode_s,
        "followers_only_min_s": e.followers_only_min_s,
        "blocked_terms_added": list(e.blocked_terms_added),
        "blocked_terms_removed": list(e.blocked_terms_removed),
        "link_policy": link_policy,
        "link_allowlist": list(e.link_allowlist),
        "unique_chat": e.unique_chat,
    }
    await _log(
        cur,
        e,
        stream_id=e.stream_id,
        actor_id=e.actor_id,
        action="settings",
        reason=e.reason,
        details=details,
    )


async def chat_cleared(cur: Cursor, e: ChatCleared) -> None:
    await cur.execute(
        "INSERT INTO chat_clears (stream_id, cleared_before, cleared_by) VALUES (%s, %s, %s)"
        " ON CONFLICT (stream_id) DO UPDATE SET cleared_before = GREATEST(chat_clears.cleared_before,"
        " EXCLUDED.cleared_before)",
        (e.stream_id, e.cleared_before, e.actor_id),
    )
    await cur.execute(
        "UPDATE chat_messages SET cleared = true WHERE stream_id = %s AND sent_at < %s",
        (e.stream_id, e.cleared_before),
    )
    details = {"cleared_before": _iso(e.cleared_before)}
    await _log(
        cur, e, stream_id=e.stream_id, actor_id=e.actor_id, action="clear", reason=e.reason, details=details
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


async def action_requested(cur: Cursor, e: ModerationActionRequested) -> None:
    params = {
        "id": e.event_id,
        "stream": e.stream_id,
        "actor": e.actor_id,
        "action": e.action.value,
        "user": e.target_user_id,
        "message": e.target_message_id,
        "reason": e.reason,
        "duration": e.duration_s,
        "at": e.occurred_at,
        "outcomes": outcome_ids(str(e.event_id)),
    }
    await cur.execute(INSERT_REQUEST, params)
    await cur.execute(LINK_OUTCOMES, params)


HANDLERS: Mapping[type[Event], Apply] = dict(
    [
        handles(ChatMessageAccepted, message_accepted),
        handles(ChatMessageHeld, message_held),
        handles(ChatMessageRejected, message_rejected),
        handles(ChatMessageDeleted, message_deleted),
        handles(ChatMessageRestored, message_restored),
        handles(UserBanned, user_banned),
        handles(UserTimedOut, user_timed_out),
        handles(UserUnbanned, user_unbanned),
        handles(ChatSettingsChanged, settings_changed),
        handles(ChatCleared, chat_cleared),
        handles(ModerationActionRequested, action_requested),
    ]
)


def chat_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The chat archive projector writing into ``schema``."""
    return PostgresProjector(pool, name=NAME, topics=TOPICS, handlers=HANDLERS, schema=schema)
