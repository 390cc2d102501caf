"""The moderation decision: messages, rights, actions, commands, held messages, undelete, channel rules,
redelivery, media time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events.base import Event
from events.chat import (
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageDeleted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageRestored,
    ChatMessageSubmitted,
    ChatSettingsChanged,
    LinkPolicy,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    outcome_ids,
)
from events.ingest import IngestConnected, IngestProtocol, SegmentPublished
from events.streams import StreamCreated
from events.users import ChannelFollowed, ModeratorAppointed, ModeratorRemoved, UserRegistered, UserRole
from stream_processors.moderation.chat_rules import ChatLimits, normalised_term
from stream_processors.moderation.commands import parse_command
from stream_processors.moderation.decisions import decide, decision_id
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.state import MAX_SHOWN, ChatChannel

T0 = datetime(2025, 6, 1, 18, 0, 0, tzinfo=UTC)
LIMITS = ChatLimits(blocked_terms=(normalised_term("badword"),))


def roster() -> ChatRoster:
    r = ChatRoster()
    for user, name, role in (("owner", "Owner", UserRole.STREAMER), ("admin", "Admin", UserRole.ADMIN)):
        r.apply(UserRegistered(user_id=user, username=name, display_name=name, role=role))
    r.apply(UserRegistered(user_id="u-troll", username="troll", display_name="Troll"))
    r.apply(ModeratorAppointed(user_id="mod", channel_id="chan", appointed_by="owner"))
    r.apply(ModeratorAppointed(user_id="mod2", channel_id="chan", appointed_by="owner"))
    return r


class Chat:
    """One stream's state driven through decide(), collecting the decisions."""

    def __init__(self) -> None:
        self.roster = roster()
        self.state = ChatChannel(stream_id="s1")
        self.clock = T0
        self.feed(StreamCreated(stream_id="s1", channel_id="chan", owner_id="owner", title="t"))

    def feed(self, cause: Event, at: datetime | None = None) -> list[Event]:
        self.state, decisions = decide(self.state, cause, at or self.clock, roster=self.roster, limits=LIMITS)
        return decisions

    def say(self, user: str, text: str, *, after_s: float = 5, name: str = "") -> list[Event]:
        self.clock += timedelta(seconds=after_s)
        return self.feed(submitted(user, text, self.clock, name=name))

    def act(self, actor: str, action: ModerationAction, **kw: object) -> list[Event]:
        self.clock += timedelta(seconds=1)
        request = ModerationActionRequested(
            stream_id="s1",
            action=action,
            actor_id=actor,
            occurred_at=self.clock,
            **kw,  # type: ignore[arg-type]
        )
        return self.feed(request)


def submitted(
    user: str, text: str, at: datetime, *, name: str = "", message_id: str = ""
) -> ChatMessageSubmitted:
    return ChatMessageSubmitted(
        message_id=message_id or uuid.uuid4().hex,
        stream_id="s1",
        user_id=user,
        display_name=name or user.title(),
        text=text,
        edge_id="edge-1",
        occurred_at=at,
        media_time_ms=1234,
    )


def only(decisions: list[Event]) -> Event:
    assert len(decisions) == 1, decisions
    return decisions[0]


def test_a_message_is_accepted_with_its_fields_and_deterministic_id() -> None:
    chat = Chat()
    cause = submitted("viewer", "gg", T0)
    [accepted] = chat.feed(cause)
    assert isinstance(accepted, ChatMessageAccepted)
    assert (accepted.message_id, accepted.user_id, accepted.text) == (cause.message_id, "viewer", "gg")
    assert accepted.event_id == decision_id(cause, ChatMessageAccepted) and accepted.occurred_at == T0
    assert accepted.media_time_ms == 1234  # no ingest clock known: the edge's


def test_a_redelivered_message_decides_nothing_new() -> None:
    chat = Chat()
    cause = submitted("viewer", "gg", T0)
    assert chat.feed(cause)
    assert chat.feed(cause) == []  # not a "duplicate" rejection: the same cause, already decided


def test_rejections_carry_a_reason_for_the_sender() -> None:
    chat = Chat()
    rejected = only(chat.say("viewer", "what a b4dw0rd"))
    assert isinstance(rejected, ChatMessageRejected) and rejected.reason is RejectionReason.BLOCKED_TERM
    assert rejected.user_id == "viewer" and rejected.detail


