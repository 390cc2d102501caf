"""Chat settings and channel rules (pure): every change is a ``ChatSettingsChanged`` with all of them.

Slow mode and followers-only come as moderation actions; so do the channel's rules since v4 of
``ModerationActionRequested`` (``block_term``, ``unblock_term``, ``link_policy``, ``unique_chat``),
whether sent over REST or typed as the chat commands ``/block term``, ``/unblock term``, ``/links
allow|deny|allowlist [domain ...]`` and ``/uniquechat [on|off]``: :func:`rule_request` reads a
command as the same request, and :func:`changed_rules` decides both. The event carries the full
settings (replace, not patch), plus the terms this change added or removed, so the log alone rebuilds
them and audits who changed what. A request that changes nothing publishes nothing; a malformed one is
refused to its sender when typed, and decides nothing when it came from the API (which validates).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from events.base import Event
from events.chat import ChatSettingsChanged, LinkPolicy, ModerationAction
from stream_processors.moderation.chat_rules import ChannelRules, normalised_term
from stream_processors.moderation.commands import ChatCommand
from stream_processors.moderation.state import ChatChannel, head

__all__ = [
    "RULE_ACTIONS",
    "USAGE",
    "RuleRequest",
    "changed_rules",
    "normalised_domain",
    "rule_request",
    "settings_changed",
]

RULE_ACTIONS = (
    ModerationAction.BLOCK_TERM.value,
    ModerationAction.UNBLOCK_TERM.value,
    ModerationAction.LINK_POLICY.value,
    ModerationAction.UNIQUE_CHAT.value,
)
# What a malformed rule is refused with, by action (a chat sender reads the command's usage).
USAGE = {
    ModerationAction.BLOCK_TERM.value: "usage: /block <term>",
    ModerationAction.UNBLOCK_TERM.value: "usage: /unblock <term>",
    ModerationAction.LINK_POLICY.value: "usage: /links allow|deny|allowlist [domain ...]",
    ModerationAction.UNIQUE_CHAT.value: "usage: /uniquechat [on|off]",
}
_COMMAND_ACTIONS = {
    "block": ModerationAction.BLOCK_TERM.value,
    "unblock": ModerationAction.UNBLOCK_TERM.value,
    "links": ModerationAction.LINK_POLICY.value,
    "uniquechat": ModerationAction.UNIQUE_CHAT.value,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleRequest:
    """A rule command read as the fields of a rule action (what ``ModerationActionRequested`` carries)."""

    action: str  # one of RULE_ACTIONS
    term: str = ""
    link_policy: LinkPolicy | None = None
    link_allowlist: tuple[str, ...] = ()
    enabled: bool | None = None


Change = tuple[ChannelRules, tuple[str, ...], tuple[str, ...]]  # rules, terms added, terms removed


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


def rule_request(command: ChatCommand) -> RuleRequest:
    """``/block``, ``/unblock``, ``/links`` or ``/uniquechat`` as the rule action it asks for (its
    fields left empty where the command is malformed: :func:`changed_rules` refuses it)."""
    action, args = _COMMAND_ACTIONS[command.name], command.args
    if command.name in ("block", "unblock"):
        return RuleRequest(action=action, term=" ".join(args))
    if command.name == "links":
        policy = args[0].lower() if args else ""
        known = policy in LinkPolicy.__members__.values()
        return RuleRequest(
            action=action, link_policy=LinkPolicy(policy) if known else None, link_allowlist=tuple(args[1:])
        )
    return RuleRequest(action=action, enabled=not args or args[0].lower() != "off")


def changed_rules(rules: ChannelRules, r: RuleRequest) -> Change | None:
    """The rules after the rule action ``r``, with the terms it added or removed; None when malformed."""
    if r.action in (ModerationAction.BLOCK_TERM.value, ModerationAction.UNBLOCK_TERM.value):
        return _terms(rules, normalised_term(r.term), block=r.action == ModerationAction.BLOCK_TERM.value)
    if r.action == ModerationAction.LINK_POLICY.value:
        if r.link_policy is None:
            return None
        domains = tuple(normalised_domain(d) for d in r.link_allowlist)
        return replace(rules, link_policy=r.link_policy, link_allowlist=domains), (), ()
    if r.action == ModerationAction.UNIQUE_CHAT.value and r.enabled is not None:
        return replace(rules, unique_chat=r.enabled), (), ()
    return None


def normalised_domain(domain: str) -> str:
    """An allow-listed domain as it is stored: lower case, without ``www.``."""
    return domain.lower().removeprefix("www.")


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
