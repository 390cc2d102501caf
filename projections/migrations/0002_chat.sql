-- The chat read model (projector "pg.chat"): the archive of accepted messages, their visibility, and
-- the moderation log. Written only by projections/chat.py from chat.messages and chat.moderation.
--
-- Visibility is a projection of the moderation events, never a deletion: each reason a message is
-- hidden is its own column, so an unban (or a future undelete) restores exactly what it hid.

CREATE TABLE chat_messages (
    message_id    text PRIMARY KEY,
    stream_id     text NOT NULL,
    user_id       text NOT NULL,
    display_name  text NOT NULL,
    text          text NOT NULL,
    sent_at       timestamptz NOT NULL,
    media_time_ms bigint NULL,
    reply_to_message_id text NULL,
    deleted       boolean NOT NULL DEFAULT false,   -- ChatMessageDeleted
    suspended     boolean NOT NULL DEFAULT false,   -- the author was banned/timed out (UserUnbanned clears)
    cleared       boolean NOT NULL DEFAULT false,   -- sent before a ChatCleared
    visible       boolean GENERATED ALWAYS AS (NOT (deleted OR suspended OR cleared)) STORED,
    hidden_reason text GENERATED ALWAYS AS (
        CASE
            WHEN deleted THEN 'deleted'
            WHEN suspended THEN 'banned'
            WHEN cleared THEN 'cleared'
        END
    ) STORED
);
CREATE INDEX chat_messages_stream_idx ON chat_messages (stream_id, sent_at);
CREATE INDEX chat_messages_author_idx ON chat_messages (stream_id, user_id);

-- Deletions can be applied before the message (no ordering across causes is assumed).
CREATE TABLE chat_deletions (
    message_id text PRIMARY KEY,
    stream_id  text NOT NULL,
    deleted_by text NOT NULL
);
-- Who is banned or timed out now, per stream (a message accepted later, e.g. an approved held one,
-- is hidden if its author is suspended by then).
CREATE TABLE chat_suspensions (
    stream_id text NOT NULL,
    user_id   text NOT NULL,
    actor_id  text NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);
CREATE TABLE chat_clears (
    stream_id      text PRIMARY KEY,
    cleared_before timestamptz NOT NULL,
    cleared_by     text NOT NULL
);

-- Every moderation request as asked (chat.moderation), authorised or not: the audit of attempts.
-- outcome_ids are the ids any decision on it would have (uuid5 of the request), which links a
-- request to its outcome in moderation_log whatever order the two topics are applied in.
CREATE TABLE moderation_requests (
    event_id          uuid PRIMARY KEY,
    stream_id         text NOT NULL,
    actor_id          text NOT NULL,
    action            text NOT NULL,
    target_user_id    text NULL,
    target_message_id text NULL,
    reason            text NOT NULL DEFAULT '',
    duration_s        integer NULL,
    at                timestamptz NOT NULL,
    outcome_ids       uuid[] NOT NULL
);
CREATE INDEX moderation_requests_outcomes_idx ON moderation_requests USING gin (outcome_ids);
CREATE INDEX moderation_requests_stream_idx ON moderation_requests (stream_id, at);

-- What moderation did (the outcomes on chat.messages), each naming its actor and reason; the
-- reason comes from the request when the outcome event has no reason field.
CREATE TABLE moderation_log (
    event_id          uuid PRIMARY KEY,
    stream_id         text NOT NULL,
    actor_id          text NOT NULL,
    action            text NOT NULL,
    target_user_id    text NULL,
    target_message_id text NULL,
    reason            text NOT NULL DEFAULT '',
    duration_s        integer NULL,
    at                timestamptz NOT NULL,
    request_id        uuid NULL,     -- the chat.moderation request, when it came through the API
    details           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX moderation_log_stream_idx ON moderation_log (stream_id, at);
