"""`/poll` and `/endpoll` typed in chat: parsed by the edge, published to `polls`, never as chat."""

from __future__ import annotations

import time
from typing import Any

import pytest

from edge_ws.auth import Identity
from edge_ws.commands import EdgeWrites
from edge_ws.metrics import Metrics
from edge_ws.protocol import EndPoll, OpenPoll, ProtocolError, SendChat, poll_command
from events.base import Event
from events.chat import ChatMessageSent, ChatMessageSubmitted
from events.polls import ALL_OPEN, PollClosed, PollOpened
from infra.kafka import Position


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/poll Who wins? | NAVI | G2", OpenPoll("Who wins?", ("NAVI", "G2"))),
        ("/poll Who wins? | NAVI | G2 | 90s", OpenPoll("Who wins?", ("NAVI", "G2"), 90)),
        ("/poll Who wins? | NAVI | G2 2m", OpenPoll("Who wins?", ("NAVI", "G2"), 120)),
        (
            "/POLL Best map?|Inferno|Mirage|Nuke|Ancient|Anubis|10 s",
            OpenPoll("Best map?", ("Inferno", "Mirage", "Nuke", "Ancient", "Anubis"), 10),
        ),
        ("/poll Best of? | 1 | 3 | 5", OpenPoll("Best of?", ("1", "3", "5"))),  # numbers are options
        ("  /poll  Q | a | b | 1h  ", OpenPoll("Q", ("a", "b"), 3600)),
        ("/poll Q | a | b | 10 min", OpenPoll("Q", ("a", "b"), 600)),  # the grammar /timeout reads too
        ("/poll Q | a | b 2 MIN", OpenPoll("Q", ("a", "b"), 120)),
        ("/poll Q | a | b | 90", OpenPoll("Q", ("a", "b", "90"))),  # no unit: an option
        ("/endpoll", EndPoll(ALL_OPEN)),
        ("/endpoll 6f1c-poll_2", EndPoll("6f1c-poll_2")),
    ],
)
def test_poll_commands_parse(text: str, expected: OpenPoll | EndPoll) -> None:
    assert poll_command(text) == expected


@pytest.mark.parametrize("text", ["gg", "/pollster on", "/ban troll", "poll | a | b", "/polls", "/me /poll"])
def test_other_text_is_not_a_poll_command(text: str) -> None:
    assert poll_command(text) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/poll", "at least 2 options"),
        ("/poll Who wins?", "at least 2 options"),
        ("/poll Who wins? | NAVI", "at least 2 options"),
        ("/poll | a | b", "at least 2 options"),
        ("/poll Q | a | b | c | d | e | f", "at most 5 options"),
        ("/poll Q | a |  | b", "1 to 80 characters"),
        ("/poll Q | a | " + "b" * 81, "1 to 80 characters"),
        ("/poll " + "q" * 201 + " | a | b", "longer than 200"),
        ("/poll Q | a | A", "the same"),
        ("/poll Q | a | b | 5s", "10 s to 60 min"),
        ("/poll Q | a | b | 2h", "10 s to 60 min"),
        ("/poll Q | a | b 61m", "10 s to 60 min"),
        ("/poll Q | a | b | 1d", "10 s to 60 min, not 1d"),  # a duration /timeout takes, too long here
        ("/poll Q | a | b 1 d", "10 s to 60 min, not 1 d"),
        ("/endpoll two words", "usage: /endpoll"),
    ],
)
def test_malformed_poll_commands_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        poll_command(text)
    assert raised.value.code == "bad_command" and says in raised.value.message


class RecordingPublisher:
    """Stands in for the broker: keeps what would be published (the parsing is what is tested)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> Position:
        self.events.append(event)
        return Position("polls", 0, len(self.events) - 1)


def writes() -> tuple[EdgeWrites, RecordingPublisher]:
    publisher = RecordingPublisher()
    fake: Any = publisher
    return EdgeWrites(fake, "edge-1", Metrics()), publisher


WHO = Identity("u-owner", "streamer", int(time.time()) + 600, "Owner")


async def test_a_typed_poll_becomes_poll_opened_not_chat() -> None:
    edge, published = writes()
    poll_id, position = await edge.chat(WHO, SendChat("s-1", "/poll Who wins? | NAVI | G2 | 90s", "n1"))
    [event] = published.events
    assert isinstance(event, PollOpened) and position.topic == "polls"
    assert (event.poll_id, event.stream_id, event.opened_by) == (poll_id, "s-1", "u-owner")
    assert (event.question, event.options) == ("Who wins?", ("NAVI", "G2"))
    assert event.closes_at is not None
    assert (event.closes_at - event.occurred_at).total_seconds() == 90


async def test_endpoll_becomes_poll_closed_of_every_open_poll() -> None:
    edge, published = writes()
    event_id, _ = await edge.chat(WHO, SendChat("s-1", "/endpoll", "n2"))
    [event] = published.events
    assert isinstance(event, PollClosed) and str(event.event_id) == event_id
    assert (event.poll_id, event.stream_id, event.closed_by) == (ALL_OPEN, "s-1", "u-owner")


async def test_a_malformed_poll_publishes_nothing_and_keeps_the_nonce() -> None:
    edge, published = writes()
    with pytest.raises(ProtocolError) as raised:
        await edge.chat(WHO, SendChat("s-1", "/poll Who wins? | NAVI", "n3"))
    assert (raised.value.code, raised.value.nonce) == ("bad_command", "n3") and published.events == []


async def test_ordinary_chat_is_still_chat() -> None:
    edge, published = writes()
    await edge.chat(WHO, SendChat("s-1", "poll results soon | stay tuned", "n4"))
    await edge.chat(WHO, SendChat("s-1", "/ban troll", "n5"))
    # a message goes to chat.sent (keyed by its sender), a chat command to chat.submitted (by stream)
    assert [type(e) for e in published.events] == [ChatMessageSent, ChatMessageSubmitted]
