-- The catalog read model (projector "pg.catalog"): users, channels, streams, tournaments, follows.
-- Written only by projections/catalog/*; the API reads it. Every table lives in the schema the
-- projector was given (search_path), so a test or a rebuild can use a fresh schema.
--
-- No foreign keys on purpose: rows come from different topics whose partitions are consumed at
-- different paces (a StreamWentLive may be applied before its StreamCreated), so every apply is an
-- idempotent UPSERT that converges whatever the interleaving across topics.

CREATE TABLE users (
    user_id      text PRIMARY KEY,
    username     text NOT NULL UNIQUE,
    display_name text NOT NULL,
    role         text NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE TABLE channels (
    channel_id    text PRIMARY KEY,
    owner_id      text NOT NULL,
    slug          text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    description   text NOT NULL DEFAULT '',
    language      text NOT NULL DEFAULT 'en',
    stream_key_id text NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX channels_owner_idx ON channels (owner_id);

CREATE TABLE channel_moderators (
    channel_id   text NOT NULL,
    user_id      text NOT NULL,
    appointed_by text NOT NULL,
    appointed_at timestamptz NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX channel_moderators_user_idx ON channel_moderators (user_id);

-- Metadata columns come from the `streams` topic, started_at/ended_at/end_reason from
-- `streams.lifecycle`. `state` is derived from them, so it does not depend on which topic was
-- applied first: ended wins over live, live over scheduled.
CREATE TABLE streams (
    stream_id       text PRIMARY KEY,
    channel_id      text NOT NULL,
    owner_id        text NOT NULL DEFAULT '',
    title           text NOT NULL DEFAULT '',
    game            text NOT NULL DEFAULT '',
    tags            text[] NOT NULL DEFAULT '{}',
    language        text NOT NULL DEFAULT 'en',
    match_id        text NULL,
    role            text NOT NULL DEFAULT 'main',
    scheduled_start timestamptz NULL,
    started_at      timestamptz NULL,
    ended_at        timestamptz NULL,
    end_reason      text NULL,
    created_at      timestamptz NULL,  -- NULL only until the StreamCreated is applied
    updated_at      timestamptz NOT NULL,
    state           text GENERATED ALWAYS AS (
        CASE
            WHEN ended_at IS NOT NULL THEN 'ended'
            WHEN started_at IS NOT NULL THEN 'live'
            WHEN scheduled_start IS NOT NULL THEN 'scheduled'
            ELSE 'created'
        END
    ) STORED
);
CREATE INDEX streams_state_idx ON streams (state);
CREATE INDEX streams_channel_idx ON streams (channel_id);
CREATE INDEX streams_match_idx ON streams (match_id) WHERE match_id IS NOT NULL;

CREATE TABLE tournaments (
    tournament_id text PRIMARY KEY,
    name          text NOT NULL,
    game          text NOT NULL,
    organizer_id  text NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NULL,
    created_at    timestamptz NOT NULL
);

-- Same idea as streams.state: a match's state follows from its timestamps.
CREATE TABLE matches (
    match_id        text PRIMARY KEY,
    tournament_id   text NOT NULL,
    teams           text[] NOT NULL DEFAULT '{}',
    scheduled_start timestamptz NULL,
    best_of         int NOT NULL DEFAULT 1,
    round_name      text NOT NULL DEFAULT '',
    started_at      timestamptz NULL,
    ended_at        timestamptz NULL,
    scores          jsonb NOT NULL DEFAULT '[]',
    winner          text NULL,
    main_stream_id  text NULL,
    state           text GENERATED ALWAYS AS (
        CASE
            WHEN ended_at IS NOT NULL THEN 'ended'
            WHEN started_at IS NOT NULL THEN 'live'
            ELSE 'scheduled'
        END
    ) STORED
);
CREATE INDEX matches_tournament_idx ON matches (tournament_id);

CREATE TABLE channel_follows (
    user_id     text NOT NULL,
    channel_id  text NOT NULL,
    followed_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
CREATE INDEX channel_follows_channel_idx ON channel_follows (channel_id);

CREATE TABLE tournament_follows (
    user_id       text NOT NULL,
    tournament_id text NOT NULL,
    followed_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, tournament_id)
);
CREATE INDEX tournament_follows_tournament_idx ON tournament_follows (tournament_id);

-- Where each projector is in each partition: written in the same transaction as its rows, so a
-- projector resumes exactly where its last committed batch ended (exactly-once).
CREATE TABLE projection_offsets (
    projector   text NOT NULL,
    topic       text NOT NULL,
    partition   int NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (projector, topic, partition)
);
