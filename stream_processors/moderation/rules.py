"""Chat settings and channel rules (pure): every change is a ``ChatSettingsChanged`` with all of them.

Slow mode and followers-only come as moderation actions; blocked terms, the link policy and
unique-chat as the chat commands ``/block term``, ``/unblock term``, ``/links allow|deny|allowlist
[domain ...]`` and ``/uniquechat [on|off]``. The event carries the full settings (replace, not patch),
plus the terms this change added or removed, so the log alone rebuilds them and audits who changed
what. A command that changes nothing publishes nothing; a malformed one is refused to its sender.
"""

from __future__ import annotations

from dataclasses import replace

from events.base import Event
from events.chat import ChatMessageSubmitted, ChatSettingsChanged, LinkPolicy, RejectionReason
from stream_processors.moderation.chat_rules import ChannelRules, normalised_term
from stream_processors.moderation.commands import ChatCommand
from stream_processors.moderation.messages import rejected
from stream_processors.moderation.state import ChatChannel, head

__all__ = ["apply_rule_command", "settings_changed"]

Outcome = tuple[ChatChannel, list[Event]]
USAGE = {
    "block": "usage: /block <term>",
    "unblock": "usage: /unblock <term>",
    "links": "usage: /links allow|deny|allowlist [domain ...]",
}


def settings_changed(
    state: ChatChannel,
    rules: ChannelRules,
    cause: Event,
    *,
    actor_id: str,
    reason: str = "",
    added: tuple[str, ...] = (),
    removed: tuple[str, ...] = (),
) -> ChatSettingsChanged:
    """The event stating ``rules`` in full, caused by ``cause``."""
    return ChatSettingsChanged(
        **head(cause, ChatSettingsChanged),
        stream_id=state.stream_id,
        actor_id=actor_id,
        slow_mode_s=rules.slow_mode_s,
        followers_only_min_s=rules.followers_only_min_s,
        reason=reason,
        blocked_terms=rules.blocked_terms,
        blocked_terms_added=added,
        blocked_terms_removed=removed,
        link_policy=rules.link_policy,
        link_allowlist=rules.link_allowlist,
        unique_chat=rules.unique_chat,
    )


def apply_rule_command(state: ChatChannel, e: ChatMessageSubmitted, command: ChatCommand) -> Outcome:
    """The outcome of an authorised ``/block``, ``/unblock``, ``/links`` or ``/uniquechat``."""
    changed = _changed(state.rules, command)
    if changed is None:
        return state, [rejected(state, e, RejectionReason.OTHER, USAGE[command.name])]
    rules, added, removed = changed
    if rules == state.rules:
        return state, []
    event = settings_changed(state, rules, e, actor_id=e.user_id, added=added, removed=removed)
    return replace(state, rules=rules), [event]


Change = tuple[ChannelRules, tuple[str, ...], tuple[str, ...]]  # rules, terms added, terms removed


def _changed(rules: ChannelRules, command: ChatCommand) -> Change | None:
    args = command.args
    if command.name in ("block", "unblock"):
        return _terms(rules, normalised_term(" ".join(args)), block=command.name == "block")
    if command.name == "links":
        if not args or args[0].lower() not in LinkPolicy.__members__.values():
            return None
        domains = tuple(a.lower().removeprefix("www.") for a in args[1:])
        return replace(rules, link_policy=LinkPolicy(args[0].lower()), link_allowlist=domains), (), ()
    return replace(rules, unique_chat=not args or args[0].lower() != "off"), (), ()


def _terms(rules: ChannelRules, term: str, *, block: bool) -> Change | None:
    if not term:
        return None
    present = term in rules.blocked_terms
    if block and not present:
        return replace(rules, blocked_terms=(*rules.blocked_terms, term)), (term,), ()
    if not block and present:
        kept = tuple(t for t in rules.blocked_terms if t != term)
        return replace(rules, blocked_terms=kept), (), (term,)
    return rules, (), ()
