"""A whole-topic reader that does not own its topics logs an undecodable record and skips it."""

from __future__ import annotations

import logging

import pytest
from aiokafka.structs import ConsumerRecord

from infra.kafka import LoggedDeadLetters, Position


async def test_it_logs_and_skips_without_copying(caplog: pytest.LogCaptureFixture) -> None:
    record = ConsumerRecord("users", 2, 41, 0, 0, b"k", b"garbage", None, 1, 7, [])
    dead_letters = LoggedDeadLetters("roster")
    with caplog.at_level(logging.WARNING):
        position = await dead_letters.send(record, "bad_magic_byte", "first byte is 103")
    assert position == Position("users", 2, 41) and dead_letters.count == 1
    assert (
        "roster skips an undecodable record topic=users partition=2 offset=41: bad_magic_byte" in caplog.text
    )
    assert "garbage" not in caplog.text  # the record's bytes are never logged
