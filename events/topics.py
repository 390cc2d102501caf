"""The one topic catalogue: every topic, its key, its event types, its single writer and retention.

Services create topics from here (idempotently, at start) and producers route with ``topic_for``;
no topic name is spelled anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from events import channels, chat, ingest, notifications, polls, streams, tournaments, users, viewers
from events.base import Event

__all__ = ["CATALOGUE", "FOREVER", "TopicSpec", "all_event_types", "partition_key", "spec", "topic_for"]

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1  # Kafka's retention.ms for "never delete"


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    """One Kafka topic: name, partitioning key, the event types on it and the package writing it."""

    name: str
    key_field: str | None  # event field whose value keys the record; None = unkeyed
    event_types: tuple[type[Event], ...]
    owner: str  # the one package that produces to it
    partitions: int | None = None  # None = the deployment's default (a setting)
    retention_ms: int | None = None  # None = broker default; FOREVER = keep forever
    cleanup_policy: str = "delete"  # "delete", "compact" or "compact,delete"
    description: str = ""


CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="users",
        key_field="user_id",
        event_types=(
            users.UserRegistered,
            users.UserRoleChanged,
            users.ChannelFollowed,
            users.ChannelUnfollowed,
            users.TournamentFollowed,
            users.TournamentUnfollowed,
            users.ModeratorAppointed,
            users.ModeratorRemoved,
            users.NotificationsRead,
        ),
        owner="producers",
        # System of record: every read model of users and follows is rebuilt from it. Not
        # compacted, because a key carries many event types and compaction keeps only the last.
        retention_ms=FOREVER,
        description="Accounts, roles, follows, channel moderators and notification reads.",
    ),
    TopicSpec(
        name="channels",
        key_field="channel_id",
        event_types=(
            channels.ChannelCreated,
            channels.ChannelUpdated,
            channels.ChannelStreamKeyRotated,
        ),
        # The API owns channels and issues their stream keys (it holds the key hashes).
        owner="producers",
        retention_ms=FOREVER,  # system of record: the channel directory is rebuilt from it
        description="Channels: creation, profile, stream-key rotation",
    ),
    TopicSpec(
        name="streams",
        key_field="stream_id",
        event_types=(
            streams.StreamCreated,
            streams.StreamUpdated,
            streams.StreamScheduled,
            streams.StreamEndRequested,
        ),
        # What people asked for (metadata, schedules, end requests); whether a stream is live is
        # decided on streams.lifecycle, so this topic never claims a state it cannot know.
        owner="producers",
        retention_ms=FOREVER,  # system of record (stream history, VOD metadata, analytics replay)
        description="Stream metadata, schedules and requests to end a stream.",
    ),
    TopicSpec(
        name="streams.lifecycle",
        key_field="stream_id",
        event_types=(
            streams.StreamWentLive,
            streams.StreamEnded,
            streams.StreamTransitionRejected,
        ),
        # One agent serialises each stream's transitions (keyed by stream_id, so one partition
        # sees them in order) from ingest reports and end requests.
        owner="stream_processors",
        retention_ms=FOREVER,  # stream history and the live-state read model are rebuilt from it
        description="Lifecycle decisions of the lifecycle agent: live, ended, refused transitions",
    ),
    TopicSpec(
        name="tournaments",
        key_field="tournament_id",
        event_types=(
            tournaments.TournamentCreated,
            tournaments.MatchScheduled,
            tournaments.MatchStarted,
            tournaments.MatchScoreUpdated,
            tournaments.MatchEnded,
        ),
        owner="producers",
        retention_ms=FOREVER,  # system of record for brackets and results
        description="Tournaments, matches and scores.",
    ),
    TopicSpec(
        name="ingest",
        key_field="stream_id",
        event_types=(
            ingest.IngestConnected,
            ingest.IngestDisconnected,
            ingest.RenditionsReady,
            ingest.SegmentPublished,
            ingest.IngestHealthReported,
        ),
        owner="ingest_workers",
        # Operational telemetry (a segment every ~2 s per rendition): a week covers incident review.
        retention_ms=7 * DAY_MS,
        description="Publisher sessions, published HLS segments and ingest health.",
    ),
    TopicSpec(
        name="chat.submitted",
        key_field="stream_id",
        event_types=(chat.ChatMessageSubmitted,),
        owner="edge_ws",
        # Raw, unmoderated input: only the moderation processor reads it, and what it accepted is
        # copied to chat.messages. Three days lets it recover from a long outage.
        retention_ms=3 * DAY_MS,
        description="Chat messages as sent by viewers, before moderation.",
    ),
    TopicSpec(
        name="chat.sent",
        # Keyed by the sender: one stream's chat spreads over every partition, a sender's messages
        # stay on one, where the per-user rules (rate, slow mode, duplicates, bans) are decided.
        key_field="user_id",
        event_types=(chat.ChatMessageSent, chat.ChatChannelSynced, chat.ChatActionRouted),
        owner="edge_ws",  # and the markers of stream_processors.moderation (channel state, actions)
        retention_ms=3 * DAY_MS,  # like chat.submitted
        description="Chat messages keyed by sender, before moderation, with the stream's moderation markers.",
    ),
    TopicSpec(
        name="chat.moderation",
        key_field="stream_id",
        event_types=(chat.ModerationActionRequested,),
        # Commands, not facts: the edges (`mod` frames, chat commands) and the API's moderation route
        # are two gateways for the same request; the moderation agent alone decides what follows.
        owner="edge_ws",
        # The moderation log in PostgreSQL is a projection of this topic: keep it to rebuild it.
        retention_ms=FOREVER,
        description="Moderators' commands (ban, timeout, unban, delete, slow mode, followers-only, clear).",
    ),
    TopicSpec(
        name="chat.messages",
        key_field="stream_id",
        event_types=(
            chat.ChatMessageAccepted,
            chat.ChatMessageRejected,
            chat.ChatMessageDeleted,
            chat.ChatMessageHeld,
            chat.ChatMessageRestored,
            chat.UserTimedOut,
            chat.UserBanned,
            chat.UserUnbanned,
            chat.ChatSettingsChanged,
            chat.ChatCleared,
        ),
        owner="stream_processors",
        # The chat archive (VOD chat replay, analytics) is a projection of this topic, and any read
        # model must be rebuildable from the log: keep it (tiered storage is the lever at scale).
        retention_ms=FOREVER,
        description="Moderated chat as viewers see it, plus moderation outcomes and chat settings.",
    ),
    TopicSpec(
        name="viewers.heartbeats",
        key_field="stream_id",
        event_types=(viewers.ViewerHeartbeat,),
        owner="edge_ws",
        # The largest topic and worthless after the counting window: one day is enough to
        # recount after an outage.
        retention_ms=1 * DAY_MS,
        description="Presence heartbeats of players, one record each (read beside viewers.presence).",
    ),
    TopicSpec(
        name="viewers.presence",
        # A batch keyed by one of its sessions, every session of it hashing to the same partition:
        # one stream's viewers spread over all partitions, a session's heartbeats stay on one.
        key_field="shard_key",
        event_types=(viewers.ViewerPresenceBatch,),
        owner="edge_ws",
        retention_ms=1 * DAY_MS,  # like viewers.heartbeats: worthless after the counting window
        description="Presence heartbeats of players, batched per edge flush and per session partition.",
    ),
    TopicSpec(
        name="viewers.counts",
        key_field="stream_id",
        event_types=(viewers.ViewerCountChanged,),
        owner="stream_processors",
        # At most one event a second per stream, and the viewer time series in PostgreSQL is
        # rebuilt from it (the heartbeats behind it are gone after a day): keep it.
        retention_ms=FOREVER,
        description="Concurrent viewer counts and peaks per stream.",
    ),
    TopicSpec(
        name="viewers.match_counts",
        key_field="match_id",
        event_types=(viewers.MatchAudienceChanged,),
        owner="stream_processors",
        # Like viewers.counts: the match audience series in PostgreSQL is rebuilt from it.
        retention_ms=FOREVER,
        description="Combined audience of each match (distinct sessions across its streams), with peaks.",
    ),
    TopicSpec(
        name="polls",
        key_field="stream_id",
        event_types=(polls.PollOpened, polls.PollVoteCast, polls.PollClosed),
        # Votes arrive over the websocket, and moderators open/close polls there too.
        owner="edge_ws",
        retention_ms=FOREVER,  # poll results are history: a tally can always be recomputed from the votes
        description="Polls opened and closed by moderators (and the votes of earlier edges).",
    ),
    TopicSpec(
        name="polls.votes",
        # Keyed by voter: one poll's votes spread over every partition, a voter's stay in order on one.
        key_field="user_id",
        # PollVotingClosed is the poll agent's end-of-votes marker, one per partition (the one record of
        # this topic not written by edges).
        event_types=(polls.PollVoted, polls.PollVotingClosed),
        owner="edge_ws",
        retention_ms=FOREVER,  # like polls: a tally can always be recomputed from the votes
        description="Viewers' votes, keyed by voter (the latest vote per voter and poll counts).",
    ),
    TopicSpec(
        name="polls.tallies",
        key_field="stream_id",
        event_types=(polls.PollTallyUpdated,),
        owner="stream_processors",
        retention_ms=7 * DAY_MS,  # derived from polls, which keeps the votes longer
        description="Running and final poll tallies.",
    ),
    TopicSpec(
        name="notifications",
        key_field="user_id",
        event_types=(notifications.NotificationIssued,),
        owner="stream_processors",
        retention_ms=FOREVER,  # the inbox read model is rebuilt from it; never issue twice needs the history
        description="Notifications per user.",
    ),
    TopicSpec(
        name="deadletter",
        key_field=None,
        event_types=(),
        owner="infra",
        # Undecodable records, copied raw with their headers by the shared consumer: two weeks to
        # notice, diagnose and replay them.
        retention_ms=14 * DAY_MS,
        description="Records that could not be decoded, with their original headers.",
    ),
)

_BY_NAME: dict[str, TopicSpec] = {topic.name: topic for topic in CATALOGUE}
_BY_TYPE: dict[type[Event], TopicSpec] = {
    event_type: topic for topic in CATALOGUE for event_type in topic.event_types
}


def spec(name: str) -> TopicSpec:
    """The topic named ``name``; ``KeyError`` naming the known topics otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {sorted(_BY_NAME)}") from None


def topic_for(event: Event | type[Event]) -> TopicSpec:
    """The one topic an event (or event type) is written to."""
    event_type = event if isinstance(event, type) else type(event)
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise KeyError(f"{event_type.__name__} is in no topic of events.topics.CATALOGUE") from None


def partition_key(event: Event) -> bytes | None:
    """The record key: the topic's ``key_field`` value as UTF-8, or None for unkeyed topics."""
    key_field = topic_for(event).key_field
    if key_field is None:
        return None
    value = getattr(event, key_field)
    return None if value is None else str(value).encode()


def all_event_types() -> tuple[type[Event], ...]:
    """Every event type of the catalogue, in catalogue order."""
    return tuple(_BY_TYPE)
