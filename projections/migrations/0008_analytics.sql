-- Analytics views over the stream read models (no tables: views read what the projectors wrote, so
-- they are rebuilt with them and never disagree). `esports report match ID` prints them per match.
-- Unqualified names: the views live in the read model's schema (a rebuild creates them in its shadow).

-- Concurrent viewers per stream, from the 10 s series (viewer_counts). peak_viewers is the highest
-- peak the counts reported; avg_viewers is time-weighted: a bucket's count holds until the next
-- bucket with a change (counts are only published on change), the last bucket for its 10 s.
CREATE VIEW stream_viewer_stats AS
SELECT stream_id,
       max(peak) AS peak_viewers,
       round(sum(viewers * span_s) / nullif(sum(span_s), 0), 1) AS avg_viewers,
       count(*) AS buckets,
       min(bucket) AS first_bucket,
       max(bucket) + interval '10 seconds' AS last_bucket_end
FROM (
    SELECT stream_id, bucket, viewers, peak,
           extract(epoch FROM coalesce(lead(bucket) OVER w, bucket + interval '10 seconds') - bucket) AS span_s
    FROM viewer_counts
    WINDOW w AS (PARTITION BY stream_id ORDER BY bucket)
) AS spans
GROUP BY stream_id;

-- Chat messages per stream and minute (accepted messages of the archive; hidden ones counted apart).
CREATE VIEW chat_minutes AS
SELECT stream_id,
       date_trunc('minute', sent_at) AS minute,
       count(*) AS messages,
       count(*) FILTER (WHERE visible) AS visible_messages,
       count(DISTINCT user_id) AS chatters
FROM chat_messages
GROUP BY stream_id, date_trunc('minute', sent_at);

-- Per stream: totals, and messages per minute over the minutes that had chat (average and busiest).
CREATE VIEW stream_chat_stats AS
SELECT m.stream_id,
       m.messages,
       m.visible_messages,
       m.messages - m.visible_messages AS hidden_messages,
       m.chatters,
       m.first_message_at,
       m.last_message_at,
       p.active_minutes,
       round(m.messages::numeric / p.active_minutes, 2) AS per_minute_avg,
       p.per_minute_peak,
       p.peak_minute
FROM (
    SELECT stream_id, count(*) AS messages, count(*) FILTER (WHERE visible) AS visible_messages,
           count(DISTINCT user_id) AS chatters, min(sent_at) AS first_message_at, max(sent_at) AS last_message_at
    FROM chat_messages GROUP BY stream_id
) AS m
JOIN (
    SELECT DISTINCT ON (stream_id) stream_id,
           count(*) OVER (PARTITION BY stream_id) AS active_minutes,
           messages AS per_minute_peak,
           minute AS peak_minute
    FROM chat_minutes
    ORDER BY stream_id, messages DESC, minute
) AS p USING (stream_id);

-- Moderation outcomes per stream and kind (ban, timeout, unban, delete, undelete, clear, settings,
-- hold, approve, deny), from the moderation log.
CREATE VIEW moderation_actions AS
SELECT stream_id, action, count(*) AS actions, count(DISTINCT actor_id) AS actors,
       min(at) AS first_at, max(at) AS last_at
FROM moderation_log
GROUP BY stream_id, action;
