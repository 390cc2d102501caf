"""Slash commands typed in chat: how a line reads as a command, their usage, and the one duration grammar.

Two services read these lines. The edge turns ``/poll`` and ``/endpoll`` into poll events
(:func:`edge_ws.protocol.poll_command`); the moderation agent decides every other command
(:func:`stream_processors.moderation.commands.parse_command`). The grammar lives here so that the two
cannot drift; the *limits* belong to each command and stay with it:

- a poll runs :data:`~events.polls.POLL_MIN_S` to :data:`~events.polls.POLL_MAX_S` (10 s to 1 h),
  and in ``/poll`` a duration needs its unit (a bare number is an option): the edge refuses anything
  else with ``bad_command``;
- ``/timeout``, ``/slow`` and ``/followers`` take any duration, bare seconds included; ``/timeout``
  without one (or with ``0``) lasts the agent's default, 10 min.

Every duration is capped at :data:`MAX_DURATION_S` (two weeks, the REST route's bound too): a
moderator's ``/timeout troll 999999999d`` is a two-week time-out, not a number no event can carry.

The channel-rule actions (``block_term``, ``unblock_term``, ``link_policy``, ``unique_chat``) have
fields of their own; the REST route and the edge's ``mod`` frame check them with
:func:`rule_fields_problem` and :func:`domain_name`, so both refuse the same requests.

Pure: standard library only, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from events.polls import POLL_MAX_OPTIONS

__all__ = [
    "EDGE_COMMANDS",
    "LINK_POLICIES",
    "MAX_ALLOWLIST",
    "MAX_DURATION_S",
    "MAX_TERM_CHARS",
    "USAGE",
    "CommandLine",
    "domain_name",
    "parse_duration",
    "rule_fields_problem",
    "split_command",
    "split_trailing_duration",
    "take_duration",
]

# Every command, by name (typed with a leading ``/``, in any case). Any other ``/word`` is chat.
USAGE = {
    "poll": f"/poll Question? | option | option [| ... up to {POLL_MAX_OPTIONS}] [duration, e.g. 60s or 2m]",
    "endpoll": "/endpoll [poll id] (without an id: every open poll)",
    "ban": "/ban name [reason]",
    "timeout": "/timeout name [duration] [reason]",
    "unban": "/unban name",
    "untimeout": "/untimeout name",
    "delete": "/delete message_id [reason]",
    "undelete": "/undelete message_id [reason]",
    "slow": "/slow [duration|off]",
    "slowoff": "/slowoff",
    "followers": "/followers [duration|off]",
    "followersoff": "/followersoff",
    "clear": "/clear [reason]",
    "approve": "/approve message_id",
    "deny": "/deny message_id [reason]",
    "block": "/block term",
    "unblock": "/unblock term",
    "links": "/links allow|deny|allowlist [domain ...]",
    "uniquechat": "/uniquechat [on|off]",
}
# Published by the edge to ``polls``; the moderation agent decides the others.
EDGE_COMMANDS = frozenset({"poll", "endpoll"})

MAX_DURATION_S = 14 * 24 * 3600  # two weeks: the longest time-out, slow mode or follower age
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_UNIT = "|".join(_UNITS)
_DURATION = re.compile(rf"(\d+)\s*({_UNIT})?", re.IGNORECASE)
_TRAILING_DURATION = re.compile(rf"(.*\S)\s+(\d+\s*(?:{_UNIT}))", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class CommandLine:
    """A chat line that reads as a command: ``/Name rest of the line``."""

    name: str  # lower case, without the slash
    rest: str  # what follows the name, stripped

    @property
    def words(self) -> list[str]:
        return self.rest.split()


def split_command(text: str) -> CommandLine | None:
    """``text`` as a command's name and the rest, or None when it is not a slash command: after
    leading whitespace it must start with ``/`` and a name (``"/ ban"`` is chat)."""
    line = text.strip()
    if not line.startswith("/") or len(line) == 1 or line[1].isspace():
        return None
    name, *rest = line[1:].split(maxsplit=1)
    return CommandLine(name.lower(), rest[0] if rest else "")


def parse_duration(text: str, *, unit_required: bool = False) -> int | None:
    """``text`` in seconds, or None when it is not a duration.

    A whole number with an optional unit, in any case and with or without a space: ``30``, ``30s``,
    ``30 sec``, ``10m``, ``10 min``, ``2h``, ``1d``. A bare number is seconds, unless
    ``unit_required`` (where a number can mean something else, like a poll option). Capped at
    :data:`MAX_DURATION_S`.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None or (unit_required and match.group(2) is None):
        return None
    digits, unit = match.group(1).lstrip("0") or "0", _UNITS[(match.group(2) or "s").lower()]
    if len(digits) > len(str(MAX_DURATION_S)):  # far beyond the cap (and int() of 5,000 digits raises)
        return MAX_DURATION_S
    return min(int(digits) * unit, MAX_DURATION_S)


