"""Derived ids are fixed forever: these values were computed by the code that wrote the events
already on the log (before the derivations moved to ``events.ids``), so a replay derives the same."""

from __future__ import annotations

import uuid

from events.chat import ChatMessageHeld, UserBanned, outcome_ids
from events.ids import IdSpace, decision_id
from events.ingest import IngestConnected
from events.streams import StreamWentLive
from stream_processors.lifecycle.decisions import decision_id as lifecycle_decision_id
from stream_processors.moderation.decisions import decision_ids
from stream_processors.moderation.state import decision_id as moderation_decision_id
from stream_processors.notifications.notifier import notification_id
from stream_processors.polls.board import tally_id
from stream_processors.viewers.counts import count_id
from tests.unit.event_samples import sample_event

CAUSE = "3f6c1f4e-8d2a-4c3b-9a51-0c7d2e9b1a10"
AT_MS = 1709985600250


def test_lifecycle_decisions_keep_their_ids() -> None:
    expected = uuid.UUID("4466492b-a81e-5d7c-bfff-bb4d0d005336")
    assert decision_id(IdSpace.LIFECYCLE, CAUSE, "StreamWentLive") == expected
    cause = sample_event(IngestConnected, event_id=uuid.UUID(CAUSE))
    assert lifecycle_decision_id(cause, StreamWentLive) == expected


def test_moderation_decisions_keep_their_ids() -> None:
    banned, held = "2e010226-50f4-5504-970c-97ada8669141", "8b408b13-10ee-5560-93df-a1ce40a9158a"
    assert str(moderation_decision_id(CAUSE, UserBanned)) == banned
    assert str(moderation_decision_id(CAUSE, ChatMessageHeld)) == held
    outcomes = [
        banned,
        "5e77a3e4-0f64-51ab-bd2e-bd1d49f48368",
        "8f47f249-c354-57de-8306-028177faf988",
        "3e4a9829-7d11-5303-9520-a3d1b6b9d579",
        "cbf97401-c0e9-5c22-a2bd-7a246609a8fb",
        "b2422730-6cd5-5450-a822-fb96df8fa586",
        "c4a19773-7968-520b-9e77-e569c8021ef9",
        "c91c524b-f46a-556a-86ed-3ab29d2fae16",
        "dd48f264-f4e9-5c7c-885b-47182f9f0d8a",
    ]
    assert outcome_ids(CAUSE) == outcomes
    assert decision_ids(CAUSE) == [*outcomes, held]


def test_notification_ids_stay_the_same() -> None:
    assert notification_id(CAUSE, "u-1") == "38f054ec-778d-5351-979b-f7675eda36ed"


def test_poll_ids_stay_the_same() -> None:
    assert str(tally_id("s1", "p1", 3)) == "7e3057f4-a012-5266-8a62-0bad26ccf552"
    assert str(tally_id("s1", "p1", None)) == "22d41a52-1fa8-5fc4-824b-2c4b6f0699f3"
    migrated = decision_id(IdSpace.MIGRATED_VOTE, "p1", "u-1")
    assert str(migrated) == "1a0bdb95-89ee-5a57-83d7-b0f1e62988a5"


def test_audience_ids_stay_the_same() -> None:
    assert str(count_id("s1", AT_MS)) == "86d61f03-afc3-59aa-a0e9-0883b4b0eb20"
    assert str(count_id("m1", AT_MS, IdSpace.MATCH_AUDIENCE)) == "cbf559dc-c782-5461-b50f-1e551179b117"


def test_spaces_keep_families_apart() -> None:
    assert decision_id(IdSpace.VIEWER_COUNT, "x", 1) != decision_id(IdSpace.MATCH_AUDIENCE, "x", 1)
    assert len({space.value for space in IdSpace}) == len(IdSpace)
