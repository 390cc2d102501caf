"""Channel rules as moderation actions (``block_term``, ``unblock_term``, ``link_policy``,
``unique_chat``): decided as the chat commands are (same rights, same ``ChatSettingsChanged``), the
REST body that carries them, and their Avro evolution (an older reader sees ``unknown``)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader
from pydantic import ValidationError

from events.base import Event
from events.chat import (
    ChatMessageAccepted,
    ChatMessageRejected,
    ChatSettingsChanged,
    LinkPolicy,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
)
from events.codec import EventCodec
from producers.models.moderation import ModerationRequest
from schemas import SCHEMAS_DIR
from tests.unit.test_moderation import Chat, only

RULES = (
    ModerationAction.BLOCK_TERM,
    ModerationAction.UNBLOCK_TERM,
    ModerationAction.LINK_POLICY,
    ModerationAction.UNIQUE_CHAT,
)


def settings(decisions: list[Event]) -> ChatSettingsChanged:
    event = only(decisions)
    assert isinstance(event, ChatSettingsChanged), event
    return event


def test_block_and_unblock_term_change_the_rules_and_refuse_the_term() -> None:
    chat = Chat()
    block = settings(chat.act("mod", ModerationAction.BLOCK_TERM, term="Fr33 Sk1ns", reason="scam"))
    assert (block.blocked_terms, block.blocked_terms_added, block.blocked_terms_removed) == (
        ("free skins",),
        ("free skins",),
        (),
    )
    assert (block.actor_id, block.reason) == ("mod", "scam")
    refused = only(chat.say("viewer", "get FREE SKINS now"))
    assert isinstance(refused, ChatMessageRejected) and refused.reason is RejectionReason.BLOCKED_TERM
    assert chat.act("mod", ModerationAction.BLOCK_TERM, term="free skins") == []  # blocked already
    unblock = settings(chat.act("owner", ModerationAction.UNBLOCK_TERM, term="free skins"))
    assert (unblock.blocked_terms, unblock.blocked_terms_removed) == ((), ("free skins",))
    assert chat.act("owner", ModerationAction.UNBLOCK_TERM, term="free skins") == []  # not blocked
    assert isinstance(only(chat.say("viewer", "get free skins now")), ChatMessageAccepted)


def test_link_policy_deny_refuses_links_and_allowlist_lets_listed_domains_through() -> None:
    chat = Chat()
    deny = settings(chat.act("mod", ModerationAction.LINK_POLICY, link_policy=LinkPolicy.DENY))
    assert (deny.link_policy, deny.link_allowlist) == (LinkPolicy.DENY, ())
    refused = only(chat.say("viewer", "see example.com"))
    assert isinstance(refused, ChatMessageRejected) and refused.reason is RejectionReason.LINK
    listed = settings(
        chat.act(
            "mod",
            ModerationAction.LINK_POLICY,
            link_policy=LinkPolicy.ALLOWLIST,
            link_allowlist=("www.Example.com",),
        )
    )
    assert (listed.link_policy, listed.link_allowlist) == (LinkPolicy.ALLOWLIST, ("example.com",))
    assert isinstance(only(chat.say("viewer", "see example.com/x")), ChatMessageAccepted)
    other = only(chat.say("viewer", "see scam.fr/x"))
    assert isinstance(other, ChatMessageRejected) and other.reason is RejectionReason.LINK


def test_unique_chat_on_refuses_a_repeat_and_off_lets_it_through() -> None:
    chat = Chat()
    on = settings(chat.act("mod", ModerationAction.UNIQUE_CHAT, enabled=True))
    assert on.unique_chat is True
    assert isinstance(only(chat.say("viewer", "what a play")), ChatMessageAccepted)
    repeat = only(chat.say("other", "what a play"))
    assert isinstance(repeat, ChatMessageRejected) and repeat.reason is RejectionReason.UNIQUE_CHAT
    assert chat.act("mod", ModerationAction.UNIQUE_CHAT, enabled=True) == []  # on already
    assert settings(chat.act("mod", ModerationAction.UNIQUE_CHAT, enabled=False)).unique_chat is False
    assert isinstance(only(chat.say("third", "what a play")), ChatMessageAccepted)


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        (ModerationAction.BLOCK_TERM, {"term": "spoiler"}),
        (ModerationAction.LINK_POLICY, {"link_policy": LinkPolicy.DENY}),
        (ModerationAction.UNIQUE_CHAT, {"enabled": True}),
    ],
)
@pytest.mark.parametrize("actor", ["viewer", "u-troll", ""])
def test_rules_from_anyone_but_staff_decide_nothing(
    action: ModerationAction, fields: dict[str, Any], actor: str
) -> None:
    chat = Chat()
    assert chat.act(actor, action, **fields) == []
    assert chat.state.rules == Chat().state.rules


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        (ModerationAction.BLOCK_TERM, {}),  # no term
        (ModerationAction.BLOCK_TERM, {"term": "!!! ???"}),  # nothing left once normalised
        (ModerationAction.UNBLOCK_TERM, {}),
        (ModerationAction.LINK_POLICY, {}),  # no policy
        (ModerationAction.UNIQUE_CHAT, {}),  # neither on nor off
    ],
)
def test_a_malformed_rule_from_the_api_decides_nothing(
    action: ModerationAction, fields: dict[str, Any]
) -> None:
    chat = Chat()
    assert chat.act("owner", action, **fields) == []
    assert chat.state.rules == Chat().state.rules


@pytest.mark.parametrize(
    ("command", "action", "fields"),
    [
        ("/block Fr33 Sk1ns", ModerationAction.BLOCK_TERM, {"term": "Fr33 Sk1ns"}),
        (
            "/links allowlist www.Twitch.tv",
            ModerationAction.LINK_POLICY,
            {"link_policy": LinkPolicy.ALLOWLIST, "link_allowlist": ("www.Twitch.tv",)},
        ),
        ("/links deny", ModerationAction.LINK_POLICY, {"link_policy": LinkPolicy.DENY}),
        ("/uniquechat", ModerationAction.UNIQUE_CHAT, {"enabled": True}),
    ],
)
def test_the_chat_command_and_the_action_decide_the_same_settings(
    command: str, action: ModerationAction, fields: dict[str, Any]
) -> None:
    typed, sent = Chat(), Chat()
    by_command = settings(typed.say("mod", command))
    by_action = settings(sent.act("mod", action, **fields))
    same = (
        "blocked_terms",
        "blocked_terms_added",
        "blocked_terms_removed",
        "link_policy",
        "link_allowlist",
        "unique_chat",
        "actor_id",
    )
    assert {f: getattr(by_command, f) for f in same} == {f: getattr(by_action, f) for f in same}
    assert typed.state.rules == sent.state.rules


def test_the_unblock_command_and_action_agree_after_a_block() -> None:
    typed, sent = Chat(), Chat()
    typed.say("mod", "/block spoiler")
    sent.act("mod", ModerationAction.BLOCK_TERM, term="spoiler")
    assert settings(typed.say("mod", "/unblock SPOILER")).blocked_terms_removed == ("spoiler",)
    assert settings(sent.act("mod", ModerationAction.UNBLOCK_TERM, term="SPOILER")).blocked_terms_removed == (
        "spoiler",
    )
    assert typed.state.rules == sent.state.rules


def test_a_malformed_rule_command_is_still_refused_to_its_sender_with_its_usage() -> None:
    refused = only(Chat().say("mod", "/links sometimes"))
    assert isinstance(refused, ChatMessageRejected) and refused.detail.startswith("usage: /links")


def test_a_rule_action_keeps_the_other_settings() -> None:
    chat = Chat()
    chat.act("mod", ModerationAction.SLOW_MODE, duration_s=30)
    chat.act("mod", ModerationAction.BLOCK_TERM, term="spoiler")
    unique = settings(chat.act("mod", ModerationAction.UNIQUE_CHAT, enabled=True))
    assert (unique.slow_mode_s, unique.blocked_terms, unique.blocked_terms_added) == (30, ("spoiler",), ())


def test_a_redelivered_rule_action_decides_nothing_new() -> None:
    chat = Chat()
    request = ModerationActionRequested(
        stream_id="s1",
        action=ModerationAction.BLOCK_TERM,
        actor_id="mod",
        term="spoiler",
        occurred_at=chat.clock,
    )
    assert settings(chat.feed(request)).blocked_terms == ("spoiler",)
    chat.feed(
        ModerationActionRequested(
            stream_id="s1",
            action=ModerationAction.UNBLOCK_TERM,
            actor_id="mod",
            term="spoiler",
            occurred_at=chat.clock,
        )
    )
    assert chat.feed(request) == []  # the same cause again: not blocked a second time


# --- the REST body ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"action": "block_term", "term": "spoiler"},
        {"action": "unblock_term", "term": "free  skins "},
        {"action": "link_policy", "link_policy": "deny"},
        {"action": "link_policy", "link_policy": "allowlist", "link_allowlist": ["example.com", "пример.рф"]},
        {"action": "unique_chat", "enabled": False},
    ],
)
def test_the_rest_body_accepts_each_rule(body: dict[str, Any]) -> None:
    ModerationRequest.model_validate(body)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"action": "block_term"}, "needs term"),
        ({"action": "block_term", "term": ""}, "at least 1"),
        ({"action": "block_term", "term": "x" * 101}, "at most 100"),
        ({"action": "block_term", "term": "!!!"}, "letter or digit"),
        ({"action": "ban", "user_id": "u-1", "term": "x"}, "term is not for ban"),
        ({"action": "link_policy"}, "needs link_policy"),
        ({"action": "link_policy", "link_policy": "sometimes"}, "'allow', 'deny' or 'allowlist'"),
        ({"action": "link_policy", "link_policy": "allowlist"}, "at least one domain"),
        (
            {"action": "link_policy", "link_policy": "deny", "link_allowlist": ["a.com"]},
            "only for link_policy allowlist",
        ),
        (
            {"action": "link_policy", "link_policy": "allowlist", "link_allowlist": ["not a domain"]},
            "not a domain",
        ),
        (
            {"action": "link_policy", "link_policy": "allowlist", "link_allowlist": ["a.com"] * 51},
            "at most 50",
        ),
        ({"action": "unique_chat"}, "needs enabled"),
        ({"action": "unique_chat", "enabled": "maybe"}, "valid boolean"),
        ({"action": "clear", "enabled": True}, "enabled is not for clear"),
    ],
)
def test_the_rest_body_refuses_a_bad_rule(body: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ModerationRequest.model_validate(body)


# --- evolution ----------------------------------------------------------------------------------


def test_a_rule_action_round_trips_and_a_v3_reader_sees_unknown() -> None:
    codec = EventCodec.load(SCHEMAS_DIR)
    event = ModerationActionRequested(
        stream_id="s1",
        action=ModerationAction.LINK_POLICY,
        actor_id="mod",
        link_policy=LinkPolicy.ALLOWLIST,
        link_allowlist=("example.com",),
    )
    value = codec.encode(event)
    assert codec.decode(value) == event
    v4 = _schema("ModerationActionRequested.avsc")
    v3 = _schema("history/ModerationActionRequested.v3.avsc")
    old = schemaless_reader(io.BytesIO(value[5:]), parse_schema(v4), parse_schema(v3))
    assert old["action"] == "unknown"  # the enum's default: a v3 processor ignores the action
    assert (old["stream_id"], old["actor_id"]) == ("s1", "mod") and "link_policy" not in old


def _schema(path: str) -> dict[str, Any]:
    return json.loads((SCHEMAS_DIR / "chat" / path).read_text())  # type: ignore[no-any-return]


def test_every_rule_action_is_a_symbol_of_both_schemas_embedding_the_enum() -> None:
    for name in ("ModerationActionRequested", "ChatActionRouted"):
        schema = _schema(f"{name}.avsc")
        [enum] = [f["type"] for f in schema["fields"] if f["name"] == "action"]
        assert enum["symbols"] == [a.value for a in ModerationAction]  # appended, never reordered
        assert set(enum["symbols"][-4:]) == {a.value for a in RULES} and enum["default"] == "unknown"
