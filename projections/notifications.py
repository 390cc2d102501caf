"""The ``pg.notifications`` projector: each user's inbox in PostgreSQL.

From ``notifications``: a NotificationIssued becomes a row keyed by its ``notification_id``; the
agent may publish one again after a restart (same id), which inserts nothing. From ``users``: a
NotificationsRead marks the named notifications of its user, and with ``all_before`` every one of
theirs created at or before it, as read at the event's time (the first read wins). The two topics
are applied in no particular order, so each read is also kept in ``notification_reads``, where a
notification inserted later looks up the reads that already cover it: the inbox is the same
whichever order a replay applies them in. Exactly-once comes from
:class:`~projections.projector.PostgresProjector`.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.notifications import NotificationIssued
from events.topics import Topic
from events.users import NotificationsRead
from projections.projector import Apply, Cursor, PostgresProjector, handles

__all__ = ["HANDLERS", "NAME", "TOPICS", "notifications_projector"]

NAME = "pg.notifications"
TOPICS = (Topic.NOTIFICATIONS, Topic.USERS)

INSERT_NOTIFICATION = """
INSERT INTO notifications (notification_id, user_id, kind, cause_id, title, url, body, created_at, read_at)
VALUES (
    %(id)s, %(user)s, %(kind)s, %(cause)s, %(title)s, %(url)s, %(body)s, %(created)s,
    (SELECT min(r.read_at) FROM notification_reads r
      WHERE r.user_id = %(user)s AND (%(id)s = ANY (r.notification_ids) OR r.all_before >= %(created)s))
)
ON CONFLICT (notification_id) DO NOTHING
"""
INSERT_READ = """
INSERT INTO notification_reads (event_id, user_id, notification_ids, all_before, read_at)
VALUES (%(event)s, %(user)s, %(ids)s, %(before)s, %(read)s)
ON CONFLICT (event_id) DO NOTHING
"""
MARK_READ = """
UPDATE notifications SET read_at = %(read)s
WHERE user_id = %(user)s AND read_at IS NULL
  AND (notification_id = ANY (%(ids)s) OR created_at <= %(before)s)
"""


async def notification_issued(cur: Cursor, e: NotificationIssued) -> None:
    params = {
        "id": e.notification_id,
        "user": e.user_id,
        "kind": str(e.kind),
        "cause": e.causation_id,
        "title": e.title,
        "url": e.url,
        "body": e.body,
        "created": e.occurred_at,
    }
    await cur.execute(INSERT_NOTIFICATION, params)


async def notifications_read(cur: Cursor, e: NotificationsRead) -> None:
    params = {
        "event": str(e.event_id),
        "user": e.user_id,
        "ids": list(e.notification_ids),
        "before": e.all_before,
        "read": e.occurred_at,
    }
    await cur.execute(INSERT_READ, params)
    await cur.execute(MARK_READ, params)


HANDLERS: Mapping[type[Event], Apply] = dict(
    [handles(NotificationIssued, notification_issued), handles(NotificationsRead, notifications_read)]
)


def notifications_projector(pool: AsyncConnectionPool, *, schema: str = "public") -> PostgresProjector:
    """The inbox projector writing into ``schema``."""
    return PostgresProjector(pool, name=NAME, topics=TOPICS, handlers=HANDLERS, schema=schema)
