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

from collections.abc import Mapping, Sequence
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
from projections.projector import Apply, ApplyRun, Cursor, PostgresProjector, handles, handles_runs

__all__ = ["AUTOMOD", "HANDLERS", "NAME", "TOPICS", "chat_projector"]

NAME = "pg.chat"
TOPICS = (Topic.CHAT_MESSAGES, Topic.CHAT_MODERATION)
AUTOMOD = "automod"  # the actor of log rows the rules decided (a message held for review)

# The multi-row statements take one array per column, passed in binary (%b): psycopg dumps a text
# array element by element with quoting, about 3x slower than the binary format.
INSERT_MESSAGES = """
INSERT INTO chat_messages (message_id, stream_id, user_id, display_name, text, sent_at, media_time_ms,
                           reply_to_message_id, deleted, suspended, cleared)
SELECT m.id, m.stream, m.author, m.name, m.text, m.at, m.media, m.reply,
       EXISTS (SELECT 1 FROM chat_deletions d WHERE d.message_id = m.id),
       EXISTS (SELECT 1 FROM chat_suspensions s WHERE s.stream_id = m.stream AND s.user_id = m.author),
       m.at < COALESCE((SELECT cleared_before FROM chat_clears c WHERE c.stream_id = m.stream), '-infinity')
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::bigint[],
            %b::text[]) AS m(id, stream, author, name, text, at, media, reply)
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
INSERT_REQUESTS = """
INSERT INTO moderation_requests (event_id, stream_id, actor_id, action, target_user_id,
                                 target_message_id, reason, duration_s, at, outcome_ids)
SELECT r.id, r.stream, r.actor, r.action, r.target_user, r.target_message, r.reason, r.duration, r.at,
       string_to_array(r.outcomes, ',')::uuid[]
FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::int[],
            %b::timestamptz[], %b::text[])
     AS r(id, stream, actor, action, target_user, target_message, reason, duration, at, outcomes)
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
SETTLE_SUSPENDED = """
UPDATE chat_messages AS m SET suspended = a.suspended
FROM (SELECT x.stream_id, x.user_id, EXISTS (SELECT 1 FROM chat_suspensions s
                                              WHERE s.stream_id = x.stream_id AND s.user_id = x.user_id)
      FROM unnest(%b::text[], %b::text[]) AS x(stream_id, user_id)) AS a(stream_id, user_id, suspended)
WHERE m.stream_id = a.stream_id AND m.user_id = a.user_id AND m.suspended <> a.suspended
"""
SUSPENSIONS = (UserBanned, UserTimedOut, UserUnbanned)
LINK_OUTCOMES = """
UPDATE moderation_log AS l SET request_id = r.event_id,
                               reason = CASE WHEN l.reason = '' THEN r.reason ELSE l.reason END
FROM moderation_requests AS r
WHERE r.event_id = ANY(%b::uuid[]) AND l.event_id = ANY(r.outcome_ids)
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


async def _insert_messages(
    cur: Cursor, messages: Sequence[tuple[ChatMessageAccepted | ChatMessageRestored, datetime]]
) -> None:
    """Insert messages (each with its sending time) in one statement, hidden as the flags say now."""
    rows = [
        (
            e.message_id,
            e.stream_id,
            e.user_id,
            e.display_name,
            e.text,
            at,
            e.media_time_ms,
            e.reply_to_message_id,
        )
        for e, at in messages
    ]
    await cur.execute(INSERT_MESSAGES, [list(column) for column in zip(*rows, strict=True)])


async def message_accepted(cur: Cursor, e: ChatMessageAccepted) -> None:
    await messages_accepted(cur, [e])


async def messages_accepted(cur: Cursor, events: Sequence[ChatMessageAccepted]) -> None:
    """A run of accepted messages: one insert for all (a rebuild's batches are mostly these)."""
    await _insert_messages(cur, [(e, e.occurred_at) for e in events])
    for e in events:
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
    await _insert_messages(cur, [(e, e.sent_at)])  # the event carries the message: converge even without it
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
    """The author's messages are hidden by :func:`settle_suspensions` at the end of the batch."""
    await cur.execute(
        "INSERT INTO chat_suspensions (stream_id, user_id, actor_id) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (stream_id, user_id, actor_id),
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
    """The author's messages come back in :func:`settle_suspensions` at the end of the batch."""
    await cur.execute(
        "DELETE FROM chat_suspensions WHERE stream_id = %s AND user_id = %s", (e.stream_id, e.user_id)
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
    await actions_requested(cur, [e])


async def actions_requested(cur: Cursor, events: Sequence[ModerationActionRequested]) -> None:
    """Record the requests and lend each its id and reason to outcomes already logged (two statements
    for a whole run: ``chat.moderation`` holds nothing else)."""
    rows = [
        (
            e.event_id,
            e.stream_id,
            e.actor_id,
            e.action.value,
            e.target_user_id,
            e.target_message_id,
            e.reason,
            e.duration_s,
            e.occurred_at,
            ",".join(outcome_ids(str(e.event_id))),
        )
        for e in events
    ]
    await cur.execute(INSERT_REQUESTS, [list(column) for column in zip(*rows, strict=True)])
    await cur.execute(LINK_OUTCOMES, ([e.event_id for e in events],))


async def settle_suspensions(cur: Cursor, events: Sequence[Event]) -> None:
    """Set ``suspended`` on the messages of each author a batch banned, timed out or unbanned.

    Once per batch, not per event: a ban rewrites every message of its author, and the rows whose
    flag does not change are left alone. Nothing in a batch reads the flag (a message inserted
    after a ban reads ``chat_suspensions``), so setting it at the end gives the same rows.
    """
    authors = sorted({(e.stream_id, e.user_id) for e in events if isinstance(e, SUSPENSIONS)})
    if authors:
        await cur.execute(SETTLE_SUSPENDED, ([s for s, _ in authors], [u for _, u in authors]))


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


RUNS: Mapping[type[Event], ApplyRun] = dict(
    [
        handles_runs(ChatMessageAccepted, messages_accepted),
        handles_runs(ModerationActionRequested, actions_requested),
    ]
)


def chat_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The chat archive projector writing into ``schema``."""
    return PostgresProjector(
        pool,
        name=NAME,
        topics=TOPICS,
        handlers=HANDLERS,
        runs=RUNS,
        schema=schema,
        settle=settle_suspensions,
    )
