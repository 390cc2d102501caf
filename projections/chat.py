"""The ``pg.chat`` projector: the chat archive with its visibility, and the moderation log.

From ``chat.messages``: accepted messages into ``chat_messages``; deletions, bans/time-outs and clears
set one hiding flag each (``visible`` and ``hidden_reason`` are generated from them), and an unban or
an undelete (``ChatMessageRestored``) clears its flag again, so what it hid comes back. Settings and
channel rules into ``chat_settings`` (each event states them in full). Held messages and their
approval or denial into the moderators' queue ``held_messages`` (:mod:`projections.held_queue`).
Every moderation outcome is a ``moderation_log`` row: bans, time-outs, unbans, deletes, undeletes,
settings, clears, and for held messages the hold (actor :data:`AUTOMOD`), the approval and the
denial. Other rejections are told to their author only and are not logged.
From ``chat.moderation``: every request into ``moderation_requests`` (refused ones too: a request
without an outcome in the log was refused), which also lends its reason to outcomes that carry none.

Exactly-once comes from :class:`~projections.projector.PostgresProjector`; each apply is idempotent by
key as well, and converges whichever of the two topics is applied first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

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
from projections.held_queue import apply_held
from projections.projector import Apply, Cursor, PostgresProjector

__all__ = ["AUTOMOD", "HANDLERS", "NAME", "TOPICS", "Plan", "apply_batch", "chat_projector", "plan"]

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
# Every outcome of a batch in one statement, in log order. The reason an outcome event lacks (and
# the request id) comes from its moderation request, which a batch inserts before its log rows.
INSERT_LOG = """
INSERT INTO moderation_log (event_id, stream_id, actor_id, action, target_user_id, target_message_id,
                            reason, duration_s, at, request_id, details)
SELECT l.id, l.stream, l.actor, l.action, l.target_user, l.target_message,
       COALESCE(NULLIF(l.reason, ''), r.reason, ''), l.duration, l.at, r.event_id, l.details::jsonb
FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::int[],
            %b::timestamptz[], %b::text[]) WITH ORDINALITY
     AS l(id, stream, actor, action, target_user, target_message, reason, duration, at, details, n)
LEFT JOIN moderation_requests r ON r.outcome_ids @> ARRAY[l.id]
ORDER BY l.n
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
DELETE_DELETIONS = "DELETE FROM chat_deletions WHERE message_id = ANY(%b::text[])"
UPSERT_DELETIONS = """
INSERT INTO chat_deletions (message_id, stream_id, deleted_by)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[])
ON CONFLICT (message_id) DO UPDATE SET deleted_by = EXCLUDED.deleted_by
"""
SET_DELETED = """
UPDATE chat_messages AS m SET deleted = x.deleted
FROM unnest(%b::text[], %b::bool[]) AS x(message_id, deleted) WHERE m.message_id = x.message_id
"""
DELETE_SUSPENSIONS = """
DELETE FROM chat_suspensions AS s USING unnest(%b::text[], %b::text[]) AS x(stream_id, user_id)
WHERE s.stream_id = x.stream_id AND s.user_id = x.user_id
"""
INSERT_SUSPENSIONS = """
INSERT INTO chat_suspensions (stream_id, user_id, actor_id)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[])
ON CONFLICT DO NOTHING
"""
UPSERT_CLEAR = """
INSERT INTO chat_clears (stream_id, cleared_before, cleared_by) VALUES (%s, %s, %s)
ON CONFLICT (stream_id) DO UPDATE SET cleared_before = GREATEST(chat_clears.cleared_before,
                                                                EXCLUDED.cleared_before)
"""
SET_CLEARED = "UPDATE chat_messages SET cleared = true WHERE stream_id = %s AND sent_at < %s"
SUSPENSIONS = (UserBanned, UserTimedOut, UserUnbanned)
LINK_OUTCOMES = """
UPDATE moderation_log AS l SET request_id = r.event_id,
                               reason = CASE WHEN l.reason = '' THEN r.reason ELSE l.reason END
FROM moderation_requests AS r
WHERE r.event_id = ANY(%b::uuid[]) AND l.event_id = ANY(r.outcome_ids)
"""

Message = ChatMessageAccepted | ChatMessageRestored
LogRow = tuple[UUID, str, str, str, str | None, str | None, str, int | None, datetime, str]
StreamUser = tuple[str, str]


@dataclass(slots=True)
class Plan:
    """What a batch of events writes, each table's rows at once, with the result of applying the
    events one by one (see :func:`plan`)."""

    requests: dict[UUID, ModerationActionRequested] = field(default_factory=dict)
    messages: dict[str, tuple[Message, datetime]] = field(default_factory=dict)  # first one wins
    undeleted: set[str] = field(default_factory=set)  # deletion rows removed (a restore)
    deletions: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> stream, deleted_by
    deleted: dict[str, bool] = field(default_factory=dict)  # the flag after the batch
    unsuspended: set[StreamUser] = field(default_factory=set)  # suspension rows removed (an unban)
    suspensions: dict[StreamUser, str] = field(default_factory=dict)  # -> the actor of the first ban
    in_order: list[ChatSettingsChanged | ChatCleared] = field(default_factory=list)
    log: dict[UUID, LogRow] = field(default_factory=dict)  # the first row of an event id wins


