-- The command side's private tables: secrets and uniqueness claims the API must hold itself.
-- None of them is a read model (nothing is rebuilt from the log) and no projector writes them.

CREATE TABLE credentials (
    user_id       text PRIMARY KEY,
    username      text NOT NULL,
    display_name  text NOT NULL,
    password_hash text NOT NULL,             -- argon2id, PHC string
    role          text NOT NULL DEFAULT 'viewer',
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Usernames are unique regardless of case ("Faker" and "faker" are one account).
CREATE UNIQUE INDEX credentials_username_key ON credentials (lower(username));

CREATE TABLE refresh_tokens (
    token_hash  text PRIMARY KEY,            -- sha256 of the opaque token, never the token
    family_id   text NOT NULL,               -- every rotation of one login shares it
    user_id     text NOT NULL REFERENCES credentials (user_id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz NULL,            -- rotated: presenting it again revokes the family
    revoked_at  timestamptz NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- A channel's slug is unique: claimed here before ChannelCreated is published.
CREATE TABLE channel_claims (
    channel_id  text PRIMARY KEY,
    owner_id    text NOT NULL,
    slug        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One active stream key per channel, stored only as its sha256.
CREATE TABLE channel_stream_keys (
    channel_id  text PRIMARY KEY REFERENCES channel_claims (channel_id) ON DELETE CASCADE,
    key_id      text NOT NULL UNIQUE,
    key_hash    text NOT NULL UNIQUE,
    rotated_at  timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key: a POST's stored response, per (key, user, route), kept 24 hours.
CREATE TABLE idempotency_keys (
    idem_key      text NOT NULL,
    user_id       text NOT NULL,             -- '' for anonymous calls (register, login)
    route         text NOT NULL,             -- method and path
    request_hash  text NOT NULL,             -- sha256 of the body: same key + other body = 422
    status        int NULL,                  -- NULL while the first request is in flight
    content_type  text NULL,
    body          bytea NULL,
    replayable    boolean NOT NULL DEFAULT true,  -- false: the response held a secret, not stored
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (idem_key, user_id, route)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
