"""User and follow events (topic ``users``, keyed by ``user_id``).

Per-channel moderators live here too: appointing one is a fact about a user, and the chat
moderation processor rebuilds its moderator sets from this topic.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = [
    "ChannelFollowed",
    "ChannelUnfollowed",
    "ModeratorAppointed",
    "ModeratorRemoved",
    "NotificationsRead",
    "TournamentFollowed",
    "TournamentUnfollowed",
    "UserPreferencesUpdated",
    "UserRegistered",
    "UserRole",
    "UserRoleChanged",
]


class UserRole(enum.StrEnum):
    """Platform-wide role. Avro default ``viewer``: an unknown newer role grants nothing."""

    VIEWER = "viewer"
    STREAMER = "streamer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRegistered(Event):
    """A new account exists. No e-mail or password material: the log is kept forever."""

    user_id: str
    username: str
    display_name: str
    role: UserRole = UserRole.VIEWER


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRoleChanged(Event):
    """An admin changed a user's platform role."""

    user_id: str
    role: UserRole
    previous_role: UserRole
    changed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelFollowed(Event):
    """A user follows a channel (drives go-live notifications)."""

    user_id: str
    channel_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelUnfollowed(Event):
    """A user stopped following a channel."""

    user_id: str
    channel_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TournamentFollowed(Event):
    """A user follows a tournament (drives match-start notifications)."""

    user_id: str
    tournament_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TournamentUnfollowed(Event):
    """A user stopped following a tournament."""

    user_id: str
    tournament_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeratorAppointed(Event):
    """The channel owner made ``user_id`` a chat moderator of ``channel_id``."""

    user_id: str
    channel_id: str
    appointed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeratorRemoved(Event):
    """``user_id`` is no longer a chat moderator of ``channel_id``."""

    user_id: str
    channel_id: str
    removed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationsRead(Event):
    """``user_id`` read notifications of their inbox: the ones named in ``notification_ids``, and with
    ``all_before`` set, every one of theirs created at or before it ("mark all read"). Ids of other
    users' notifications change nothing."""

    user_id: str
    notification_ids: tuple[str, ...] = ()
    all_before: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserPreferencesUpdated(Event):
    """``user_id`` set their viewing preferences; the whole set each time (the latest event wins).
    ``spoiler_free`` hides scores, winners and "ended" badges until the viewer reveals a match."""

    user_id: str
    spoiler_free: bool = False