def plan(events: Sequence[Event]) -> Plan:
    """The rows ``events`` write, as if applied one by one, for :func:`apply_batch` (pure).

    Deletions and suspensions: the last delete or restore of a message decides (a restore removes
    the deletion row, the deleted_by of the last delete since then stays), the first ban since the
    last unban names the actor (a ban of a suspended author changes nothing). Everything else
    converges whatever the order: inserts keep the first row of a key, the hiding flags follow
    the deletion, suspension and clear rows, the log looks its request up, and requests link the
    log rows already there.
    """
    batch = Plan()
    for e in events:
        match e:
            case ChatMessageAccepted():
                batch.messages.setdefault(e.message_id, (e, e.occurred_at))
            case ChatMessageDeleted():
                first = batch.deletions.get(e.message_id, (e.stream_id, ""))
                batch.deletions[e.message_id] = (first[0], e.deleted_by)
                batch.deleted[e.message_id] = True
            case ChatMessageRestored():
                batch.messages.setdefault(e.message_id, (e, e.sent_at))
                batch.undeleted.add(e.message_id)
                batch.deletions.pop(e.message_id, None)
                batch.deleted[e.message_id] = False
            case UserBanned() | UserTimedOut():
                batch.suspensions.setdefault((e.stream_id, e.user_id), e.actor_id)
            case UserUnbanned():
                batch.unsuspended.add((e.stream_id, e.user_id))
                batch.suspensions.pop((e.stream_id, e.user_id), None)
            case ModerationActionRequested():
                batch.requests.setdefault(e.event_id, e)
            case ChatSettingsChanged() | ChatCleared():
                batch.in_order.append(e)
        row = log_row(e)
        if row is not None:
            batch.log.setdefault(e.event_id, row)
    return batch


def log_row(e: Event) -> LogRow | None:
    """The moderation log row of an outcome event; None for events that are not moderation."""
    match e:
        case ChatMessageAccepted(approved_by=str(moderator)):
            return _row(e, e.stream_id, moderator, "approve", e.user_id, e.message_id)
        case ChatMessageHeld():
            details = {"score": e.score, "reasons": list(e.reasons), "text": e.text}
            reason = ", ".join(e.reasons)
            return _row(e, e.stream_id, AUTOMOD, "hold", e.user_id, e.message_id, reason, details=details)
        case ChatMessageRejected(reason=RejectionReason.DENIED):  # the rules' rejections are not logged
            return _row(e, e.stream_id, e.denied_by or "", "deny", e.user_id, e.message_id, e.detail)
        case ChatMessageDeleted():
            return _row(e, e.stream_id, e.deleted_by, "delete", None, e.message_id, e.reason)
        case ChatMessageRestored():
            return _row(e, e.stream_id, e.restored_by, "undelete", e.user_id, e.message_id, e.reason)
        case UserBanned():
            return _row(e, e.stream_id, e.actor_id, "ban", e.user_id, None, e.reason)
        case UserTimedOut():
            details = {"until": e.until.isoformat()}
            return _row(
                e, e.stream_id, e.actor_id, "timeout", e.user_id, None, e.reason, e.duration_s, details
            )
        case UserUnbanned():
            return _row(e, e.stream_id, e.actor_id, "unban", e.user_id, None, e.reason)
        case ChatSettingsChanged():
            return _row(e, e.stream_id, e.actor_id, "settings", None, None, e.reason, details=_settings(e))
        case ChatCleared():
            details = {"cleared_before": _iso(e.cleared_before)}
            return _row(e, e.stream_id, e.actor_id, "clear", None, None, e.reason, details=details)
    return None


def _row(
    e: Event,
    stream_id: str,
    actor_id: str,
    action: str,
    user_id: str | None,
    message_id: str | None,
    reason: str = "",
    duration_s: int | None = None,
    details: Mapping[str, object] | None = None,
) -> LogRow:
    detail = json.dumps(dict(details or {}))
    return (
        e.event_id,
        stream_id,
        actor_id,
        action,
        user_id,
        message_id,
        reason,
        duration_s,
        e.occurred_at,
        detail,
    )


def _settings(e: ChatSettingsChanged) -> dict[str, object]:
    return {
        "slow_mode_s": e.slow_mode_s,
        "followers_only_min_s": e.followers_only_min_s,
        "blocked_terms_added": list(e.blocked_terms_added),
        "blocked_terms_removed": list(e.blocked_terms_removed),
        "link_policy": _link_policy(e),
        "link_allowlist": list(e.link_allowlist),
        "unique_chat": e.unique_chat,
    }


