"""The one topic catalogue: every topic, its key, its event types, its writers and retention.

Services create topics from here (idempotently, at start) and producers route with ``topic_for``;
code names a topic only as a :class:`Topic` member, never as a string.

Writers: each topic has one ``owner`` package, and a second entry point only where it is deliberate,
as a :class:`Gateway` naming the module and the reason. ``tests/unit/test_topic_contract.py`` scans the
code for every event it builds (and every raw publish) and fails on a writer the catalogue does not
declare, or on a topic name spelled as a literal outside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from events import (
    channels,
    chat,
    ingest,
    notifications,
    points,
    polls,
    streams,
    tournaments,
    users,
    viewers,
)
from events.base import Event

__all__ = [
    "CATALOGUE",
    "FOREVER",
    "Gateway",
    "Topic",
    "TopicSpec",
    "all_event_types",
    "partition_key",
    "spec",
    "topic_for",
]

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1  # Kafka's retention.ms for "never delete"


class Topic(StrEnum):
    """Every topic's logical name: code names a topic only through these (a test scans for literals)."""

    USERS = "users"
    CHANNELS = "channels"
    STREAMS = "streams"
    STREAMS_LIFECYCLE = "streams.lifecycle"
    TOURNAMENTS = "tournaments"
    INGEST = "ingest"
    CHAT_SUBMITTED = "chat.submitted"
    CHAT_SENT = "chat.sent"
    CHAT_MODERATION = "chat.moderation"
    CHAT_MESSAGES = "chat.messages"
    VIEWERS_HEARTBEATS = "viewers.heartbeats"
    VIEWERS_PRESENCE = "viewers.presence"
    VIEWERS_COUNTS = "viewers.counts"
    VIEWERS_MATCH_COUNTS = "viewers.match_counts"
    VIEWERS_SESSIONS = "viewers.sessions"
    POLLS = "polls"
    POLLS_VOTES = "polls.votes"
    POLLS_TALLIES = "polls.tallies"
    PREDICTIONS = "predictions"
    PREDICTIONS_ODDS = "predictions.odds"
    POINTS_REQUESTS = "points.requests"
    POINTS_LEDGER = "points.ledger"
    NOTIFICATIONS = "notifications"
    DEADLETTER = "deadletter"


@dataclass(frozen=True, slots=True)
class Gateway:
    """A module outside the topic's owner that writes to it on purpose, and why."""

    module: str  # dotted module path, e.g. "producers.routes.polls"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    """One Kafka topic: name, partitioning key, the event types on it and the package writing it."""

    name: str  # a Topic member for the catalogue; internal topics (changelogs, partials) have plain names
    key_field: str | None  # event field whose value keys the record; None = unkeyed
    event_types: tuple[type[Event], ...]
    owner: str  # the package that produces to it
    gateways: tuple[Gateway, ...] = ()  # deliberate second writers, each with its reason
    partitions: int | None = None  # None = the deployment's default (a setting)
    retention_ms: int | None = None  # None = broker default; FOREVER = keep forever
    cleanup_policy: str = "delete"  # "delete", "compact" or "compact,delete"
    description: str = ""


CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(
        name=Topic.USERS,
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
            users.UserPreferencesUpdated,
        ),
        owner="producers",
        # System of record: every read model of users and follows is rebuilt from it. Not
        # compacted, because a key carries many event types and compaction keeps only the last.
        retention_ms=FOREVER,
        description="Accounts, roles, follows, channel moderators, notification reads and preferences.",
    ),
    TopicSpec(
        name=Topic.CHANNELS,
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
        name=Topic.STREAMS,
        key_field="stream_id",
        event_types=(
            streams.StreamCreated,
            streams.StreamUpdated,
            streams.StreamScheduled,
            streams.StreamEndRequested,
            streams.StreamVodDeleted,
            streams.ClipRequested,
            streams.ClipCreated,
            streams.ClipFailed,
        ),
        # What people asked for (metadata, schedules, end requests, replay deletions); whether a
        # stream is live is decided on streams.lifecycle, so this topic never claims a state it
        # cannot know.
        owner="producers",
        gateways=(
            Gateway(
                "ingest_workers.retention",
                "an ingest node's retention sweep deletes old replays from its disk and says so, "
                "so read models stop offering them",
            ),
            Gateway(
                "ingest_workers.clips",
                "only the ingest node holding a stream's segments can cut a clip of it, and says how it "
                "went (ClipCreated, ClipFailed) beside the request, keyed by the same stream",
            ),
        ),
        retention_ms=FOREVER,  # system of record (stream history, VOD metadata, analytics replay)
        description="Stream metadata, schedules, requests to end a stream, replay deletions and clips.",
    ),
    TopicSpec(
        name=Topic.STREAMS_LIFECYCLE,
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
        name=Topic.TOURNAMENTS,
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
        name=Topic.INGEST,
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
        name=Topic.CHAT_SUBMITTED,
        key_field="stream_id",
        event_types=(chat.ChatMessageSubmitted,),
        owner="edge_ws",
        # Raw, unmoderated input: only the moderation processor reads it, and what it accepted is
        # copied to chat.messages. Three days lets it recover from a long outage.
        retention_ms=3 * DAY_MS,
        description="Chat messages as sent by viewers, before moderation.",
    ),
    TopicSpec(
        name=Topic.CHAT_SENT,
        # Keyed by the sender: one stream's chat spreads over every partition, a sender's messages
        # stay on one, where the per-user rules (rate, slow mode, duplicates, bans) are decided.
        key_field="user_id",
        event_types=(chat.ChatMessageSent, chat.ChatChannelSynced, chat.ChatActionRouted),
        owner="edge_ws",
        gateways=(
            Gateway(
                "stream_processors.moderation.routing",
                "the stream's moderation writes its markers here (channel state, routed actions) and "
                "re-keys the messages of edges older than chat.sent",
            ),
        ),
        retention_ms=3 * DAY_MS,  # like chat.submitted
        description="Chat messages keyed by sender, before moderation, with the stream's moderation markers.",
    ),
    TopicSpec(
        name=Topic.CHAT_MODERATION,
        key_field="stream_id",
        event_types=(chat.ModerationActionRequested,),
        # Commands, not facts: the moderation agent alone decides what follows.
        owner="edge_ws",  # `mod` frames and chat commands
        gateways=(
            Gateway(
                "producers.routes.moderation",
                "moderation tools and bots act over REST, without a websocket: the same request",
            ),
        ),
        # The moderation log in PostgreSQL is a projection of this topic: keep it to rebuild it.
        retention_ms=FOREVER,
        description="Moderators' commands (ban, timeout, unban, delete, slow mode, followers-only, clear).",
    ),
    TopicSpec(
        name=Topic.CHAT_MESSAGES,
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
        name=Topic.VIEWERS_HEARTBEATS,
        key_field="stream_id",
        event_types=(viewers.ViewerHeartbeat,),
        owner="edge_ws",
        # The largest topic and worthless after the counting window: one day is enough to
        # recount after an outage.
        retention_ms=1 * DAY_MS,
        description="Presence heartbeats of players, one record each (read beside viewers.presence).",
    ),
    TopicSpec(
        name=Topic.VIEWERS_PRESENCE,
        # A batch keyed by one of its sessions, every session of it hashing to the same partition:
        # one stream's viewers spread over all partitions, a session's heartbeats stay on one.
        key_field="shard_key",
        event_types=(viewers.ViewerPresenceBatch,),
        owner="edge_ws",
        gateways=(
            Gateway(
                "producers.routes.beacons",
                "a page being hidden or closed sends its last beat with navigator.sendBeacon (HTTP), "
                "as its websocket may already be gone",
            ),
            Gateway(
                "stream_processors.viewers.presence_worker",
                "the presence workers re-key the single heartbeats of edges older than viewers.presence",
            ),
        ),
        retention_ms=1 * DAY_MS,  # like viewers.heartbeats: worthless after the counting window
        description="Presence heartbeats of players, batched per edge flush and per session partition.",
    ),
    TopicSpec(
        name=Topic.VIEWERS_COUNTS,
        key_field="stream_id",
        event_types=(viewers.ViewerCountChanged,),
        owner="stream_processors",
        # At most one event a second per stream, and the viewer time series in PostgreSQL is
        # rebuilt from it (the heartbeats behind it are gone after a day): keep it.
        retention_ms=FOREVER,
        description="Concurrent viewer counts and peaks per stream.",
    ),
    TopicSpec(
        name=Topic.VIEWERS_MATCH_COUNTS,
        key_field="match_id",
        event_types=(viewers.MatchAudienceChanged,),
        owner="stream_processors",
        # Like viewers.counts: the match audience series in PostgreSQL is rebuilt from it.
        retention_ms=FOREVER,
        description="Combined audience of each match (distinct sessions across its streams), with peaks.",
    ),
    TopicSpec(
        name=Topic.VIEWERS_SESSIONS,
        # Keyed by session like viewers.presence, with its partition count: the sessions of presence
        # partition p are on partition p, where the worker that takes p over reads them back.
        key_field="session_id",
        event_types=(viewers.ViewingSessionStarted, viewers.ViewingSessionEnded),
        owner="stream_processors",
        # The heartbeats are gone after a day: unique viewers and watch time are computed from these.
        retention_ms=FOREVER,
        description="Viewing sessions: when each session started and stopped watching a stream.",
    ),
    TopicSpec(
        name=Topic.POLLS,
        key_field="stream_id",
        event_types=(polls.PollOpened, polls.PollVoteCast, polls.PollClosed),
        # Votes arrive over the websocket, and moderators open/close polls there too.
        owner="edge_ws",
        gateways=(
            Gateway(
                "producers.routes.polls",
                "the streamer's dashboard and tools open and close polls over REST: the same commands",
            ),
        ),
        retention_ms=FOREVER,  # poll results are history: a tally can always be recomputed from the votes
        description="Polls opened and closed by moderators (and the votes of earlier edges).",
    ),
    TopicSpec(
        name=Topic.POLLS_VOTES,
        # Keyed by voter: one poll's votes spread over every partition, a voter's stay in order on one.
        key_field="user_id",
        event_types=(polls.PollVoted, polls.PollVotingClosed),
        owner="edge_ws",
        gateways=(
            Gateway(
                "stream_processors.polls.agent",
                "the poll agent writes the end-of-votes marker (PollVotingClosed, one per partition) and "
                "moves the votes of edges older than polls.votes here",
            ),
        ),
        retention_ms=FOREVER,  # like polls: a tally can always be recomputed from the votes
        description="Viewers' votes, keyed by voter (the latest vote per voter and poll counts).",
    ),
    TopicSpec(
        name=Topic.POLLS_TALLIES,
        key_field="stream_id",
        event_types=(polls.PollTallyUpdated,),
        owner="stream_processors",
        retention_ms=7 * DAY_MS,  # derived from polls, which keeps the votes longer
        description="Running and final poll tallies.",
    ),
    TopicSpec(
        name=Topic.PREDICTIONS,
        key_field="stream_id",
        event_types=(
            points.PredictionOpened,
            points.PredictionLocked,
            points.PredictionResolved,
            points.PredictionCancelled,
        ),
        owner="producers",  # the streamer's dashboard and tools, over REST (roles checked there)
        retention_ms=FOREVER,  # history: what was predicted and how it ended
        description="Predictions opened, locked, resolved and cancelled by streamers and moderators.",
    ),
    TopicSpec(
        name=Topic.PREDICTIONS_ODDS,
        key_field="stream_id",
        event_types=(points.PredictionUpdated,),
        owner="stream_processors",
        retention_ms=7 * DAY_MS,  # derived from the ledger, which keeps every stake
        description="Predictions as viewers see them: state and pot per outcome.",
    ),
    TopicSpec(
        name=Topic.POINTS_REQUESTS,
        # Keyed by user, like the ledger and with its partition count: one worker owns a user's
        # balance and every request that may change it, in order.
        key_field="user_id",
        event_types=(
            points.StakeRequested,
            points.PointsEarned,
            points.StakesClosing,
            points.StakeSettlementOrdered,
        ),
        owner="producers",  # viewers' stakes
        gateways=(
            Gateway(
                "stream_processors.points.prediction_worker",
                "the prediction worker marks where a prediction's stakes end on every partition and "
                "orders each stake out of the pot once it is resolved or cancelled",
            ),
            Gateway(
                "stream_processors.points.earning",
                "the earning workers find points earned from the heartbeats and the accepted chat "
                "already on the log (no client is trusted), each with a deterministic grant id",
            ),
        ),
        retention_ms=7 * DAY_MS,  # requests: what they decided is on points.ledger for good
        description="What may change a balance, asked for: stakes, earnings, end-of-stakes markers, orders.",
    ),
    TopicSpec(
        name=Topic.POINTS_LEDGER,
        key_field="user_id",
        event_types=(
            points.PointsGranted,
            points.PointsStaked,
            points.StakeRefused,
            points.StakesClosed,
            points.StakeSettled,
            points.StakeRefunded,
        ),
        owner="stream_processors",
        # System of record: a balance is the sum of its user's entries, audited and rebuilt from here.
        retention_ms=FOREVER,
        description="Every grant, stake, refusal, settlement and refund of channel points.",
    ),
    TopicSpec(
        name=Topic.NOTIFICATIONS,
        key_field="user_id",
        event_types=(notifications.NotificationIssued,),
        owner="stream_processors",
        retention_ms=FOREVER,  # the inbox read model is rebuilt from it; never issue twice needs the history
        description="Notifications per user.",
    ),
    TopicSpec(
        name=Topic.DEADLETTER,
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
