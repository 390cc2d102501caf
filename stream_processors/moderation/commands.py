"""Chat commands typed by moderators, parsed into moderation actions (pure).

Every command but ``/poll`` and ``/endpoll`` (which the edge publishes itself): ``/ban``, ``/timeout``,
``/unban``, ``/untimeout``, ``/delete``, ``/undelete``, ``/slow``, ``/slowoff``, ``/followers``,
``/followersoff``, ``/clear``, and for held messages ``/approve``, ``/deny``. Channel rules (published
as ``ChatSettingsChanged``): ``/block``, ``/unblock``, ``/links``, ``/uniquechat``. Their usage, what
reads as a command and the duration grammar (``30``, ``10m``, ``10 min``, ``1d``) are
:mod:`events.chat_commands`, shared with the edge; the defaults are here.

A name may be a username or a display name seen recently in the stream, with or without ``@``.
Anything else starting with ``/`` is ordinary text (``/me``, ``/shrug``...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from events.chat import ModerationAction
from events.chat_commands import split_command, take_duration

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "RULE_COMMANDS",
    "ChatCommand",
    "parse_command",
]

DEFAULT_TIMEOUT_S = 600  # a /timeout without a duration (or with 0)
RULE_COMMANDS = ("block", "unblock", "links", "uniquechat")
Parser = Callable[[list[str]], "ChatCommand | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatCommand:
    """A parsed command: a moderation action or a rule command, and its arguments."""

    name: str  # a ModerationAction value or a rule command
    target: str | None = None  # a user name or a message id
    duration_s: int | None = None
    reason: str = ""
    args: tuple[str, ...] = ()

    @property
    def action(self) -> ModerationAction | None:
        try:
            return ModerationAction(self.name)
        except ValueError:
            return None


def parse_command(text: str) -> ChatCommand | None:
    """The command ``text`` spells, or None when it is not one (then it is chat)."""
    line = split_command(text)
    if line is None or (parser := _PARSERS.get(line.name)) is None:
        return None
    return parser(line.words)


def _targeted(action: str) -> Parser:
    def parse(args: list[str]) -> ChatCommand | None:
        if not args:
            return None
        target = args[0].lstrip("@") if args else None
        return ChatCommand(name=action, target=target, reason=" ".join(args[1:]))

    return parse


def _timeout(args: list[str]) -> ChatCommand | None:
    if not args:
        return None
    duration, reason = take_duration(args[1:])
    return ChatCommand(
        name=ModerationAction.TIMEOUT.value,
        target=args[0].lstrip("@"),
        duration_s=DEFAULT_TIMEOUT_S if duration is None else duration,
        reason=" ".join(reason),
    )


def _setting(action: ModerationAction, default: int) -> Parser:
    def parse(args: list[str]) -> ChatCommand | None:
        if args and args[0].lower() == "off":
            return ChatCommand(name=action.value, duration_s=None)
        duration = take_duration(args)[0] if args else default
        return None if duration is None else ChatCommand(name=action.value, duration_s=duration)

    return parse


def _off(action: ModerationAction) -> Parser:
    return lambda args: ChatCommand(name=action.value, duration_s=None)


def _clear(args: list[str]) -> ChatCommand:
    return ChatCommand(name=ModerationAction.CLEAR.value, reason=" ".join(args))


def _rule(name: str) -> Parser:
    def parse(args: list[str]) -> ChatCommand | None:
        return ChatCommand(name=name, args=tuple(args)) if args or name == "uniquechat" else None

    return parse


_PARSERS: dict[str, Parser] = {
    "ban": _targeted(ModerationAction.BAN.value),
    "timeout": _timeout,
    "unban": _targeted(ModerationAction.UNBAN.value),
    "untimeout": _targeted(ModerationAction.UNBAN.value),
    "delete": _targeted(ModerationAction.DELETE.value),
    "undelete": _targeted(ModerationAction.UNDELETE.value),
    "slow": _setting(ModerationAction.SLOW_MODE, 30),
    "slowoff": _off(ModerationAction.SLOW_MODE),
    "followers": _setting(ModerationAction.FOLLOWERS_ONLY, 0),
    "followersoff": _off(ModerationAction.FOLLOWERS_ONLY),
    "clear": _clear,
    "approve": _targeted(ModerationAction.APPROVE.value),
    "deny": _targeted(ModerationAction.DENY.value),
    **{name: _rule(name) for name in RULE_COMMANDS},
}