def test_a_ban_takes_effect_on_the_next_message_and_unban_lifts_it() -> None:
    chat = Chat()
    assert isinstance(only(chat.say("troll", "hi")), ChatMessageAccepted)
    banned = only(chat.act("mod", ModerationAction.BAN, target_user_id="troll", reason="spam"))
    assert isinstance(banned, UserBanned) and (banned.actor_id, banned.reason) == ("mod", "spam")
    refused = only(chat.say("troll", "hello?"))
    assert isinstance(refused, ChatMessageRejected) and refused.reason is RejectionReason.BANNED
    assert chat.act("mod", ModerationAction.BAN, target_user_id="troll") == []  # already banned
    unbanned = only(chat.act("owner", ModerationAction.UNBAN, target_user_id="troll", reason="appealed"))
    assert isinstance(unbanned, UserUnbanned) and (unbanned.actor_id, unbanned.reason) == (
        "owner",
        "appealed",
    )
    assert unbanned.causation_id and unbanned.event_id == decision_id(unbanned.causation_id, UserUnbanned)
    assert isinstance(only(chat.say("troll", "sorry")), ChatMessageAccepted)
    assert chat.act("owner", ModerationAction.UNBAN, target_user_id="troll") == []  # nothing to lift


def test_a_timeout_expires() -> None:
    chat = Chat()
    timed = only(chat.act("admin", ModerationAction.TIMEOUT, target_user_id="troll", duration_s=60))
    assert isinstance(timed, UserTimedOut) and timed.until == chat.clock + timedelta(seconds=60)
    refused = only(chat.say("troll", "hi", after_s=30))
    assert isinstance(refused, ChatMessageRejected) and refused.reason is RejectionReason.TIMED_OUT
    assert isinstance(only(chat.say("troll", "back", after_s=31)), ChatMessageAccepted)


def test_a_timeout_without_duration_uses_the_default() -> None:
    timed = only(Chat().act("mod", ModerationAction.TIMEOUT, target_user_id="troll"))
    assert isinstance(timed, UserTimedOut) and timed.duration_s == 600


@pytest.mark.parametrize("actor", ["viewer", "mod-of-another-channel", ""])
def test_actions_from_anyone_else_decide_nothing(actor: str) -> None:
    chat = Chat()
    for action in ModerationAction:
        assert chat.act(actor, action, target_user_id="troll", target_message_id="m1", duration_s=30) == []
    assert isinstance(only(chat.say("troll", "still here")), ChatMessageAccepted)


def test_moderators_come_and_go_with_the_roster() -> None:
    chat = Chat()
    chat.roster.apply(ModeratorRemoved(user_id="mod", channel_id="chan", removed_by="owner"))
    assert chat.act("mod", ModerationAction.CLEAR) == []
    assert chat.act("mod2", ModerationAction.CLEAR)


def test_nobody_but_admins_acts_before_the_stream_is_known() -> None:
    chat = Chat()
    chat.state = ChatChannel(stream_id="s1")
    assert chat.act("owner", ModerationAction.CLEAR) == []
    assert isinstance(only(chat.act("admin", ModerationAction.CLEAR)), ChatCleared)


def test_protected_targets() -> None:
    chat = Chat()
    assert chat.act("mod", ModerationAction.BAN, target_user_id="owner") == []
    assert chat.act("mod", ModerationAction.BAN, target_user_id="admin") == []
    assert chat.act("mod", ModerationAction.BAN, target_user_id="mod2") == []  # a moderator bans no moderator
    assert chat.act("mod", ModerationAction.TIMEOUT, target_user_id="mod") == []  # nor themselves
    assert isinstance(only(chat.act("owner", ModerationAction.BAN, target_user_id="mod2")), UserBanned)


