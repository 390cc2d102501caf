"""The edge's JSON protocol, pure: parsing client frames, positions, and encoding server messages.

Nothing here does I/O, so every rule is tested without a socket. ``edge_ws/PROTOCOL.md`` is the
client-facing description of the same rules; keep the two in step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from events.chat_commands import (
    EDGE_COMMANDS,
    LINK_POLICIES,
    MAX_ALLOWLIST,
    MAX_TERM_CHARS,
    USAGE,
    domain_name,
    parse_duration,
    rule_fields_problem,
    split_command,
    split_trailing_duration,
)
from events.polls import (
    ALL_OPEN,
    MAX_OPTION_CHARS,
    MAX_QUESTION_CHARS,
    POLL_MAX_OPTIONS,
    POLL_MAX_S,
    POLL_MIN_OPTIONS,
    POLL_MIN_S,
)

# Close codes the node uses (RFC 6455 section 7.4.1).
CLOSE_GOING_AWAY = 1001  # the node is shutting down for good
CLOSE_POLICY = 1008  # a limit the client broke on purpose (e.g. flooding after warnings)
CLOSE_TOO_BIG = 1009  # a frame over settings.edge.max_frame_bytes (closed by the websockets library)
CLOSE_RESTART = 1012  # graceful drain: reconnect, to this node later or to another now
CLOSE_TRY_AGAIN = 1013  # slow consumer: its send buffer passed the bound

STREAM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_NONCE = 64
MAX_TOKEN = 4096


class ProtocolError(Exception):
    """A client frame the node cannot act on; answered with ``error {code, message}``, never a close."""

    def __init__(self, code: str, message: str, nonce: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.nonce = nonce


@dataclass(frozen=True, slots=True, order=True)
class LogPosition:
    """Where a delivered event sits in its source topic: ``"partition:offset"`` on the wire.

    Every event of one stream is in one partition (topics are keyed by ``stream_id``), so offsets
    of one stream's chat are totally ordered and a client can hand the last one back as ``since``.
    """

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: object) -> LogPosition:
        if not isinstance(text, str) or text.count(":") != 1:
            raise ProtocolError("bad_request", "since must be a position 'partition:offset'")
        partition, offset = text.split(":")
        if not (partition.isdigit() and offset.isdigit()):
            raise ProtocolError("bad_request", "since must be a position 'partition:offset'")
        return cls(int(partition), int(offset))


# --- client commands ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    stream: str
    since: LogPosition | None = None
    referrer: str | None = None  # where the viewer came from: a host name, "site" or "direct"
    spoilers_hidden: bool = False  # the page hides this stream's match result: no result frames


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    stream: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    token: str


@dataclass(frozen=True, slots=True)
class SendChat:
    stream: str
    text: str
    nonce: str
    reply_to: str | None = None
    media_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    stream: str


@dataclass(frozen=True, slots=True)
class Vote:
    stream: str
    poll: str
    option: int
    nonce: str = ""


@dataclass(frozen=True, slots=True)
class Moderate:
    stream: str
    action: str
    nonce: str = ""
    user: str | None = None
    message_id: str | None = None
    reason: str = ""
    duration_s: int | None = None
    # the channel-rule actions' fields (see events.chat_commands.rule_fields_problem)
    term: str | None = None
    link_policy: str | None = None
    link_allowlist: tuple[str, ...] = ()
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: str = ""


@dataclass(frozen=True, slots=True)
class WatchHeld:
    """``moderate``: receive the stream's held messages, with a moderator pass from the API."""

    stream: str
    moderator_pass: str
    nonce: str = ""


Command = Subscribe | Unsubscribe | Authenticate | SendChat | Heartbeat | Vote | Moderate | Ping | WatchHeld
MOD_ACTIONS = frozenset(
    {
        "ban",
        "timeout",
        "unban",
        "delete",
        "undelete",
        "slow_mode",
        "followers_only",
        "clear",
        "approve",
        "deny",
        "unique_chat",
        "link_policy",
        "block_term",
        "unblock_term",
    }
)


