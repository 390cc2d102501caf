-- The moderators' queue (projector "pg.chat"): messages the rules held for review, and how each was
-- resolved. Written by projections/held_queue.py from chat.messages in the same transaction as the
-- moderation log, so a query waiting for a chat.messages position sees both.
--
-- A resolution (ChatMessageAccepted with approved_by, ChatMessageRejected with reason "denied") may
-- be applied before its hold in a replay: it inserts the row with held_at NULL, and the hold fills
-- the message in later without touching the resolution. Pending = held and not resolved.

CREATE TABLE held_messages (
    message_id          text PRIMARY KEY,
    stream_id           text NOT NULL,
    user_id             text NOT NULL,
    display_name        text NOT NULL DEFAULT '',
    text                text NOT NULL DEFAULT '',   -- moderators' data: never served to viewers
    score               real NOT NULL DEFAULT 0,
    reasons             text[] NOT NULL DEFAULT '{}',
    badges              text[] NOT NULL DEFAULT '{}',
    media_time_ms       bigint NULL,
    reply_to_message_id text NULL,
    held_at             timestamptz NULL,           -- NULL until the hold is applied
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'denied')),
    resolved_by         text NULL,
    resolved_at         timestamptz NULL,
    resolution_reason   text NOT NULL DEFAULT ''
);
-- The queue listing: a stream's pending messages, oldest first (cursor on (held_at, message_id)).
CREATE INDEX held_messages_pending_idx ON held_messages (stream_id, held_at, message_id)
    WHERE status = 'pending' AND held_at IS NOT NULL;
-- The moderation log listing: newest first, cursor on (at, event_id).
CREATE INDEX moderation_log_page_idx ON moderation_log (stream_id, at DESC, event_id DESC);