def test_delete_settings_and_clear() -> None:
    chat = Chat()
    deleted = only(chat.act("mod", ModerationAction.DELETE, target_message_id="m1", reason="rude"))
    assert isinstance(deleted, ChatMessageDeleted) and (deleted.deleted_by, deleted.reason) == ("mod", "rude")
    slow = only(chat.act("mod", ModerationAction.SLOW_MODE, duration_s=30))
    assert isinstance(slow, ChatSettingsChanged) and (slow.slow_mode_s, slow.followers_only_min_s) == (
        30,
        None,
    )
    followers = only(chat.act("mod", ModerationAction.FOLLOWERS_ONLY, duration_s=600))
    assert isinstance(followers, ChatSettingsChanged) and (
        followers.slow_mode_s,
        followers.followers_only_min_s,
    ) == (
        30,
        600,
    )
    off = only(chat.act("mod", ModerationAction.FOLLOWERS_ONLY))
    assert isinstance(off, ChatSettingsChanged) and off.followers_only_min_s is None and off.slow_mode_s == 30
    cleared = only(chat.act("mod", ModerationAction.CLEAR, reason="raid"))
    assert isinstance(cleared, ChatCleared) and cleared.cleared_before == chat.clock
    assert cleared.reason == "raid" and cleared.causation_id
    assert chat.act("mod", ModerationAction.UNKNOWN) == []


def test_slow_mode_and_followers_only_apply_to_viewers_not_moderators() -> None:
    chat = Chat()
    chat.act("mod", ModerationAction.SLOW_MODE, duration_s=30)
    assert isinstance(only(chat.say("viewer", "one")), ChatMessageAccepted)
    slow = only(chat.say("viewer", "two", after_s=10))
    assert isinstance(slow, ChatMessageRejected) and slow.reason is RejectionReason.SLOW_MODE
    assert isinstance(only(chat.say("mod", "a", after_s=1)), ChatMessageAccepted)
    assert isinstance(only(chat.say("mod", "b", after_s=1)), ChatMessageAccepted)
    chat.act("mod", ModerationAction.FOLLOWERS_ONLY, duration_s=60)
    refused = only(chat.say("fan", "hi", after_s=40))
    assert isinstance(refused, ChatMessageRejected) and refused.reason is RejectionReason.FOLLOWERS_ONLY
    chat.roster.apply(
        ChannelFollowed(user_id="fan", channel_id="chan", occurred_at=chat.clock - timedelta(hours=1))
    )
    assert isinstance(only(chat.say("fan", "hi again", after_s=40)), ChatMessageAccepted)


def test_duplicates_and_rate_limit_use_the_remembered_history() -> None:
    chat = Chat()
    assert isinstance(only(chat.say("viewer", "same")), ChatMessageAccepted)
    duplicate = only(chat.say("viewer", "SAME"))
    assert isinstance(duplicate, ChatMessageRejected) and duplicate.reason is RejectionReason.DUPLICATE
    for i in range(19):
        assert isinstance(only(chat.say("fast", f"msg {i}", after_s=0.1)), ChatMessageAccepted)
    assert isinstance(only(chat.say("fast", "msg 19", after_s=0.1)), ChatMessageAccepted)
    limited = only(chat.say("fast", "msg 20", after_s=0.1))
    assert isinstance(limited, ChatMessageRejected) and limited.reason is RejectionReason.RATE_LIMITED


def test_held_messages_wait_for_approve_or_deny() -> None:
    chat = Chat()
    cause = submitted("viewer", "ba dword", chat.clock, message_id="held-1")
    held = only(chat.feed(cause))
    assert isinstance(held, ChatMessageHeld) and (held.message_id, held.user_id) == ("held-1", "viewer")
    assert held.reasons == ("obfuscated_term",) and held.score == 0.7
    assert held.causation_id == str(cause.event_id) and held.text == "ba dword"
    assert "held-1" in chat.state.held
    assert chat.act("viewer", ModerationAction.APPROVE, target_message_id="held-1") == []  # not a moderator
    assert chat.act("mod", ModerationAction.UNBAN, target_message_id="held-1") == []  # no longer approves
    approved = only(chat.act("mod", ModerationAction.APPROVE, target_message_id="held-1"))
    assert isinstance(approved, ChatMessageAccepted) and approved.message_id == "held-1"
    assert approved.text == "ba dword" and approved.media_time_ms == 1234 and approved.approved_by == "mod"
    assert chat.state.held == {} and "held-1" in chat.state.shown
    assert chat.act("mod", ModerationAction.APPROVE, target_message_id="held-1") == []  # decided already
    chat.feed(submitted("viewer", "ba-dword", chat.clock, message_id="held-2"))
    assert chat.act("mod", ModerationAction.DELETE, target_message_id="held-2") == []  # never shown
    denied = only(chat.act("mod", ModerationAction.DENY, target_message_id="held-2", reason="no"))
    assert isinstance(denied, ChatMessageRejected) and denied.reason is RejectionReason.DENIED
    assert (denied.user_id, denied.detail, denied.denied_by) == ("viewer", "no", "mod")
    assert chat.state.held == {}


