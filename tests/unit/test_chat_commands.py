"""The slash-command grammar both the edge and the moderation agent read (``events.chat_commands``)."""

from __future__ import annotations

import pytest

from events.chat_commands import (
    EDGE_COMMANDS,
    MAX_DURATION_S,
    USAGE,
    CommandLine,
    parse_duration,
    split_command,
    split_trailing_duration,
    take_duration,
)
from stream_processors.moderation.commands import _PARSERS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("30s", 30),
        ("30 sec", 30),
        ("10m", 600),
        ("10 min", 600),
        ("10 MIN", 600),
        ("2h", 7200),
        ("2H", 7200),
        ("1d", 86400),
        (" 1 d ", 86400),
        ("0", 0),
    ],
)
def test_one_grammar_reads_every_duration_either_side_took(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "x", "5w", "1.5h", "-10s", "10 minutes", "s", "10 m s", "10m30s"])
def test_what_is_not_a_duration(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["15d", "999999999d", "9" * 5000, "0000000000000000000001209600"])
def test_durations_are_capped_at_two_weeks(text: str) -> None:
    assert parse_duration(text) == MAX_DURATION_S == 14 * 86400


def test_a_duration_under_the_cap_with_leading_zeros_keeps_its_value() -> None:
    assert parse_duration("000000000000000000000090s") == 90


def test_a_unit_can_be_required() -> None:
    assert parse_duration("90", unit_required=True) is None
    assert parse_duration("90s", unit_required=True) == 90


@pytest.mark.parametrize(
    ("words", "seconds", "rest"),
    [
        (["10", "min", "spoilers"], 600, ["spoilers"]),
        (["10m", "spoilers"], 600, ["spoilers"]),
        (["90", "flood"], 90, ["flood"]),
        (["90"], 90, []),
        (["0", "min"], 0, []),
        (["spoilers", "10m"], None, ["spoilers", "10m"]),
        ([], None, []),
    ],
)
def test_take_duration_reads_one_or_two_words(words: list[str], seconds: int | None, rest: list[str]) -> None:
    assert take_duration(words) == (seconds, rest)


@pytest.mark.parametrize(
    ("text", "split"),
    [
        ("G2 2m", ("G2", "2m")),
        ("G2 10 min", ("G2", "10 min")),
        ("Team 1 10 min", ("Team 1", "10 min")),
        ("Team 1", None),  # a number without a unit ends many texts
        ("2m", None),  # nothing before it
    ],
)
def test_split_trailing_duration(text: str, split: tuple[str, str] | None) -> None:
    assert split_trailing_duration(text) == split


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("/ban troll rude", CommandLine("ban", "troll rude")),
        ("  /POLL Q | a | b  ", CommandLine("poll", "Q | a | b")),
        ("/endpoll", CommandLine("endpoll", "")),
        ("/poll\tQ|a|b", CommandLine("poll", "Q|a|b")),
        ("/me dances", CommandLine("me", "dances")),  # a command line; no command has that name
    ],
)
def test_a_line_as_a_command(text: str, line: CommandLine) -> None:
    assert split_command(text) == line


@pytest.mark.parametrize("text", ["hello", "", "/", "/ ban troll", "gg /ban troll"])
def test_lines_that_are_chat(text: str) -> None:
    assert split_command(text) is None


def test_words_split_on_any_whitespace() -> None:
    assert CommandLine("timeout", "troll  10\tmin").words == ["troll", "10", "min"]


def test_every_command_has_its_usage_and_one_reader() -> None:
    """The agent reads every command but the edge's; a command added to one side needs its usage here."""
    assert set(_PARSERS) == set(USAGE) - EDGE_COMMANDS
    assert all(USAGE[name].startswith(f"/{name}") for name in USAGE)
