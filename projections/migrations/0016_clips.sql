-- Clips viewers cut from a stream's DVR window or replay (projector "pg.catalog", from ClipRequested,
-- ClipCreated and ClipFailed on `streams`; see ingest_workers/clips.py).
--
-- A row appears at the request (status 'pending') and becomes 'ready' (url, measured duration) or
-- 'failed' (reason). Whatever order the events are applied in, a ClipCreated wins over a ClipFailed (two
-- ingest nodes can hold one stream, and only one of them covers the range), and a redelivery changes
-- nothing. channel_id, requested_by and start_ms are known from either the request or the creation.

CREATE TABLE clips (
    clip_id          text PRIMARY KEY,
    stream_id        text NOT NULL,
    channel_id       text NOT NULL DEFAULT '',
    requested_by     text NOT NULL DEFAULT '',
    title            text NOT NULL DEFAULT '',
    start_ms         bigint NOT NULL DEFAULT 0,
    requested_ms     bigint NOT NULL DEFAULT 0,
    duration_ms      bigint NULL,
    url              text NULL,
    reencoded        boolean NULL,
    status           text NOT NULL DEFAULT 'pending',
    failure          text NULL,
    requested_at     timestamptz NULL,
    created_at       timestamptz NULL,
    CONSTRAINT clips_status CHECK (status IN ('pending', 'ready', 'failed'))
);

CREATE INDEX clips_by_channel ON clips (channel_id, created_at DESC, clip_id DESC) WHERE status = 'ready';
CREATE INDEX clips_by_stream ON clips (stream_id, requested_at DESC, clip_id DESC);