def test_held_messages_by_chat_command() -> None:
    chat = Chat()
    chat.feed(submitted("viewer", "ba dword", chat.clock, message_id="h1"))
    chat.feed(submitted("viewer", "ba-dword", chat.clock, message_id="h2"))
    refused = only(chat.say("mod", "/delete h1"))
    assert isinstance(refused, ChatMessageRejected) and "approve or deny" in refused.detail
    assert only(chat.say("mod", "/approve h1")).approved_by == "mod"  # type: ignore[attr-defined]
    assert only(chat.say("mod", "/deny h2 rude")).reason is RejectionReason.DENIED  # type: ignore[attr-defined]
    missing = only(chat.say("mod", "/approve h2"))
    assert isinstance(missing, ChatMessageRejected) and missing.user_id == "mod"


def test_undelete_restores_a_deleted_message_as_it_was() -> None:
    chat = Chat()
    [shown] = chat.feed(submitted("viewer", "gg", chat.clock, message_id="m1"))
    sent_at = chat.clock
    deleted = only(chat.act("mod", ModerationAction.DELETE, target_message_id="m1"))
    assert isinstance(deleted, ChatMessageDeleted) and "m1" in chat.state.deleted
    assert chat.act("mod", ModerationAction.DELETE, target_message_id="m1") == []  # deleted already
    assert chat.act("viewer", ModerationAction.UNDELETE, target_message_id="m1") == []  # not a moderator
    request_reason = "mistake"
    restored = only(
        chat.act("owner", ModerationAction.UNDELETE, target_message_id="m1", reason=request_reason)
    )
    assert isinstance(restored, ChatMessageRestored) and isinstance(shown, ChatMessageAccepted)
    assert (restored.message_id, restored.user_id, restored.text) == ("m1", "viewer", "gg")
    assert (restored.restored_by, restored.reason, restored.sent_at) == ("owner", "mistake", sent_at)
    assert restored.media_time_ms == shown.media_time_ms and restored.causation_id
    assert "m1" not in chat.state.deleted and "m1" in chat.state.shown
    assert chat.act("owner", ModerationAction.UNDELETE, target_message_id="m1") == []  # shown again
    assert isinstance(
        only(chat.act("mod", ModerationAction.DELETE, target_message_id="m1")), ChatMessageDeleted
    )
    assert isinstance(only(chat.say("mod", "/undelete m1")), ChatMessageRestored)


def test_only_kept_messages_can_be_undeleted() -> None:
    chat = Chat()
    chat.act("mod", ModerationAction.DELETE, target_message_id="never-seen")
    assert chat.act("mod", ModerationAction.UNDELETE, target_message_id="never-seen") == []
    refused = only(chat.say("mod", "/undelete never-seen"))
    assert isinstance(refused, ChatMessageRejected) and "restored" in refused.detail
    chat.feed(submitted("viewer", "first", chat.clock, message_id="old"))
    for i in range(MAX_SHOWN):
        chat.feed(submitted(f"u{i}", f"message {i}", chat.clock, message_id=f"n{i}"))
    assert "old" not in chat.state.shown and len(chat.state.shown) == MAX_SHOWN
    chat.act("mod", ModerationAction.DELETE, target_message_id="old")
    assert chat.act("mod", ModerationAction.UNDELETE, target_message_id="old") == []


def test_chat_commands_from_moderators_become_actions() -> None:
    chat = Chat()
    chat.say("u-9", "hello", name="NinjaFan")
    banned = only(chat.say("mod", "/ban @NinjaFan being rude"))
    assert isinstance(banned, UserBanned) and (banned.user_id, banned.reason) == ("u-9", "being rude")
    by_username = only(chat.say("mod", "/timeout troll 10m"))
    assert isinstance(by_username, UserTimedOut) and (by_username.user_id, by_username.duration_s) == (
        "u-troll",
        600,
    )
    assert isinstance(only(chat.say("mod", "/unban ninjafan")), UserUnbanned)
    assert isinstance(only(chat.say("mod", "/slow 45")), ChatSettingsChanged)
    assert only(chat.say("mod", "/followers 10m")).followers_only_min_s == 600  # type: ignore[attr-defined]
    assert isinstance(only(chat.say("mod", "/clear")), ChatCleared)
    assert isinstance(only(chat.say("owner", "/delete m-77")), ChatMessageDeleted)
    unknown = only(chat.say("mod", "/ban nobody"))
    assert isinstance(unknown, ChatMessageRejected) and "nobody" in unknown.detail


