"""The catalog projector's dispatch table, positions and schema names (no database needed)."""

from __future__ import annotations

import pytest

from events.topics import spec
from infra.kafka import Position
from infra.settings import KafkaSettings
from projections import catalog, chat, live, notifications, points, polls, viewer_counts, viewing_sessions
from projections.database import checked_schema
from projections.positions import PROJECTORS_BY_TOPIC, parse_position
from projections.projector import ProjectorStats, group_id


def test_every_event_type_of_the_catalog_topics_has_a_handler() -> None:
    wanted = {event_type for topic in catalog.TOPICS for event_type in spec(topic).event_types}
    wanted -= set(notifications.HANDLERS)  # NotificationsRead, on `users`: the inbox's, not the catalog's
    assert set(catalog.HANDLERS) == wanted


def test_the_live_projector_reads_a_subset_of_the_catalog_topics() -> None:
    assert set(live.TOPICS) <= set(catalog.TOPICS) | set(viewer_counts.TOPICS)
    every = set(catalog.TOPICS) | set(chat.TOPICS) | set(viewer_counts.TOPICS) | set(polls.TOPICS)
    every |= set(notifications.TOPICS) | set(points.TOPICS) | set(viewing_sessions.TOPICS)
    assert set(PROJECTORS_BY_TOPIC) == every


def test_positions_round_trip_through_their_text_form() -> None:
    position = Position("streams.lifecycle", 2, 41)
    assert parse_position(str(position)) == position
    for bad in ("streams:1", "streams:x:1", "streams:-1:3", ":0:1", ""):
        with pytest.raises(ValueError):
            parse_position(bad)


def test_schema_names_are_plain_identifiers() -> None:
    assert checked_schema("test_0a1b") == "test_0a1b"
    for bad in ("Public", "a-b", "x;drop", "", "1abc", "a" * 64):
        with pytest.raises(ValueError):
            checked_schema(bad)


def test_group_ids_live_in_the_topic_namespace() -> None:
    assert group_id(KafkaSettings(), "pg.catalog") == "projector.pg.catalog"
    assert group_id(KafkaSettings(topic_prefix="t1."), "pg.catalog") == "t1.projector.pg.catalog"


def test_stats_keep_the_highest_offset_per_partition() -> None:
    stats = ProjectorStats()
    stats.record(3, 1, {("users", 0): 10})
    stats.record(2, 0, {("users", 0): 8, ("users", 1): 4})
    assert (stats.applied, stats.duplicates, stats.batches) == (5, 1, 2)
    assert stats.next_offsets == {("users", 0): 10, ("users", 1): 4}


def test_the_viewing_sessions_projector_handles_every_event_of_its_topic() -> None:
    wanted = {event_type for topic in viewing_sessions.TOPICS for event_type in spec(topic).event_types}
    assert set(viewing_sessions.HANDLERS) == wanted
