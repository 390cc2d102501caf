"""Users, follows and channel moderators (topic ``users``, keyed by ``user_id``).

A user's events share one partition, so they arrive in order; duplicates (a retried publish) are
absorbed by the primary keys: registering, following or appointing twice changes nothing.
"""

from __future__ import annotations

from events.users import (
    ChannelFollowed,
    ChannelUnfollowed,
    ModeratorAppointed,
    ModeratorRemoved,
    TournamentFollowed,
    TournamentUnfollowed,
    UserPreferencesUpdated,
    UserRegistered,
    UserRoleChanged,
)
from projections.projector import Cursor, handles


async def user_registered(cur: Cursor, e: UserRegistered) -> None:
    await cur.execute(
        "INSERT INTO users (user_id, username, display_name, role, created_at) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (user_id) DO NOTHING",
        (e.user_id, e.username, e.display_name, e.role.value, e.occurred_at),
    )


async def user_role_changed(cur: Cursor, e: UserRoleChanged) -> None:
    await cur.execute("UPDATE users SET role = %s WHERE user_id = %s", (e.role.value, e.user_id))


async def channel_followed(cur: Cursor, e: ChannelFollowed) -> None:
    await cur.execute(
        "INSERT INTO channel_follows (user_id, channel_id, followed_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (user_id, channel_id) DO NOTHING",
        (e.user_id, e.channel_id, e.occurred_at),
    )


async def channel_unfollowed(cur: Cursor, e: ChannelUnfollowed) -> None:
    await cur.execute(
        "DELETE FROM channel_follows WHERE user_id = %s AND channel_id = %s", (e.user_id, e.channel_id)
    )


async def tournament_followed(cur: Cursor, e: TournamentFollowed) -> None:
    await cur.execute(
        "INSERT INTO tournament_follows (user_id, tournament_id, followed_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (user_id, tournament_id) DO NOTHING",
        (e.user_id, e.tournament_id, e.occurred_at),
    )


async def tournament_unfollowed(cur: Cursor, e: TournamentUnfollowed) -> None:
    await cur.execute(
        "DELETE FROM tournament_follows WHERE user_id = %s AND tournament_id = %s",
        (e.user_id, e.tournament_id),
    )


async def moderator_appointed(cur: Cursor, e: ModeratorAppointed) -> None:
    await cur.execute(
        "INSERT INTO channel_moderators (channel_id, user_id, appointed_by, appointed_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (channel_id, user_id) DO NOTHING",
        (e.channel_id, e.user_id, e.appointed_by, e.occurred_at),
    )


async def moderator_removed(cur: Cursor, e: ModeratorRemoved) -> None:
    await cur.execute(
        "DELETE FROM channel_moderators WHERE channel_id = %s AND user_id = %s", (e.channel_id, e.user_id)
    )


async def user_preferences_updated(cur: Cursor, e: UserPreferencesUpdated) -> None:
    # The whole set each time, so replaying or redelivering it converges to the latest.
    await cur.execute("UPDATE users SET spoiler_free = %s WHERE user_id = %s", (e.spoiler_free, e.user_id))


HANDLERS = dict(
    [
        handles(UserRegistered, user_registered),
        handles(UserRoleChanged, user_role_changed),
        handles(ChannelFollowed, channel_followed),
        handles(ChannelUnfollowed, channel_unfollowed),
        handles(TournamentFollowed, tournament_followed),
        handles(TournamentUnfollowed, tournament_unfollowed),
        handles(ModeratorAppointed, moderator_appointed),
        handles(ModeratorRemoved, moderator_removed),
        handles(UserPreferencesUpdated, user_preferences_updated),
    ]
)