def _link_policy(e: ChatSettingsChanged) -> str | None:
    return None if e.link_policy is None else e.link_policy.value


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column (the multi-row statements take one array per column)."""
    return [list(column) for column in zip(*rows, strict=True)]


async def apply_batch(cur: Cursor, events: Sequence[Event]) -> None:
    """Apply ``events`` with a few statements, whatever their number, giving the tables of applying
    them one by one (:func:`plan`). The order of the statements matters: requests before the log
    rows that look them up, messages before the flags and clears that update them."""
    batch = plan(events)
    if batch.requests:
        await _insert_requests(cur, list(batch.requests.values()))
    if batch.messages:
        await _insert_messages(cur, list(batch.messages.values()))
    await _write_deletions(cur, batch)
    await _write_suspensions(cur, batch)
    for e in batch.in_order:
        if isinstance(e, ChatSettingsChanged):
            await _upsert_settings(cur, e)
        else:
            await cur.execute(UPSERT_CLEAR, (e.stream_id, e.cleared_before, e.actor_id))
            await cur.execute(SET_CLEARED, (e.stream_id, e.cleared_before))
    if batch.log:
        await cur.execute(INSERT_LOG, _columns(batch.log.values()))
    await apply_held(cur, events)


async def apply_one(cur: Cursor, e: Event) -> None:
    """One event (the projector applies a failing batch event by event to name the culprit)."""
    await apply_batch(cur, [e])


async def _insert_messages(cur: Cursor, messages: Sequence[tuple[Message, datetime]]) -> None:
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
    await cur.execute(INSERT_MESSAGES, _columns(rows))


async def _insert_requests(cur: Cursor, requests: Sequence[ModerationActionRequested]) -> None:
    """Record the requests and lend each its id and reason to outcomes already logged."""
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
        for e in requests
    ]
    await cur.execute(INSERT_REQUESTS, _columns(rows))
    await cur.execute(LINK_OUTCOMES, ([e.event_id for e in requests],))


async def _write_deletions(cur: Cursor, batch: Plan) -> None:
    if batch.undeleted:
        await cur.execute(DELETE_DELETIONS, (sorted(batch.undeleted),))
    if batch.deletions:
        rows = [(message_id, stream, by) for message_id, (stream, by) in batch.deletions.items()]
        await cur.execute(UPSERT_DELETIONS, _columns(rows))
    if batch.deleted:
        await cur.execute(SET_DELETED, _columns(batch.deleted.items()))


async def _write_suspensions(cur: Cursor, batch: Plan) -> None:
    """The author's messages are hidden (or shown again) by :func:`settle_suspensions` at the end."""
    if batch.unsuspended:
        await cur.execute(DELETE_SUSPENSIONS, _columns(sorted(batch.unsuspended)))
    if batch.suspensions:
        rows = [(stream, user, actor) for (stream, user), actor in batch.suspensions.items()]
        await cur.execute(INSERT_SUSPENSIONS, _columns(rows))


async def _upsert_settings(cur: Cursor, e: ChatSettingsChanged) -> None:
    await cur.execute(
        UPSERT_SETTINGS,
        {
            "stream": e.stream_id,
            "slow": e.slow_mode_s,
            "followers": e.followers_only_min_s,
            "terms": list(e.blocked_terms),
            "links": _link_policy(e),
            "allowlist": list(e.link_allowlist),
            "unique": e.unique_chat,
            "actor": e.actor_id,
            "at": e.occurred_at,
            "id": e.event_id,
        },
    )


async def settle_suspensions(cur: Cursor, events: Sequence[Event]) -> None:
    """Set ``suspended`` on the messages of each author a batch banned, timed out or unbanned.

    Once per batch, not per event: a ban rewrites every message of its author, and the rows whose
    flag does not change are left alone. Nothing in a batch reads the flag (a message inserted
    after a ban reads ``chat_suspensions``), so setting it at the end gives the same rows.
    """
    authors = sorted({(e.stream_id, e.user_id) for e in events if isinstance(e, SUSPENSIONS)})
    if authors:
        await cur.execute(SETTLE_SUSPENDED, ([s for s, _ in authors], [u for _, u in authors]))


HANDLED = (
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageDeleted,
    ChatMessageRestored,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    ChatSettingsChanged,
    ChatCleared,
    ModerationActionRequested,
)
HANDLERS: Mapping[type[Event], Apply] = {event_type: apply_one for event_type in HANDLED}


def chat_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The chat archive projector writing into ``schema``."""
    return PostgresProjector(
        pool,
        name=NAME,
        topics=TOPICS,
        handlers=HANDLERS,
        batch=apply_batch,
        schema=schema,
        settle=settle_suspensions,
    )
