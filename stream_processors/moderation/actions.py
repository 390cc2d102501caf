"""Moderation actions (pure): a :class:`Request` from the REST API or a chat command -> events.

Every outcome names its actor and its cause (``causation_id``) and carries the request's reason (a
denial's is its ``detail``). A request the actor
may not make (on the owner, an admin, or a moderator unless the actor is the owner or an admin), or
that finds nothing to act on (no such held or deleted message, a user not banned), decides nothing
when it came from the API, and is rejected to its sender when typed.

Held messages: ``approve`` accepts one (``ChatMessageAccepted`` with ``approved_by``), ``deny``
rejects it (reason ``denied``); ``delete`` of a held message is refused (it was never shown).
``undelete`` restores a deleted message the agent still keeps (``ChatMessageRestored``).

Channel rules (``block_term``, ``unblock_term``, ``link_policy``, ``unique_chat``) come from the API
or as ``/block``, ``/unblock``, ``/links``, ``/uniquechat``; both become the same :class:`Request`
and are decided by :func:`~stream_processors.moderation.rules.changed_rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from events.base import Event
from events.chat import (
    ChatCleared,
    ChatMessageDeleted,
    ChatMessageRejected,
    ChatMessageSubmitted,
    LinkPolicy,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
)
from stream_processors.moderation.commands import DEFAULT_TIMEOUT_S, RULE_COMMANDS, ChatCommand
from stream_processors.moderation.messages import (
    approved,
    delete_shown,
    keep_shown,
    rejected,
    restored,
)
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.rules import (
    RULE_ACTIONS,
    USAGE,
    RuleRequest,
    changed_rules,
    rule_request,
    settings_changed,
)
from stream_processors.moderation.state import ChatChannel, head, privileged

__all__ = ["Request", "act_on"]

Outcome = tuple[ChatChannel, list[Event]]
USER_ACTIONS = (ModerationAction.BAN.value, ModerationAction.TIMEOUT.value, ModerationAction.UNBAN.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One moderation action, whichever way it came in."""

    cause: Event  # the ModerationActionRequested or the ChatMessageSubmitted holding the command
    actor_id: str
    action: str  # a ModerationAction value
    target_user_id: str | None = None
    target_message_id: str | None = None
    duration_s: int | None = None
    reason: str = ""
    term: str = ""  # block_term, unblock_term
    link_policy: LinkPolicy | None = None  # link_policy
    link_allowlist: tuple[str, ...] = ()
    enabled: bool | None = None  # unique_chat
    problem: str = ""  # why it cannot be carried out (told to a chat sender)

    @classmethod
    def from_requested(cls, e: ModerationActionRequested) -> Request:
        """From the API (``chat.moderation``)."""
        return cls(
            cause=e,
            actor_id=e.actor_id,
            action=e.action.value,
            target_user_id=e.target_user_id,
            target_message_id=e.target_message_id,
            duration_s=e.duration_s,
            reason=e.reason,
            term=e.term,
            link_policy=e.link_policy,
            link_allowlist=e.link_allowlist,
            enabled=e.enabled,
        )

    @classmethod
    def from_command(
        cls, e: ChatMessageSubmitted, command: ChatCommand, state: ChatChannel, roster: ChatRoster
    ) -> Request:
        """From a chat command; user names are resolved to ids (usernames, then names seen in chat)."""
        if command.name in RULE_COMMANDS:
            rule = rule_request(command)
            return cls(
                cause=e,
                actor_id=e.user_id,
                action=rule.action,
                term=rule.term,
                link_policy=rule.link_policy,
                link_allowlist=rule.link_allowlist,
                enabled=rule.enabled,
            )
        user_id = message_id = None
        problem = ""
        if command.name in USER_ACTIONS and command.target is not None:
            name = command.target
            user_id = roster.user_id_for(name) or state.chatters.get(name.casefold())
            problem = "" if user_id else f"no user named {name}"
        elif command.target is not None:
            message_id = command.target
        return cls(
            cause=e,
            actor_id=e.user_id,
            action=command.name,
            target_user_id=user_id,
            target_message_id=message_id,
            duration_s=command.duration_s,
            reason=command.reason,
            problem=problem,
        )


def act_on(state: ChatChannel, r: Request, now: datetime, roster: ChatRoster) -> Outcome:
    """The outcome of an authorised actor's request."""
    handler = _HANDLERS.get(r.action)
    if handler is None:
        return state, []
    if r.action in USER_ACTIONS[:2]:
        why = _protected(state, r, roster)
        if why:
            return state, _refused(state, r, why)
    return handler(state, r, now)


def _protected(state: ChatChannel, r: Request, roster: ChatRoster) -> str:
    target = r.target_user_id or ""
    if not target:
        return "no target user"
    if target == state.owner_id or roster.is_admin(target) or target == r.actor_id:
        return "that user cannot be banned or timed out"
    actor_is_senior = r.actor_id == state.owner_id or roster.is_admin(r.actor_id)
    if privileged(state, target, roster) and not actor_is_senior:
        return "only the channel owner can ban a moderator"
    return ""


def _refused(state: ChatChannel, r: Request, why: str) -> list[Event]:
    if isinstance(r.cause, ChatMessageSubmitted):
        return [rejected(state, r.cause, RejectionReason.OTHER, why)]
    return []


