-- Chat settings and channel rules as events (projector "pg.chat"), and the moderation log's new rows.
--
-- ChatSettingsChanged v2 states a stream's settings and channel rules in full (slow mode,
-- followers-only, blocked terms, link policy, unique-chat), so this table is the last one applied
-- and a rebuild from chat.messages yields it again. Blocked terms are moderators' data: never serve
-- them to viewers.
--
-- moderation_log gains rows without new columns: "hold" (actor 'automod': the rules held a message;
-- details: score, reasons, text), "approve", "deny", "undelete", and "settings" rows that carry the
-- rules and the terms added or removed in details.

CREATE TABLE chat_settings (
    stream_id            text PRIMARY KEY,
    slow_mode_s          integer NOT NULL DEFAULT 0,
    followers_only_min_s integer NULL,          -- NULL = off, 0 = any follower
    blocked_terms        text[] NOT NULL DEFAULT '{}',
    link_policy          text NULL,             -- allow, deny, allowlist; NULL = the deployment's
    link_allowlist       text[] NOT NULL DEFAULT '{}',
    unique_chat          boolean NOT NULL DEFAULT false,
    changed_by           text NOT NULL,
    changed_at           timestamptz NOT NULL,
    event_id             uuid NOT NULL          -- the ChatSettingsChanged it comes from
);

-- "What happened to this message": hold, approve, deny, delete, undelete.
CREATE INDEX moderation_log_message_idx ON moderation_log (target_message_id)
    WHERE target_message_id IS NOT NULL;
