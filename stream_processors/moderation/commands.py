"""Chat commands typed by moderators, parsed into moderation actions (pure).

``/ban name [reason]``, ``/timeout name [seconds|10m|1h] [reason]``, ``/unban name``, ``/untimeout name``,
``/delete <message_id> [reason]``, ``/undelete <message_id> [reason]``, ``/slow [seconds|off]``,
``/slowoff``, ``/followers [age|off]``, ``/followersoff``, ``/clear [reason]``, and for held messages
``/approve <message_id>``, ``/deny <message_id> [reason]``. Channel rules (published as
``ChatSettingsChanged``): ``/block term``, ``/unblock term``, ``/links allow|deny|allowlist
[domain ...]``, ``/uniquechat [on|off]``.

A name may be a username or a display name seen recently in the stream, with or without ``@``.
Anything else starting with ``/`` is ordinary text (``/me``, ``/shrug``...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from events.chat import ModerationAction

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "RULE_COMMANDS",
    "ChatCommand",
    "parse_command",
    "parse_duration",
]

DEFAULT_TIMEOUT_S = 600
RULE_COMMANDS = ("block", "unblock", "links", "uniquechat")
Parser = Callable[[list[str]], "ChatCommand | None"]
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


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


def parse_duration(text: str) -> int | None:
    """``"600"``, ``"10m"``, ``"1h"``, ``"2d"`` in seconds; None if not a duration."""
    match = _DURATION.match(text.strip().lower())
    return None if match is None else int(match.group(1)) * _UNITS[match.group(2)]


def parse_command(text: str) -> ChatCommand | None:
    """The command ``text`` spells, or None when it is not one (then it is chat)."""
    if not text.startswith("/"):
        return None
    parts = text[1:].split()
    parser = _PARSERS.get(parts[0].lower()) if parts else None
    return None if parser is None else parser(parts[1:])


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
    duration = parse_duration(args[1]) if len(args) > 1 else None
    reason_from = 2 if duration is not None else 1
    return ChatCommand(
        name=ModerationAction.TIMEOUT.value,
        target=args[0].lstrip("@"),
        duration_s=DEFAULT_TIMEOUT_S if duration is None else duration,
        reason=" ".join(args[reason_from:]),
    )


def _setting(action: ModerationAction, default: int) -> Parser:
    def parse(args: list[str]) -> ChatCommand | None:
        if args and args[0].lower() == "off":
            return ChatCommand(name=action.value, duration_s=None)
        duration = parse_duration(args[0]) if args else default
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
