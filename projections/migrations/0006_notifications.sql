-- Each user's inbox (pg.notifications, from `notifications` and the NotificationsRead events of `users`).
-- notification_id is deterministic per (cause, user): a notification issued again (an agent restart
-- re-deciding its cause) is the same row, inserted once.
CREATE TABLE notifications (
    notification_id text PRIMARY KEY,
    user_id         text NOT NULL,
    kind            text NOT NULL,
    cause_id        text NOT NULL,
    title           text NOT NULL,
    url             text NOT NULL DEFAULT '',
    body            text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,  -- the cause's time
    read_at         timestamptz NULL       -- the time of the NotificationsRead that covered it
);
-- The inbox listing (newest first, cursor on (created_at, notification_id)) and its unread count.
CREATE INDEX notifications_inbox ON notifications (user_id, created_at DESC, notification_id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, created_at DESC) WHERE read_at IS NULL;

-- Every NotificationsRead as it was applied: `users` and `notifications` are different topics, read in
-- no particular order (a rebuild may apply a read before the notification it names), so a notification
-- inserted later still finds the reads that cover it here.
CREATE TABLE notification_reads (
    event_id         text PRIMARY KEY,
    user_id          text NOT NULL,
    notification_ids text[] NOT NULL,
    all_before       timestamptz NULL,
    read_at          timestamptz NOT NULL
);
CREATE INDEX notification_reads_user ON notification_reads (user_id);
