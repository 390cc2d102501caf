-- A channel's latency mode (ChannelUpdated v3, projector "pg.catalog"): whether its players start in
-- Low-Latency HLS mode. Channels are low-latency until their owner turns it off; a viewer can still
-- switch their own player to the standard mode.

ALTER TABLE channels ADD COLUMN low_latency boolean NOT NULL DEFAULT true;
