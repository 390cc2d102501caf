-- Channel points and predictions (projector "pg.points", from `predictions`, `predictions.odds` and
-- `points.ledger`; see events/points.py and projections/points.py). Unqualified names: rebuilt into
-- any schema.

-- predictions: one row per prediction. The opening's fields come from PredictionOpened; they are NULL
-- only while the projector has read the prediction's odds but not yet its opening (two topics), and
-- the API lists only rows that have them. `status` moves forward only (open -> locked -> resolved or
-- cancelled): from the commands on `predictions` at once, and from the prediction worker's
-- PredictionUpdated, which wins when both name a final state (the worker is the authority).
CREATE TABLE predictions (
    prediction_id   text PRIMARY KEY,
    stream_id       text NOT NULL,
    channel_id      text,
    title           text,
    outcomes        text[],
    locks_at        timestamptz,
    opened_by       text,
    opened_at       timestamptz,
    status          text NOT NULL DEFAULT 'open',
    winning_outcome integer,              -- index into outcomes, once resolved
    locked_at       timestamptz,          -- a lock (or resolve) before locks_at; NULL: locked by time
    locked_by       text,
    resolved_at     timestamptz,
    resolved_by     text,
    cancelled_at    timestamptz,
    cancelled_by    text,
    pools           bigint[] NOT NULL DEFAULT '{}',   -- points staked per outcome (the latest odds)
    stakers         integer[] NOT NULL DEFAULT '{}',  -- viewers per outcome
    settled         boolean NOT NULL DEFAULT false,   -- every stake paid out or refunded
    odds_at         timestamptz,                      -- occurred_at of the latest odds applied
    CONSTRAINT predictions_status CHECK (status IN ('open', 'locked', 'resolved', 'cancelled'))
);
CREATE INDEX predictions_stream ON predictions (stream_id, opened_at DESC, prediction_id DESC);
CREATE INDEX predictions_active ON predictions (stream_id) WHERE status IN ('open', 'locked');

-- points_ledger: one row per entry of `points.ledger` (its event id), so a redelivered entry is
-- stored once. `user_seq` numbers each user's entries 1, 2, 3... in log order (a user's entries are
-- all on one partition, applied in order): computed from the user's rows, not drawn from a sequence,
-- so a replay numbers them alike (a sequence would not: a redelivery skipped by ON CONFLICT uses a value).
-- StakesClosed (a partition's end-of-stakes marker, not a user's entry) is not stored.
CREATE TABLE points_ledger (
    event_id      uuid PRIMARY KEY,
    user_seq      bigint NOT NULL,     -- the entry's place among its user's: 1, 2, 3... in log order
    user_id       text NOT NULL,
    kind          text NOT NULL,
    amount        bigint NOT NULL,     -- the points concerned: granted, staked, asked for, paid, refunded
    change        bigint NOT NULL,     -- the entry's effect on the balance (a stake: -amount; refused: 0)
    balance       bigint NOT NULL,     -- the balance after the entry, as the ledger worker decided it
    reason        text NOT NULL DEFAULT '',
    prediction_id text,
    stream_id     text NOT NULL DEFAULT '',
    outcome       integer,
    occurred_at   timestamptz NOT NULL,
    CONSTRAINT points_ledger_kind CHECK (kind IN ('grant', 'stake', 'refused', 'settled', 'refund'))
);
CREATE UNIQUE INDEX points_ledger_user ON points_ledger (user_id, user_seq DESC);

-- points_balances: each user's balance, the `balance` of their latest entry (written with the entry,
-- only when the entry is new).
CREATE TABLE points_balances (
    user_id    text PRIMARY KEY,
    balance    bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

-- prediction_stakes: what each viewer has in a prediction's pot (accepted stakes only) and how it
-- left it: paid out (payout, 0 for a losing outcome) or refunded.
CREATE TABLE prediction_stakes (
    prediction_id text NOT NULL,
    user_id       text NOT NULL,
    stream_id     text NOT NULL,
    outcome       integer NOT NULL,
    amount        bigint NOT NULL,
    payout        bigint,
    refunded      boolean NOT NULL DEFAULT false,
    staked_at     timestamptz NOT NULL,
    settled_at    timestamptz,
    PRIMARY KEY (prediction_id, user_id)
);
CREATE INDEX prediction_stakes_user ON prediction_stakes (user_id);