def parse(frame: str | bytes, *, max_text: int) -> Command:
    """One client frame as a command, or :class:`ProtocolError` saying what is wrong with it."""
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("bad_request", "frame is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "frame must be a JSON object")
    nonce = _nonce(data)
    kind = data.get("type")
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise ProtocolError("bad_request", f"unknown type {kind!r}", nonce)
    try:
        return reader(data, nonce, max_text)
    except ProtocolError as e:
        raise ProtocolError(e.code, e.message, nonce) from None


def _nonce(data: dict[str, Any]) -> str:
    nonce = data.get("nonce", "")
    if not isinstance(nonce, str) or len(nonce) > MAX_NONCE:
        raise ProtocolError("bad_request", f"nonce must be a string of at most {MAX_NONCE} characters")
    return nonce


def _stream(data: dict[str, Any]) -> str:
    stream = data.get("stream")
    if not isinstance(stream, str) or not STREAM_ID.match(stream):
        raise ProtocolError("bad_request", "stream must be an id of 1-64 characters [A-Za-z0-9_.:-]")
    return stream


def _optional_str(data: dict[str, Any], name: str, limit: int = 200) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ProtocolError("bad_request", f"{name} must be a non-empty string of at most {limit} characters")
    return value


def _optional_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError("bad_request", f"{name} must be a non-negative integer")
    return value


HIDE_SPOILERS, SHOW_SPOILERS = "hide", "show"  # subscribe's `spoilers`, as the API's query spells it
REFERRER = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,98}[a-z0-9])?(?::[0-9]{1,5})?")


