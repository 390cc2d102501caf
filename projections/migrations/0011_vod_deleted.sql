-- Replays (VODs) deleted by their owner or by an ingest node's retention sweep (StreamVodDeleted on
-- `streams`, projector "pg.catalog"). The replay of an ended stream is offered while
-- vod_deleted_at IS NULL; the first deletion wins, so a redelivered or repeated one changes nothing.

ALTER TABLE streams ADD COLUMN vod_deleted_at timestamptz NULL;
ALTER TABLE streams ADD COLUMN vod_deleted_reason text NULL;