def test_chat_commands_from_viewers_are_refused_to_them_only() -> None:
    chat = Chat()
    refused = only(chat.say("viewer", "/ban troll"))
    assert isinstance(refused, ChatMessageRejected) and refused.user_id == "viewer"
    assert "moderators" in refused.detail
    assert isinstance(only(chat.say("viewer", "/me waves")), ChatMessageAccepted)  # not a command


def test_rule_commands_change_the_channel_rules() -> None:
    chat = Chat()
    block = only(chat.say("mod", "/block Fr33 Sk1ns"))
    assert isinstance(block, ChatSettingsChanged) and block.actor_id == "mod"
    assert (block.blocked_terms, block.blocked_terms_added, block.blocked_terms_removed) == (
        ("free skins",),
        ("free skins",),
        (),
    )
    blocked = only(chat.say("viewer", "free skins here"))
    assert isinstance(blocked, ChatMessageRejected) and blocked.reason is RejectionReason.BLOCKED_TERM
    unblock = only(chat.say("mod", "/unblock free skins"))
    assert isinstance(unblock, ChatSettingsChanged) and unblock.blocked_terms_removed == ("free skins",)
    assert unblock.blocked_terms == ()
    assert isinstance(only(chat.say("viewer", "free skins again")), ChatMessageAccepted)
    links = only(chat.say("mod", "/links allowlist www.Twitch.tv"))
    assert isinstance(links, ChatSettingsChanged)
    assert (links.link_policy, links.link_allowlist) == (LinkPolicy.ALLOWLIST, ("twitch.tv",))
    link = only(chat.say("viewer", "see evil.io"))
    assert isinstance(link, ChatMessageRejected) and link.reason is RejectionReason.LINK
    unique_on = only(chat.say("mod", "/uniquechat"))
    assert isinstance(unique_on, ChatSettingsChanged) and unique_on.unique_chat
    assert unique_on.link_policy is LinkPolicy.ALLOWLIST  # the rules in full, every time
    chat.say("a", "pog")
    unique = only(chat.say("b", "POG"))
    assert isinstance(unique, ChatMessageRejected) and unique.reason is RejectionReason.UNIQUE_CHAT


def test_rule_commands_that_change_nothing_or_make_no_sense() -> None:
    chat = Chat()
    assert only(chat.say("mod", "/block spoiler"))
    assert chat.say("mod", "/block SPOILER") == []  # already blocked: nothing to publish
    assert chat.say("mod", "/unblock nothing") == []
    assert chat.say("mod", "/uniquechat off") == []  # off already
    usage = only(chat.say("mod", "/links sometimes"))
    assert isinstance(usage, ChatMessageRejected) and usage.detail.startswith("usage")
    refused = only(chat.say("viewer", "/block gg"))
    assert isinstance(refused, ChatMessageRejected) and "moderators" in refused.detail


def test_settings_changes_carry_the_rules_and_their_cause() -> None:
    chat = Chat()
    chat.say("mod", "/block spoiler")
    chat.clock += timedelta(seconds=1)
    request = ModerationActionRequested(
        stream_id="s1",
        action=ModerationAction.SLOW_MODE,
        actor_id="mod",
        duration_s=10,
        reason="calm down",
        occurred_at=chat.clock,
    )
    slow = only(chat.feed(request))
    assert isinstance(slow, ChatSettingsChanged) and (slow.slow_mode_s, slow.reason) == (10, "calm down")
    assert slow.blocked_terms == ("spoiler",) and slow.blocked_terms_added == ()
    assert slow.causation_id == str(request.event_id)


