"""The topic contract: the code writes only the topics the catalogue lets it write, and names topics
through ``events.topics.Topic``; and the scanner behind that check finds what it must find."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

from events.topics import CATALOGUE
from tests.unit.topic_contract import check, spelled_topics, undeclared, writes

REPO = Path(__file__).resolve().parents[2]


def _writes(source: str, module: str) -> list[tuple[str, str, bool]]:
    found = writes(textwrap.dedent(source), module)
    return [(w.topic, w.event_type, undeclared(w)) for w in found]


def _spelled(source: str) -> list[str]:
    return [f.message.split("'")[1] for f in spelled_topics(textwrap.dedent(source), "producers.example")]


def test_the_code_keeps_the_topic_contract() -> None:
    findings = check(REPO)
    assert not findings, "\n".join(map(str, findings))


def test_every_gateway_is_a_module_that_writes_its_topic() -> None:
    for topic in CATALOGUE:
        for gateway in topic.gateways:
            module = importlib.import_module(gateway.module)
            source = Path(str(module.__file__)).read_text()
            assert {w.topic for w in writes(source, gateway.module)} >= {topic.name}, gateway.module
            assert gateway.reason.strip(), gateway.module


def test_a_module_building_an_event_of_a_topic_it_does_not_own_is_an_undeclared_writer() -> None:
    source = """
        from events.chat import ChatMessageAccepted

        def accept(stream_id):
            return ChatMessageAccepted(stream_id=stream_id, message_id="m", user_id="u", text="hi")
    """
    assert _writes(source, "producers.routes.chat") == [("chat.messages", "ChatMessageAccepted", True)]
    assert _writes(source, "stream_processors.moderation.messages") == [
        ("chat.messages", "ChatMessageAccepted", False)
    ]


def test_the_check_fails_on_a_module_publishing_to_a_topic_it_does_not_declare(tmp_path: Path) -> None:
    rogue = tmp_path / "producers" / "rogue.py"
    rogue.parent.mkdir()
    rogue.write_text(
        "from events import chat\n\n\n"
        "async def clear(bus, stream_id):\n"
        "    await bus.publish(chat.ChatCleared(stream_id=stream_id, moderator_id='m'))\n"
    )
    for package in ("stream_processors", "projections", "edge_ws", "ingest_workers", "web", "infra"):
        (tmp_path / package).mkdir()
    findings = check(tmp_path)
    assert [str(f) for f in findings] == ["producers.rogue:5: writes chat.messages (ChatCleared) undeclared"]


def test_a_gateway_may_write_what_its_topic_declares_and_nothing_else() -> None:
    polls = """
        from events.polls import PollOpened
        from events.chat import ChatCleared

        def open_poll(**fields):
            return PollOpened(**fields)

        def clear(**fields):
            return ChatCleared(**fields)
    """
    assert _writes(polls, "producers.routes.polls") == [
        ("polls", "PollOpened", False),
        ("chat.messages", "ChatCleared", True),
    ]


def test_constructors_by_class_method_conditional_class_and_events_factory_count_as_writes() -> None:
    source = """
        from events import viewers
        from events.chat import ChatMessageSent, ChatMessageSubmitted

        def build(text, beats, partitions):
            kind = ChatMessageSubmitted if text.startswith("/") else ChatMessageSent
            message = kind(stream_id="s", text=text)
            batches = viewers.presence_batches(beats, partitions, edge_id="e", seen_at=None)
            name = ChatMessageSent.event_type()
            return message, batches, name
    """
    assert _writes(source, "producers.example") == [
        ("chat.submitted", "ChatMessageSubmitted", True),
        ("chat.sent", "ChatMessageSent", True),
        ("viewers.presence", "presence_batches()", True),
    ]


def test_raw_publishes_count_as_writes_of_their_topic() -> None:
    source = """
        from events.topics import Topic

        async def copy(publisher, names, record):
            await publisher.publish_raw(names.physical(Topic.CHAT_MESSAGES), record.key, record.value)
    """
    assert _writes(source, "edge_ws.example") == [("chat.messages", "raw bytes", True)]


def test_an_event_built_to_be_read_is_not_a_write_when_the_line_says_so() -> None:
    source = """
        from events.chat import ModerationActionRequested

        def cause(routed):
            return ModerationActionRequested(  # contract: not published (rebuilt to decide it)
                stream_id=routed.stream_id
            )
    """
    assert _writes(source, "stream_processors.moderation.senders") == []


def test_dotted_topic_names_are_spelled_anywhere() -> None:
    assert _spelled('CHAT = "chat.messages"\nx = {"k": "polls.tallies"}\n') == [
        "chat.messages",
        "polls.tallies",
    ]


def test_plain_topic_names_are_spelled_only_where_a_topic_is_expected() -> None:
    source = """
        SOURCES = ("streams", "ingest")
        router = APIRouter(prefix="/api", tags=["streams"])
        body = {"streams": [], "polls": 1}
        consumer = Reader(kafka, codec, ["users"], "roster")
        topic = names.physical("notifications")
        if names.logical(message.topic) == "channels":
            pass
        if "polls" in families:
            pass
        table = app.Table("polls")
        other = EventConsumer(kafka, codec, topics=["tournaments"])
    """
    assert _spelled(source) == ["streams", "ingest", "users", "notifications", "channels", "tournaments"]