def _subscribe(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    since = data.get("since")
    referrer = data.get("referrer")
    if referrer is not None and (not isinstance(referrer, str) or not REFERRER.fullmatch(referrer)):
        raise ProtocolError("bad_request", "referrer must be a host name (e.g. twitter.com), site or direct")
    spoilers = data.get("spoilers", SHOW_SPOILERS)
    if spoilers not in (HIDE_SPOILERS, SHOW_SPOILERS):
        raise ProtocolError("bad_request", f"spoilers must be {HIDE_SPOILERS} or {SHOW_SPOILERS}")
    position = None if since is None else LogPosition.parse(since)
    return Subscribe(_stream(data), position, referrer, spoilers_hidden=spoilers == HIDE_SPOILERS)


def _unsubscribe(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    return Unsubscribe(_stream(data))


def _auth(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    token = data.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
        raise ProtocolError("bad_request", "token must be a non-empty string")
    return Authenticate(token)


def _chat(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    stream = _stream(data)
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError("invalid_message", "text must be a non-empty string")
    if len(text) > max_text:
        raise ProtocolError("too_long", f"text is longer than {max_text} characters")
    if not nonce:
        raise ProtocolError("bad_request", "chat needs a nonce (echoed in its ack)")
    return SendChat(
        stream, text, nonce, _optional_str(data, "reply_to"), _optional_int(data, "media_time_ms")
    )


def _heartbeat(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    return Heartbeat(_stream(data))


def _vote(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    poll = _optional_str(data, "poll", 64)
    option = _optional_int(data, "option")
    if poll is None or option is None:
        raise ProtocolError("bad_request", "vote needs poll (id) and option (index)")
    return Vote(_stream(data), poll, option, nonce)


def _mod(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    action = data.get("action")
    if action not in MOD_ACTIONS:
        raise ProtocolError("bad_request", f"action must be one of {sorted(MOD_ACTIONS)}")
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise ProtocolError("bad_request", "reason must be a string of at most 500 characters")
    term, link_policy, link_allowlist, enabled = _rule_fields(data)
    problem = rule_fields_problem(
        str(action), term=term, link_policy=link_policy, link_allowlist=link_allowlist, enabled=enabled
    )
    if problem:
        raise ProtocolError("bad_request", problem)
    return Moderate(
        _stream(data),
        str(action),
        nonce,
        _optional_str(data, "user", 64),
        _optional_str(data, "message_id", 64),
        reason,
        _optional_int(data, "duration_s"),
        term,
        link_policy,
        link_allowlist,
        enabled,
    )


def _rule_fields(data: dict[str, Any]) -> tuple[str | None, str | None, tuple[str, ...], bool | None]:
    """``term``, ``link_policy``, ``link_allowlist`` and ``enabled`` of a ``mod`` frame, each checked
    alone; :func:`~events.chat_commands.rule_fields_problem` then checks them against the action."""
    term = _optional_str(data, "term", MAX_TERM_CHARS)
    link_policy = data.get("link_policy")
    if link_policy is not None and link_policy not in LINK_POLICIES:
        raise ProtocolError("bad_request", f"link_policy must be one of {list(LINK_POLICIES)}")
    domains = data.get("link_allowlist", [])
    if (
        not isinstance(domains, list)
        or len(domains) > MAX_ALLOWLIST
        or not all(isinstance(d, str) for d in domains)
    ):
        raise ProtocolError(
            "bad_request", f"link_allowlist must be a list of at most {MAX_ALLOWLIST} domains"
        )
    try:
        link_allowlist = tuple(domain_name(d) for d in domains)
    except ValueError as e:
        raise ProtocolError("bad_request", str(e)) from None
    enabled = data.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ProtocolError("bad_request", "enabled must be true or false")
    return term, link_policy, link_allowlist, enabled


def _ping(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    return Ping(nonce)


def _moderate(data: dict[str, Any], nonce: str, max_text: int) -> Command:
    moderator_pass = data.get("pass")
    if not isinstance(moderator_pass, str) or not moderator_pass or len(moderator_pass) > MAX_TOKEN:
        raise ProtocolError("bad_request", "pass must be the moderator pass the API issued", nonce)
    return WatchHeld(_stream(data), moderator_pass, nonce)


_READERS = {
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "auth": _auth,
    "chat": _chat,
    "heartbeat": _heartbeat,
    "vote": _vote,
    "mod": _mod,
    "ping": _ping,
    "moderate": _moderate,
}


# --- chat commands that are not chat ---------------------------------------------------------------
# What reads as a command and the duration grammar: events.chat_commands; poll limits: events.polls.

POLL_USAGE = f"usage: {USAGE['poll']}"


@dataclass(frozen=True, slots=True)
class OpenPoll:
    """``/poll Question? | A | B [| C..] [60s|2m]`` typed in chat."""

    question: str
    options: tuple[str, ...]
    duration_s: int | None = None  # None: open until closed


@dataclass(frozen=True, slots=True)
class EndPoll:
    """``/endpoll [poll_id]`` typed in chat; without an id, every open poll of the stream."""

    poll: str = ALL_OPEN


def poll_command(text: str) -> OpenPoll | EndPoll | None:
    """A poll command typed as chat text, None for any other text; ``ProtocolError("bad_command")``
    saying what is wrong when it is a poll command the node cannot publish.

    The node does not check who may run polls (it has no database): the poll agent does.
    """
    line = split_command(text)
    if line is None or line.name not in EDGE_COMMANDS:
        return None
    if line.name == "endpoll":
        return _end_poll(line.rest)
    parts = [part.strip() for part in line.rest.split("|")]
    duration = _poll_duration(parts)
    question, options = parts[0], tuple(parts[1:])
    if not question or len(parts) < 1 + POLL_MIN_OPTIONS:
        raise ProtocolError(
            "bad_command", f"a poll needs a question and at least {POLL_MIN_OPTIONS} options; {POLL_USAGE}"
        )
    if len(options) > POLL_MAX_OPTIONS:
        raise ProtocolError("bad_command", f"a poll has at most {POLL_MAX_OPTIONS} options; {POLL_USAGE}")
    if len(question) > MAX_QUESTION_CHARS:
        raise ProtocolError("bad_command", f"the question is longer than {MAX_QUESTION_CHARS} characters")
    if any(not option or len(option) > MAX_OPTION_CHARS for option in options):
        raise ProtocolError(
            "bad_command", f"each option needs 1 to {MAX_OPTION_CHARS} characters; {POLL_USAGE}"
        )
    if len({option.casefold() for option in options}) != len(options):
        raise ProtocolError("bad_command", "two options are the same")
    return OpenPoll(question, options, duration)


def _end_poll(rest: str) -> EndPoll:
    if not rest:
        return EndPoll()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", rest):
        raise ProtocolError("bad_command", f"usage: {USAGE['endpoll']}")
    return EndPoll(rest)


def _poll_duration(parts: list[str]) -> int | None:
    """Takes the duration off the end of ``parts`` (its own ``| 60s`` or after the last option).

    A unit is required: ``| 1 | 2`` are options, ``| 90s`` or ``| 2 min`` a duration.
    """
    if len(parts) < 2:
        return None
    last = parts[-1]
    if parse_duration(last, unit_required=True) is not None:
        parts.pop()
        text = last
    elif (trailing := split_trailing_duration(last)) is not None:
        parts[-1], text = trailing
    else:
        return None
    seconds = parse_duration(text)
    assert seconds is not None
    if not POLL_MIN_S <= seconds <= POLL_MAX_S:
        raise ProtocolError(
            "bad_command", f"a poll runs {POLL_MIN_S} s to {POLL_MAX_S // 60} min, not {text}"
        )
    return seconds


# --- server messages ------------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    """A server message as the UTF-8 JSON payload of one text frame (compact, encoded once)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def error(code: str, message: str, nonce: str = "") -> bytes:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if nonce:
        body["nonce"] = nonce
    return encode(body)


def notice(code: str, **fields: Any) -> bytes:
    return encode({"type": "notice", "code": code, **fields})


def ack(nonce: str, **fields: Any) -> bytes:
    return encode({"type": "ack", "nonce": nonce, **fields})


def text_frame(payload: bytes) -> bytes:
    """A complete unmasked, unfragmented server text frame (RFC 6455 5.2) around ``payload``.

    Built once per delivery and written as-is to every subscriber's transport: the same bytes for
    everyone, no per-connection framing (the node offers no per-message compression for this reason).
    """
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload
