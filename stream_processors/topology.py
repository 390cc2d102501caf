"""The topics the processors read, and the internal topics they own, checked and created before start.

Faust runs with ``topic_allow_declare=False``: it must never create (with its own defaults) a catalogue
topic that `esports topics create` has not created yet. Its table changelogs are created here instead,
with exactly the partition count of the source topics, because a table is only correct when its
changelog partition *p* holds the keys of source partition *p* (co-partitioning).
"""

from __future__ import annotations

import asyncio
import time

from events.topics import Topic, TopicSpec, spec
from infra.kafka import TopicAdmin
from infra.settings import KafkaSettings

HOUR_MS = 60 * 60 * 1000
CREATED_WITHIN_S = 60.0  # how long new topics may show no partitions (another worker creating them; a
# loaded cluster propagating their metadata: 10 s was seen short in a 3-broker chaos run)

APP_ID = "esports-processors"
LIFECYCLE_TABLE = "lifecycle"
# Both keyed by stream_id, so one stream's causes land in the same partition number of each.
LIFECYCLE_SOURCES = (Topic.STREAMS, Topic.INGEST)
LIFECYCLE_OUTPUT = Topic.STREAMS_LIFECYCLE  # keyed by stream_id too: read back after a rebalance (redelivery)
MODERATION_TABLE = "moderation"
# All keyed by stream_id; `users` (keyed by user_id) is read whole by each worker, not co-partitioned.
MODERATION_SOURCES = (Topic.CHAT_SUBMITTED, Topic.CHAT_MODERATION, Topic.STREAMS, Topic.INGEST)
MODERATION_OUTPUT = Topic.CHAT_MESSAGES  # keyed by stream_id too: read back after a rebalance (redelivery)
# The presence workers' sources, read in their own consumer group (PRESENCE_GROUP), any partition
# count: `viewers.presence` (keyed by session) and the single heartbeats of `viewers.heartbeats` (keyed
# by stream_id, re-keyed by session onto `viewers.presence`); `streams` read whole for the matches.
PRESENCE_SOURCE = Topic.VIEWERS_PRESENCE
LEGACY_HEARTBEATS = Topic.VIEWERS_HEARTBEATS
PRESENCE_GROUP = f"{APP_ID}-presence"
VIEWER_TABLE = "viewers"
# Internal topics of the partial counts per (stream, partition) and (match, partition), keyed by the
# stream (match) id like the merge agents' tables.
VIEWER_PARTIALS = f"{APP_ID}-viewer-partials"
MATCH_VIEWER_TABLE = "match_viewers"
MATCH_PARTIALS = f"{APP_ID}-match-partials"
POLLS_TABLE = "polls"
POLLS_SOURCE = Topic.POLLS  # keyed by stream_id, like the table
# The vote workers' source, read in their own group (VOTES_GROUP), any partition count: votes keyed
# by voter. They publish partial tallies to POLL_PARTIALS, keyed by stream like the poll agent's table.
VOTES_SOURCE = Topic.POLLS_VOTES
VOTES_GROUP = f"{APP_ID}-votes"
POLL_PARTIALS = f"{APP_ID}-poll-partials"
# The chat workers' source, read in their own group (CHAT_GROUP), any partition count: messages keyed by
# sender, with the stream moderation's markers. Their state per key is stored in CHAT_STATE (compacted,
# partition p holding the keys of chat.sent partition p).
CHAT_SOURCE = Topic.CHAT_SENT
CHAT_GROUP = f"{APP_ID}-chat"
CHAT_STATE = f"{APP_ID}-chat-state"
# Channel points (no Faust table: partition workers in groups of their own). The ledger worker owns
# partitions of points.requests and the same partitions of points.ledger (both keyed by user, with one
# partition count); the prediction worker owns partitions of `predictions` (keyed by stream) and reads
# the whole ledger; the earning workers read accepted chat and presence beats.
POINTS_SOURCE = Topic.POINTS_REQUESTS
POINTS_LEDGER = Topic.POINTS_LEDGER
POINTS_GROUP = f"{APP_ID}-points"
PREDICTIONS_SOURCE = Topic.PREDICTIONS
PREDICTIONS_GROUP = f"{APP_ID}-predictions"
CHAT_EARNING_SOURCE = Topic.CHAT_MESSAGES
CHAT_EARNING_GROUP = f"{APP_ID}-points-chat"
WATCH_EARNING_SOURCE = Topic.VIEWERS_PRESENCE
WATCH_EARNING_GROUP = f"{APP_ID}-points-watch"
POINTS_SOURCES = (POINTS_SOURCE, POINTS_LEDGER, PREDICTIONS_SOURCE, Topic.PREDICTIONS_ODDS)
# The presence workers' output of viewing sessions, co-partitioned with PRESENCE_SOURCE (read back).
SESSIONS_OUTPUT = Topic.VIEWERS_SESSIONS
NOTIFICATIONS_TABLE = "notifications"
# `streams` and `streams.lifecycle` keyed by stream_id, `tournaments` by tournament_id: a stream's (or a
# tournament's) records share a partition number, like its table entry. `users` and `channels` are read whole.
NOTIFICATIONS_SOURCES = (Topic.STREAMS, Topic.STREAMS_LIFECYCLE, Topic.TOURNAMENTS)
WHOLE_SOURCES = (Topic.USERS, Topic.CHANNELS)  # read whole by every worker (no group): any partition count
PRESENCE_SOURCES = (PRESENCE_SOURCE, LEGACY_HEARTBEATS, VOTES_SOURCE, CHAT_SOURCE)  # any partition count


