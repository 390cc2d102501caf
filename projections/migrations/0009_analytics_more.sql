-- Analytics views over polls (pg.polls, 0005) and match audiences (pg.viewers, 0007).

-- One row per poll option with its votes and share of the poll's total (the latest tally; final
-- once the poll closed). Polls whose PollOpened is not applied yet (no options) are left out.
CREATE VIEW poll_results AS
SELECT p.poll_id, p.stream_id, p.question, o.ordinality::int - 1 AS option_index, o.option,
       coalesce(p.counts[o.ordinality], 0) AS votes,
       CASE WHEN p.total > 0 THEN round(coalesce(p.counts[o.ordinality], 0)::numeric / p.total, 4) END AS share,
       p.total, p.final, p.opened_at, p.closed_at,
       CASE WHEN p.final OR p.closed_at IS NOT NULL THEN 'closed' ELSE 'open' END AS status
FROM polls p, unnest(p.options) WITH ORDINALITY AS o(option, ordinality)
WHERE p.options IS NOT NULL;

-- A match's combined audience (distinct sessions across its streams), like stream_viewer_stats.
CREATE VIEW match_viewer_stats AS
SELECT match_id,
       max(peak) AS peak_viewers,
       round(sum(viewers * span_s) / nullif(sum(span_s), 0), 1) AS avg_viewers,
       count(*) AS buckets,
       min(bucket) AS first_bucket,
       max(bucket) + interval '10 seconds' AS last_bucket_end
FROM (
    SELECT match_id, bucket, viewers, peak,
           extract(epoch FROM coalesce(lead(bucket) OVER w, bucket + interval '10 seconds') - bucket) AS span_s
    FROM match_viewer_counts
    WINDOW w AS (PARTITION BY match_id ORDER BY bucket)
) AS spans
GROUP BY match_id;
