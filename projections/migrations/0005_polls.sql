-- Polls (pg.polls, from polls and polls.tallies). Unqualified names: rebuilt into any schema.
--
-- poll_requests: every PollOpened and PollClosed as requested, including the ones the poll agent
-- refused (an actor who is not the channel owner, a moderator or an admin): the audit record.
-- A PollClosed of /endpoll has poll_id '*' (every poll of the stream open at that point).
CREATE TABLE poll_requests (
    event_id     uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('open', 'close')),
    poll_id      text NOT NULL,
    stream_id    text NOT NULL,
    actor        text NOT NULL,
    requested_at timestamptz NOT NULL,
    question     text,           -- open only
    options      text[],         -- open only
    closes_at    timestamptz     -- open only; NULL = until closed
);
CREATE INDEX poll_requests_poll ON poll_requests (poll_id, kind);
CREATE INDEX poll_requests_stream ON poll_requests (stream_id, kind, requested_at);

-- polls: the polls the agent accepted (it tallied them), with their latest tally; final once closed.
-- A row exists from the poll's first tally (the agent publishes an all-zero one at the open). The
-- opening's fields are NULL only while the projector has read the tally but not yet its PollOpened
-- (two topics); the API lists only rows that have them.
CREATE TABLE polls (
    poll_id    text PRIMARY KEY,
    stream_id  text NOT NULL,
    question   text,
    options    text[],
    opened_by  text,
    opened_at  timestamptz,
    closes_at  timestamptz,
    closed_at  timestamptz,       -- set with the final tally: when the poll closed
    closed_by  text,              -- who closed it; NULL when the deadline did
    counts     integer[] NOT NULL,
    total      integer NOT NULL,
    final      boolean NOT NULL DEFAULT false
);
CREATE INDEX polls_stream ON polls (stream_id, opened_at DESC, poll_id DESC);
