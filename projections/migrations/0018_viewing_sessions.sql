-- Viewing sessions (projector "pg.viewing_sessions", from `viewers.sessions`; see events/viewers.py and
-- projections/viewing_sessions.py) and the audience views `esports report stream|channel` print.
-- Unqualified names: rebuilt into any schema.

-- viewing_sessions: one row per session watching a stream, keyed by (stream, session, start): a
-- session that leaves and comes back is a new row. ViewingSessionStarted inserts it (ended_at NULL:
-- still watching, or its end not read yet); ViewingSessionEnded fills ended_at and watch_ms (or
-- inserts the whole row if its start was not applied first). A start or end read twice changes
-- nothing; of two ends of one session (a worker taking a partition over ends it again after it was
-- seen once more) the later one is kept, so the order they are applied in does not matter.
--
-- viewer is who watched: the user for a signed-in session (so one person on two devices, or coming
-- back, is one viewer), the session itself for an anonymous one (each anonymous session one viewer).
CREATE TABLE viewing_sessions (
    stream_id  text NOT NULL,
    session_id text NOT NULL,
    started_at timestamptz NOT NULL,   -- the session's first heartbeat
    ended_at   timestamptz NULL,       -- its last heartbeat, once the presence window closed after it
    watch_ms   bigint NULL,            -- ended_at - started_at
    edge_id    text NOT NULL DEFAULT '',
    user_id    text NULL,              -- signed in; nothing else personal is kept
    match_id   text NULL,
    referrer   text NULL,              -- where the viewer came from: a host name, site or direct
    viewer     text GENERATED ALWAYS AS (
        CASE WHEN user_id IS NOT NULL THEN 'user:' || user_id ELSE 'session:' || session_id END
    ) STORED,
    PRIMARY KEY (stream_id, session_id, started_at)
);
CREATE INDEX viewing_sessions_viewer_idx ON viewing_sessions (stream_id, viewer);
CREATE INDEX viewing_sessions_match_idx ON viewing_sessions (match_id) WHERE match_id IS NOT NULL;

-- Each 10 s count of viewer_counts with the time it holds (until the next count: counts are only
-- published on change; the last one for its 10 s). stream_viewer_stats (0008) is redefined on it, so
-- the channel report's average over several streams uses the very same spans.
CREATE VIEW viewer_count_spans AS
SELECT stream_id, bucket, viewers, peak,
       extract(epoch FROM coalesce(lead(bucket) OVER w, bucket + interval '10 seconds') - bucket) AS span_s
FROM viewer_counts
WINDOW w AS (PARTITION BY stream_id ORDER BY bucket);

CREATE OR REPLACE VIEW stream_viewer_stats AS
SELECT stream_id,
       max(peak) AS peak_viewers,
       round(sum(viewers * span_s) / nullif(sum(span_s), 0), 1) AS avg_viewers,
       count(*) AS buckets,
       min(bucket) AS first_bucket,
       max(bucket) + interval '10 seconds' AS last_bucket_end
FROM viewer_count_spans
GROUP BY stream_id;

-- One row per viewer of a stream: their sessions, and their watch time (the sum over their ended
-- sessions: a session still open has no watch time yet).
CREATE VIEW stream_viewers AS
SELECT stream_id, viewer,
       bool_or(user_id IS NOT NULL) AS signed_in,
       count(*) AS sessions,
       count(ended_at) AS ended_sessions,
       coalesce(sum(watch_ms), 0)::bigint AS watch_ms,
       min(started_at) AS first_started_at,
       max(ended_at) AS last_ended_at
FROM viewing_sessions
GROUP BY stream_id, viewer;

-- Per stream, from the sessions:
--   unique_viewers   distinct viewers (signed-in users + anonymous sessions, see `viewer` above)
--   views            sessions; open_views: not ended yet
--   watch_ms         total watch time of the ended sessions ("minutes watched")
--   avg_view_ms      average view duration: watch_ms / ended views
--   watch_per_viewer_ms  watch_ms / viewers with an ended session
--   live_from/live_to/duration_s  the stream's span: its started_at and ended_at from the catalog,
--                    else its first session's start and last session's end
CREATE VIEW stream_audience AS
SELECT a.stream_id,
       a.unique_viewers, a.signed_in_viewers, a.unique_viewers - a.signed_in_viewers AS anonymous_viewers,
       a.views, a.views - a.ended_views AS open_views, a.ended_views,
       a.watch_ms,
       CASE WHEN a.ended_views > 0 THEN a.watch_ms / a.ended_views END AS avg_view_ms,
       a.watched_viewers,
       CASE WHEN a.watched_viewers > 0 THEN a.watch_ms / a.watched_viewers END AS watch_per_viewer_ms,
       span.live_from, span.live_to,
       greatest(extract(epoch FROM span.live_to - span.live_from), 0)::bigint AS duration_s
FROM (
    SELECT stream_id,
           count(*) AS unique_viewers,
           count(*) FILTER (WHERE signed_in) AS signed_in_viewers,
           sum(sessions)::bigint AS views,
           sum(ended_sessions)::bigint AS ended_views,
           sum(watch_ms)::bigint AS watch_ms,
           count(*) FILTER (WHERE ended_sessions > 0) AS watched_viewers,
           min(first_started_at) AS first_started_at,
           max(last_ended_at) AS last_ended_at
    FROM stream_viewers GROUP BY stream_id
) AS a
LEFT JOIN streams s USING (stream_id)
CROSS JOIN LATERAL (
    SELECT coalesce(s.started_at, a.first_started_at) AS live_from,
           coalesce(s.ended_at, a.last_ended_at, a.first_started_at) AS live_to
) AS span;

-- The retention curve: at each whole minute m from 0 to the stream's duration (in whole minutes), how
-- many of the stream's viewers watched it for at least m minutes in all (their ended sessions added
-- up), and their share of the viewers with an ended session (`base`). Viewers join a live stream at
-- any time, so "still watching after m minutes" is measured from each viewer's own arrival: minute 0
-- is 100%, and the curve says how long the audience stays (a watch longer than the stream, on two
-- devices at once, counts as the whole stream). `percent` places the minute in the stream's duration.
-- (Per stream through LATERAL, so a query for some streams reads only their sessions.)
CREATE VIEW stream_retention AS
SELECT a.stream_id, c.minute, c.viewers, a.watched_viewers AS base,
       round(c.viewers::numeric / a.watched_viewers, 4) AS share,
       CASE WHEN a.duration_s > 0 THEN round(100.0 * c.minute * 60 / a.duration_s, 1) END AS percent
FROM stream_audience a
CROSS JOIN LATERAL (SELECT (a.duration_s / 60)::int AS minutes) AS d
CROSS JOIN LATERAL (
    SELECT m.minute, (sum(coalesce(h.viewers, 0)) OVER (ORDER BY m.minute DESC))::bigint AS viewers
    FROM generate_series(0, d.minutes) AS m(minute)
    LEFT JOIN (
        SELECT least(v.watch_ms / 60000, d.minutes)::int AS minute, count(*) AS viewers
        FROM stream_viewers v
        WHERE v.stream_id = a.stream_id AND v.ended_sessions > 0
        GROUP BY 1
    ) AS h USING (minute)
) AS c
WHERE a.watched_viewers > 0;