def test_media_time_comes_from_the_ingest_clock() -> None:
    chat = Chat()
    chat.feed(
        IngestConnected(
            stream_id="s1", session_id="x", protocol=IngestProtocol.RTMP, node="n", occurred_at=T0
        )
    )
    [accepted] = chat.feed(submitted("viewer", "now", T0 + timedelta(seconds=10)))
    assert accepted.media_time_ms == 10_000  # type: ignore[attr-defined]
    segment = SegmentPublished(
        stream_id="s1",
        rendition="720p",
        sequence=9,
        uri="u",
        media_time_ms=18_000,
        duration_ms=2_000,
        size_bytes=1,
        occurred_at=T0 + timedelta(seconds=22),
    )
    chat.feed(segment)  # the media clock is 2 s behind the wall clock since connect
    [later] = chat.feed(submitted("viewer", "later", T0 + timedelta(seconds=30)))
    assert later.media_time_ms == 28_000  # type: ignore[attr-defined]


def test_state_round_trips_through_json() -> None:
    chat = Chat()
    chat.say("viewer", "hello")
    chat.feed(submitted("viewer", "ba dword", chat.clock, message_id="h"))
    chat.act("mod", ModerationAction.BAN, target_user_id="troll")
    chat.act("mod", ModerationAction.TIMEOUT, target_user_id="u-x")
    chat.say("mod", "/links deny")
    chat.act("mod", ModerationAction.DELETE, target_message_id=next(iter(chat.state.shown)))
    chat.say("viewer", "still here")
    assert chat.state.held and chat.state.shown and chat.state.deleted
    assert ChatChannel.from_json(chat.state.to_json()) == chat.state


def test_state_stored_before_shown_and_deleted_still_loads() -> None:
    stored = Chat().state.to_json()
    del stored["shown"], stored["deleted"]
    assert ChatChannel.from_json(stored).deleted == {}


def test_outcome_ids_name_every_decision_a_request_can_have() -> None:
    chat = Chat()
    chat.clock += timedelta(seconds=1)
    request = ModerationActionRequested(
        stream_id="s1",
        action=ModerationAction.BAN,
        actor_id="mod",
        target_user_id="troll",
        occurred_at=chat.clock,
    )
    [banned] = chat.feed(request)
    assert str(banned.event_id) in outcome_ids(str(request.event_id))


@pytest.mark.parametrize(
    ("text", "name", "target", "duration"),
    [
        ("/ban x", "ban", "x", None),
        ("/timeout @x", "timeout", "x", 600),
        ("/timeout x 90 flood", "timeout", "x", 90),
        ("/timeout x 2h", "timeout", "x", 7200),
        ("/timeout x 10 min spoilers", "timeout", "x", 600),  # the grammar /poll reads too
        ("/timeout x 30 SEC", "timeout", "x", 30),
        ("  /TIMEOUT x 1d", "timeout", "x", 86400),
        ("/untimeout x", "unban", "x", None),
        ("/slow", "slow_mode", None, 30),
        ("/slow off", "slow_mode", None, None),
        ("/slowoff", "slow_mode", None, None),
        ("/followers", "followers_only", None, 0),
        ("/followers 1d", "followers_only", None, 86400),
        ("/slow 1 min", "slow_mode", None, 60),
        ("/timeout x 999999999d", "timeout", "x", 14 * 86400),  # capped: no overflow, no crash
        ("/slow 99999999999999999999999", "slow_mode", None, 14 * 86400),
        ("/followersoff", "followers_only", None, None),
        ("/approve m1", "approve", "m1", None),
        ("/deny m1", "deny", "m1", None),
        ("/undelete m1", "undelete", "m1", None),
    ],
)
def test_command_parsing(text: str, name: str, target: str | None, duration: int | None) -> None:
    command = parse_command(text)
    assert command is not None and (command.name, command.target, command.duration_s) == (
        name,
        target,
        duration,
    )


@pytest.mark.parametrize(
    "text", ["hello", "/", "/ ban x", "/ban", "/delete", "/undelete", "/slow soon", "/me dances", "/timeout"]
)
def test_not_commands(text: str) -> None:
    assert parse_command(text) is None


def test_a_duration_is_not_part_of_the_reason() -> None:
    for text in ("/timeout x 10 min spoilers", "/timeout x 10m spoilers"):
        command = parse_command(text)
        assert command is not None and (command.duration_s, command.reason) == (600, "spoilers")
    command = parse_command("/timeout x minutes of spam")
    assert command is not None and (command.duration_s, command.reason) == (600, "minutes of spam")
