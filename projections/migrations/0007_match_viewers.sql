-- A match's combined audience (distinct sessions across all its streams) as a time series at 10 s
-- resolution (pg.viewers, from viewers.match_counts), like viewer_counts for streams: viewers is the
-- highest count seen in the bucket, peak the match's peak as of the bucket's last count (both only
-- grow within a bucket, so a redelivered count changes nothing).
CREATE TABLE match_viewer_counts (
    match_id text NOT NULL,
    bucket   timestamptz NOT NULL,  -- the start of the 10 s bucket (UTC, aligned to the epoch)
    viewers  integer NOT NULL,
    peak     integer NOT NULL,
    PRIMARY KEY (match_id, bucket)
);
