"""Who may moderate and who follows: the ``users`` topic folded into lookups (pure, no I/O).

``users`` is keyed by ``user_id``, so it is not co-partitioned with the chat topics (keyed by
``stream_id``): a chat partition needs the roles and follows of *every* user. Each worker therefore
reads the whole topic into one :class:`ChatRoster` (``stream_processors.moderation.agent.RosterReader``)
instead of a Faust ``GlobalTable``, whose own documentation warns of endless recovery loops with
several workers. The roster is eventually consistent with the chat: an appointment is effective once
the worker has read it (its agent reports that in ``/metrics``).
"""

from __future__ import annotations

from datetime import datetime

from events.base import Event
from events.users import (
    ChannelFollowed,
    ChannelUnfollowed,
    ModeratorAppointed,
    ModeratorRemoved,
    UserRegistered,
    UserRole,
    UserRoleChanged,
)

__all__ = ["ROSTER_EVENTS", "ChatRoster"]

ROSTER_EVENTS: tuple[type[Event], ...] = (
    UserRegistered,
    UserRoleChanged,
    ChannelFollowed,
    ChannelUnfollowed,
    ModeratorAppointed,
    ModeratorRemoved,
)


class ChatRoster:
    """Platform admins, channel moderators, follows (with their time) and usernames -> user ids."""

    def __init__(self) -> None:
        self.admins: set[str] = set()
        self.moderators: dict[str, set[str]] = {}
        self.follows: dict[tuple[str, str], datetime] = {}
        self.usernames: dict[str, str] = {}

    def apply(self, event: Event) -> bool:
        """Fold one ``users`` event in; True if it was one the roster keeps."""
        match event:
            case UserRegistered():
                self.usernames[event.username.casefold()] = event.user_id
                self._set_admin(event.user_id, event.role)
            case UserRoleChanged():
                self._set_admin(event.user_id, event.role)
            case ChannelFollowed():
                self.follows.setdefault((event.channel_id, event.user_id), event.occurred_at)
            case ChannelUnfollowed():
                self.follows.pop((event.channel_id, event.user_id), None)
            case ModeratorAppointed():
                self.moderators.setdefault(event.channel_id, set()).add(event.user_id)
            case ModeratorRemoved():
                self.moderators.get(event.channel_id, set()).discard(event.user_id)
            case _:
                return False
        return True

    def _set_admin(self, user_id: str, role: UserRole) -> None:
        if role is UserRole.ADMIN:
            self.admins.add(user_id)
        else:
            self.admins.discard(user_id)

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admins

    def is_moderator(self, channel_id: str, user_id: str) -> bool:
        return user_id in self.moderators.get(channel_id, ())

    def followed_at(self, channel_id: str, user_id: str) -> datetime | None:
        return self.follows.get((channel_id, user_id))

    def user_id_for(self, username: str) -> str | None:
        return self.usernames.get(username.casefold().lstrip("@"))
