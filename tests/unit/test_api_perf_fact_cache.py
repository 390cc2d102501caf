"""The fact cache's rules (producers.store.facts) and what the fast stream-creation route takes on
itself (producers.routes.stream_creation): pure logic, no services."""

from __future__ import annotations

import time
from typing import Any

import pytest
from starlette.routing import Match

from producers.routes.stream_creation import CREATE_PATH, StreamCreationRoute, _request
from producers.store.facts import FactCache


def _listening(**options: Any) -> FactCache:
    facts = FactCache("cmd_a", **options)
    facts.listening = True
    return facts


def test_nothing_is_kept_or_answered_unless_it_listens() -> None:
    facts = FactCache("cmd_a")
    facts.put("credentials", "u1", True, facts.generation)
    assert facts.get("credentials", "u1") is None
    facts.listening = True
    facts.put("credentials", "u1", True, facts.generation)
    assert facts.get("credentials", "u1") is True
    facts.listening = False
    assert facts.get("credentials", "u1") is None


def test_a_read_that_raced_a_notice_is_not_kept() -> None:
    facts = _listening()
    before = facts.generation
    facts.on_notice("cmd_a channel_claims c9")  # any row: the read may have seen it before its change
    facts.put("channel_claims", "c1", "claim", before)
    assert facts.get("channel_claims", "c1") is None
    facts.put("channel_claims", "c1", "claim", facts.generation)
    assert facts.get("channel_claims", "c1") == "claim"


def test_notices_forget_their_row_of_their_schema_only() -> None:
    facts = _listening()
    for table, key in (("credentials", "u1"), ("credentials", "u2"), ("channel_claims", "c1")):
        facts.put(table, key, True, facts.generation)
    facts.on_notice("cmd_b credentials u1")  # another namespace's
    assert facts.get("credentials", "u1")
    facts.on_notice("cmd_a credentials u1")
    assert facts.get("credentials", "u1") is None and facts.get("credentials", "u2")
    facts.on_notice("cmd_a credentials")  # truncated
    assert facts.get("credentials", "u2") is None and facts.get("channel_claims", "c1")
    facts.on_notice("cmd_a channel_claims key with spaces")
    assert facts.get("channel_claims", "c1")


def test_facts_expire_and_the_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = _listening(ttl_s=10, max_entries=2)
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)
    facts.put("credentials", "u1", True, facts.generation)
    monkeypatch.setattr(time, "monotonic", lambda: now + 11)
    assert facts.get("credentials", "u1") is None
    for key in ("u2", "u3", "u4"):
        facts.put("credentials", key, True, facts.generation)
    assert [facts.get("credentials", k) for k in ("u2", "u3", "u4")] == [None, None, True]


def _scope(**changes: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": CREATE_PATH,
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer t")],
    }
    scope.update(changes)
    return scope


@pytest.mark.parametrize(
    ("changes", "matched"),
    [
        ({}, True),
        ({"headers": [(b"content-type", b"Application/JSON"), (b"authorization", b"Bearer t")]}, True),
        ({"method": "GET"}, False),
        ({"path": CREATE_PATH + "/"}, False),
        ({"headers": [(b"content-type", b"application/json")]}, False),  # no token: FastAPI's 401
        ({"headers": [(b"authorization", b"Bearer t")]}, False),
        (
            {"headers": [(b"content-type", b"application/json; charset=utf-8"), (b"authorization", b"x")]},
            False,
        ),
        ({"headers": [*_scope()["headers"], (b"x-min-position", b"streams:0:1")]}, False),
        ({"esports.stream_creation_handed_on": True}, False),
    ],
)
def test_what_the_fast_route_matches(changes: dict[str, Any], matched: bool) -> None:
    match, _ = StreamCreationRoute().matches(_scope(**changes))
    assert (match == Match.FULL) is matched


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"{",
        b"[]",
        b'"x"',
        b'{"channel_id": "c"}',
        b'{"channel_id": "c", "title": "t", "x": 1}',
        b"\xff",
    ],
)
def test_bodies_left_to_fastapi(raw: bytes | None) -> None:
    assert _request(raw) is None


def test_a_valid_body_is_read_as_fastapi_reads_it() -> None:
    body = _request(
        b'{"channel_id": "c1", "title": "T", "tags": ["a"], "scheduled_start": "2031-01-01T00:00:00Z"}'
    )
    assert body is not None and body.channel_id == "c1" and body.tags == ["a"] and body.language == "en"
    assert body.scheduled_start is not None and body.scheduled_start.year == 2031