def take_duration(words: Sequence[str]) -> tuple[int | None, list[str]]:
    """The duration that ``words`` start with (``["10m", ...]`` or ``["10", "min", ...]``), in seconds,
    and the words after it; ``(None, words)`` when they do not start with one."""
    two_words = " ".join(words[:2]) if len(words) > 1 else ""
    if (seconds := parse_duration(two_words, unit_required=True)) is not None:
        return seconds, list(words[2:])
    if words and (seconds := parse_duration(words[0])) is not None:
        return seconds, list(words[1:])
    return None, list(words)


def split_trailing_duration(text: str) -> tuple[str, str] | None:
    """``text`` without the duration it ends with, and that duration as typed (``"G2 2m"`` gives
    ``("G2", "2m")``); None when it does not end with one. The unit is required: many texts end with
    a number."""
    match = _TRAILING_DURATION.fullmatch(text)
    return None if match is None else (match.group(1), match.group(2))


# --- the channel-rule actions' fields -------------------------------------------------------------

MAX_TERM_CHARS = 100  # a blocked term
MAX_ALLOWLIST = 50  # domains in a link allow-list
LINK_POLICIES = ("allow", "deny", "allowlist")  # events.chat.LinkPolicy's values
_TERM_ACTIONS = frozenset({"block_term", "unblock_term"})
# A host name: dot-separated labels of letters, digits and inner hyphens (IDN letters too).
_DOMAIN = re.compile(r"(?:www\.)?(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W_](?:[\w-]{0,61}[^\W_])?")


def domain_name(value: str) -> str:
    """``value`` as an allow-listed domain (trimmed, lower case); ValueError when it is not one."""
    value = value.strip().lower()
    if len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise ValueError(f"{value[:60]!r} is not a domain name (e.g. example.com)")
    return value


def rule_fields_problem(
    action: str,
    *,
    term: str | None,
    link_policy: str | None,
    link_allowlist: Sequence[str],
    enabled: bool | None,
) -> str | None:
    """What is wrong with a moderation request's rule fields for ``action``, or None: each rule action
    needs its own field (``term``; ``link_policy``, with ``link_allowlist`` exactly when it is
    ``allowlist``; ``enabled``) and no other action may carry them."""
    if (term is not None) != (action in _TERM_ACTIONS):
        return f"{action} needs term" if term is None else f"term is not for {action}"
    if (link_policy is not None) != (action == "link_policy"):
        return "link_policy needs link_policy" if link_policy is None else f"link_policy is not for {action}"
    if (link_policy == "allowlist") != bool(link_allowlist):
        if link_allowlist:
            return "link_allowlist is only for link_policy allowlist"
        return "link_policy allowlist needs at least one domain in link_allowlist"
    if (enabled is not None) != (action == "unique_chat"):
        return "unique_chat needs enabled" if enabled is None else f"enabled is not for {action}"
    return None