def _ban(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    user = r.target_user_id or ""
    if user in state.bans:
        return state, []
    timeouts = {u: t for u, t in state.timeouts.items() if u != user}
    event = UserBanned(
        **head(r.cause, UserBanned),
        stream_id=state.stream_id,
        user_id=user,
        actor_id=r.actor_id,
        reason=r.reason,
    )
    return replace(state, bans=state.bans | {user}, timeouts=timeouts), [event]


def _timeout(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    user = r.target_user_id or ""
    duration = r.duration_s if r.duration_s and r.duration_s > 0 else DEFAULT_TIMEOUT_S
    until = now + timedelta(seconds=duration)
    event = UserTimedOut(
        **head(r.cause, UserTimedOut),
        stream_id=state.stream_id,
        user_id=user,
        actor_id=r.actor_id,
        duration_s=duration,
        until=until,
        reason=r.reason,
    )
    return replace(state, timeouts={**state.timeouts, user: until.timestamp()}), [event]


def _unban(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    user = r.target_user_id or ""
    if not user or (user not in state.bans and state.timeouts.get(user, 0.0) <= now.timestamp()):
        return state, _refused(state, r, "that user is not banned") if user else []
    timeouts = {u: t for u, t in state.timeouts.items() if u != user}
    event = UserUnbanned(
        **head(r.cause, UserUnbanned),
        stream_id=state.stream_id,
        user_id=user,
        actor_id=r.actor_id,
        reason=r.reason,
    )
    return replace(state, bans=state.bans - {user}, timeouts=timeouts), [event]


def _delete(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    message_id = r.target_message_id or ""
    if not message_id or message_id in state.deleted:
        return state, []  # nothing named, or deleted already
    if message_id in state.held:
        return state, _refused(state, r, "that message is held: approve or deny it")
    event = ChatMessageDeleted(
        **head(r.cause, ChatMessageDeleted),
        message_id=message_id,
        stream_id=state.stream_id,
        deleted_by=r.actor_id,
        reason=r.reason,
    )
    return delete_shown(state, message_id), [event]


def _undelete(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    kept = state.deleted.get(r.target_message_id or "")
    if kept is None:
        return state, _refused(state, r, "no deleted message with that id that can still be restored")
    event = restored(state, r.cause, r.actor_id, r.reason, kept)
    return keep_shown(state, event, kept.shown_at_ms), [event]


def _settings(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    rules = state.rules
    if r.action == ModerationAction.SLOW_MODE.value:
        rules = replace(rules, slow_mode_s=max(0, r.duration_s or 0))
    else:
        off = r.duration_s is None or r.duration_s < 0
        rules = replace(rules, followers_only_min_s=None if off else r.duration_s)
    event = settings_changed(state, rules, r.cause, actor_id=r.actor_id, reason=r.reason)
    return replace(state, rules=rules), [event]


def _rule(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    rule = RuleRequest(
        action=r.action,
        term=r.term,
        link_policy=r.link_policy,
        link_allowlist=r.link_allowlist,
        enabled=r.enabled,
    )
    changed = changed_rules(state.rules, rule)
    if changed is None:
        return state, _refused(state, r, USAGE[r.action])
    rules, added, removed = changed
    if rules == state.rules:
        return state, []
    event = settings_changed(
        state, rules, r.cause, actor_id=r.actor_id, reason=r.reason, added=added, removed=removed
    )
    return replace(state, rules=rules), [event]


def _clear(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    event = ChatCleared(
        **head(r.cause, ChatCleared),
        stream_id=state.stream_id,
        actor_id=r.actor_id,
        cleared_before=r.cause.occurred_at,
        reason=r.reason,
    )
    return state, [event]


def _approve(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    held = state.held.get(r.target_message_id or "")
    if held is None:
        return state, _refused(state, r, "no held message with that id")
    rest = {k: v for k, v in state.held.items() if k != held.message_id}
    event = approved(state, r.cause, r.actor_id, held)
    return keep_shown(replace(state, held=rest), event, int(event.occurred_at.timestamp() * 1000)), [event]


def _deny(state: ChatChannel, r: Request, now: datetime) -> Outcome:
    held = state.held.get(r.target_message_id or "")
    if held is None:
        return state, _refused(state, r, "no held message with that id")
    rest = {k: v for k, v in state.held.items() if k != held.message_id}
    event = ChatMessageRejected(
        **head(r.cause, ChatMessageRejected),
        message_id=held.message_id,
        stream_id=state.stream_id,
        user_id=held.user_id,
        reason=RejectionReason.DENIED,
        detail=r.reason,
        denied_by=r.actor_id,
    )
    return replace(state, held=rest), [event]


_HANDLERS: dict[str, Callable[[ChatChannel, Request, datetime], Outcome]] = {
    ModerationAction.BAN.value: _ban,
    ModerationAction.TIMEOUT.value: _timeout,
    ModerationAction.UNBAN.value: _unban,
    ModerationAction.DELETE.value: _delete,
    ModerationAction.UNDELETE.value: _undelete,
    ModerationAction.SLOW_MODE.value: _settings,
    ModerationAction.FOLLOWERS_ONLY.value: _settings,
    ModerationAction.CLEAR.value: _clear,
    ModerationAction.APPROVE.value: _approve,
    ModerationAction.DENY.value: _deny,
    **dict.fromkeys(RULE_ACTIONS, _rule),
}
