-- Concurrent viewers per stream as a time series at 10 s resolution (pg.viewers, from viewers.counts).
-- viewers is the highest count seen in the bucket, peak the stream's peak as of the bucket's last
-- count (both only grow within a bucket, so a redelivered count changes nothing).
CREATE TABLE viewer_counts (
    stream_id text NOT NULL,
    bucket    timestamptz NOT NULL,  -- the start of the 10 s bucket (UTC, aligned to the epoch)
    viewers   integer NOT NULL,
    peak      integer NOT NULL,
    PRIMARY KEY (stream_id, bucket)
);