# The agent families. Each can run as its own worker group (`esports processors --only FAMILY`: its own
# Faust app id, so its own consumer group and changelogs); by default one app runs them all.
# The points and predictions workers run with the polls family (audience engagement): they have no
# Faust agent, and a Faust app without one cannot run.
FAMILIES = ("lifecycle", "moderation", "viewers", "polls", "notifications")
FAMILY_TABLES = {
    "lifecycle": (LIFECYCLE_TABLE,),
    "moderation": (MODERATION_TABLE,),
    "viewers": (VIEWER_TABLE, MATCH_VIEWER_TABLE),
    "polls": (POLLS_TABLE,),
    "notifications": (NOTIFICATIONS_TABLE,),
}


class TopologyError(Exception):
    """The cluster's topics cannot be processed as they are (missing, or not co-partitioned)."""

    retriable = False


def app_name(family: str | None = None) -> str:
    """The app of every family (None), or of one family run alone, before the deployment prefix."""
    return APP_ID if family is None else f"{APP_ID}-{family}"


def app_id(kafka: KafkaSettings, family: str | None = None) -> str:
    """Faust's id (consumer group, changelog prefix), namespaced like the catalogue topics."""
    return f"{kafka.topic_prefix}{app_name(family)}"


# Each table's changelog: its key and what its values are.
CHANGELOGS = {
    LIFECYCLE_TABLE: ("stream_id", "the lifecycle agent's table (StreamLifecycle as JSON)"),
    MODERATION_TABLE: ("stream_id", "the moderation agent's table (ChatChannel as JSON)"),
    VIEWER_TABLE: ("stream_id", "the viewer-count agent's table (ViewerPresence as JSON)"),
    MATCH_VIEWER_TABLE: ("match_id", "the match-audience agent's table (ViewerPresence as JSON)"),
    POLLS_TABLE: ("stream_id", "the poll agent's table (PollBoard as JSON)"),
    # or tournament_id: "stream:<id>" / "tournament:<id>" keys
    NOTIFICATIONS_TABLE: ("stream_id", "the notifications agent's table (Notifier as JSON)"),
}


def _changelog(app: str, table: str, partitions: int) -> TopicSpec:
    """A table's changelog, named as Faust names it: compacted, since the latest state per key is
    all a recovery needs."""
    key_field, what = CHANGELOGS[table]
    return TopicSpec(
        name=f"{app}-{table}-changelog",
        key_field=key_field,
        event_types=(),
        owner="stream_processors",
        partitions=partitions,
        cleanup_policy="compact",
        description=f"Changelog of {what}.",
    )


def _partials(name: str, key_field: str, partitions: int, what: str) -> TopicSpec:
    """Partial results (JSON) of a partition worker: only the latest per (key, source partition)
    matters, and the merge state holds it, so an hour is plenty."""
    return TopicSpec(
        name=name,
        key_field=key_field,
        event_types=(),
        owner="stream_processors",
        partitions=partitions,
        retention_ms=HOUR_MS,
        description=f"{what} (JSON), merged by {key_field.removesuffix('_id')}.",
    )


def internal_topics(
    partitions: int, family: str | None = None, chat_partitions: int | None = None
) -> list[TopicSpec]:
    """The internal topics of the app of every family (None) or of one ``family``: its tables'
    changelogs (the deployment prefix is added by TopicAdmin), the partials, and the chat workers'
    state (with ``chat_partitions``, those of chat.sent; ``partitions`` if None)."""
    families = (family,) if family else FAMILIES
    return [
        *(_changelog(app_name(family), t, partitions) for f in families for t in FAMILY_TABLES[f]),
        _partials(VIEWER_PARTIALS, "stream_id", partitions, "Viewer counts per presence partition"),
        _partials(MATCH_PARTIALS, "match_id", partitions, "Match audiences per presence partition"),
        _partials(POLL_PARTIALS, "stream_id", partitions, "Poll tallies per vote partition"),
        TopicSpec(
            name=CHAT_STATE,
            key_field=None,  # "c|stream", "u|stream|user" or "f|stream|print" (separated by 0x1f)
            event_types=(),
            owner="stream_processors",
            partitions=chat_partitions or partitions,
            cleanup_policy="compact",
            description="The chat workers' state per key (JSON): channels, senders, unique-chat prints.",
        ),
    ]


async def prepare_topics(kafka: KafkaSettings, family: str | None = None) -> int:
    """Check the sources are co-partitioned, create the internal topics of the app of every family
    (None) or of one ``family``; returns the partition count."""
    async with TopicAdmin(kafka) as admin:
        names = dict.fromkeys(
            (
                *LIFECYCLE_SOURCES,
                *MODERATION_SOURCES,
                MODERATION_OUTPUT,
                LIFECYCLE_OUTPUT,
                POLLS_SOURCE,
                *NOTIFICATIONS_SOURCES,
            )
        )
        names.update(dict.fromkeys((*WHOLE_SOURCES, *PRESENCE_SOURCES, *POINTS_SOURCES, SESSIONS_OUTPUT)))
        sources = await admin.states([spec(name) for name in names])
        missing = [s.name for s in sources if not s.exists]
        if missing:
            raise TopologyError(f"topics {missing} do not exist; create them with `esports topics create`")
        counts_of = {str(name): state.partitions for name, state in zip(names, sources, strict=True)}
        own_counts = (*WHOLE_SOURCES, *PRESENCE_SOURCES, *POINTS_SOURCES, SESSIONS_OUTPUT)  # any count
        counts = {name: n for name, n in counts_of.items() if name not in own_counts}
        if len(set(counts.values())) != 1:
            raise TopologyError(
                f"{counts}: the agents' sources and read-back outputs must have the same partition count"
            )
        if counts_of[SESSIONS_OUTPUT] != counts_of[PRESENCE_SOURCE]:
            raise TopologyError(
                f"viewers.sessions has {counts_of[SESSIONS_OUTPUT]} partitions and viewers.presence "
                f"{counts_of[PRESENCE_SOURCE]}: a session's events and beats must share a partition number"
            )
        if counts_of[POINTS_SOURCE] != counts_of[POINTS_LEDGER]:
            raise TopologyError(
                f"points.requests has {counts_of[POINTS_SOURCE]} partitions and points.ledger "
                f"{counts_of[POINTS_LEDGER]}: a user's requests and entries must share a partition number"
            )
        partitions = next(iter(counts.values()))
        chat = counts_of[CHAT_SOURCE]
        internal = internal_topics(partitions, family, chat)
        await admin.ensure(internal)
        states = await admin.states(internal)
        deadline = time.monotonic() + CREATED_WITHIN_S
        while any(s.partitions == 0 for s in states) and time.monotonic() < deadline:
            # another worker of the deployment is creating them: described without partitions yet
            await asyncio.sleep(0.2)
            states = await admin.states(internal)
        wrong = {
            s.name: s.partitions
            for s in states
            if s.partitions != (chat if s.name.endswith(CHAT_STATE) else partitions)
        }
    if wrong:
        raise TopologyError(
            f"{wrong}: changelog partitions differ from their sources' ({partitions}, chat {chat})"
        )
    return partitions
