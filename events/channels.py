"""Channel events (topic ``channels``, keyed by ``channel_id``).

A channel is what a broadcaster owns and viewers follow; its streams come and go. Stream keys
belong to the channel (as on Twitch or with OBS: one key per channel, reused for every stream),
and the log never holds a key, not even hashed: ``ChannelStreamKeyRotated`` carries an opaque
key id only, because this topic is kept forever and readable by every analytics tool.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.base import Event

__all__ = ["ChannelCreated", "ChannelStreamKeyRotated", "ChannelUpdated"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCreated(Event):
    """A user opened a channel; ``slug`` is its unique, URL-safe name."""

    channel_id: str
    owner_id: str
    slug: str
    display_name: str
    description: str = ""
    language: str = "en"  # BCP 47 tag


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelUpdated(Event):
    """Channel profile changed. A ``None`` field means "unchanged" (partial update).

    v3 added ``low_latency``: whether the channel's players start in Low-Latency HLS mode (a viewer
    can still switch to the standard mode); channels are low-latency until they say otherwise; and
    ``dvr_window_s``: how many seconds back its live playlists let viewers seek (0: a short live window
    only); a channel that never set it gets the ingest node's ``dvr_window_s``.
    """

    channel_id: str
    updated_by: str
    display_name: str | None = None
    description: str | None = None
    language: str | None = None
    low_latency: bool | None = None  # v3
    dvr_window_s: int | None = None  # v3


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStreamKeyRotated(Event):
    """A new stream key was issued for the channel; only its opaque id is recorded."""

    channel_id: str
    key_id: str
    rotated_by: str
