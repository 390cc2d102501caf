"""Channels (topic ``channels``, keyed by ``channel_id``): profile and the current stream key's id."""

from __future__ import annotations

from events.channels import ChannelCreated, ChannelStreamKeyRotated, ChannelUpdated
from projections.projector import Cursor, handles


async def channel_created(cur: Cursor, e: ChannelCreated) -> None:
    await cur.execute(
        "INSERT INTO channels (channel_id, owner_id, slug, display_name, description, language,"
        " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (channel_id) DO NOTHING",
        (
            e.channel_id,
            e.owner_id,
            e.slug,
            e.display_name,
            e.description,
            e.language,
            e.occurred_at,
            e.occurred_at,
        ),
    )


async def channel_updated(cur: Cursor, e: ChannelUpdated) -> None:
    """A partial update: ``None`` keeps the column."""
    await cur.execute(
        "UPDATE channels SET display_name = COALESCE(%s, display_name),"
        " description = COALESCE(%s, description), language = COALESCE(%s, language),"
        " low_latency = COALESCE(%s, low_latency), dvr_window_s = COALESCE(%s, dvr_window_s),"
        " updated_at = GREATEST(updated_at, %s) WHERE channel_id = %s",
        (
            e.display_name,
            e.description,
            e.language,
            e.low_latency,
            e.dvr_window_s,
            e.occurred_at,
            e.channel_id,
        ),
    )


async def channel_stream_key_rotated(cur: Cursor, e: ChannelStreamKeyRotated) -> None:
    """Only the key's opaque id: the key itself never reaches the log or the read model."""
    await cur.execute(
        "UPDATE channels SET stream_key_id = %s, updated_at = GREATEST(updated_at, %s) WHERE channel_id = %s",
        (e.key_id, e.occurred_at, e.channel_id),
    )


HANDLERS = dict(
    [
        handles(ChannelCreated, channel_created),
        handles(ChannelUpdated, channel_updated),
        handles(ChannelStreamKeyRotated, channel_stream_key_rotated),
    ]
)
