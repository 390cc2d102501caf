-- How far back a channel's live playlists let viewers seek (ChannelUpdated v3 dvr_window_s, projector
-- "pg.catalog"), in seconds; 0 keeps a short live window only. NULL: the channel never chose, and the
-- ingest node's ESPORTS_INGEST__DVR_WINDOW_S applies. The ingest hook's answer carries it to the node.

ALTER TABLE channels ADD COLUMN dvr_window_s integer NULL;
