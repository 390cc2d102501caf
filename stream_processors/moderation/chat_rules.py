"""The chat rule engine (pure): one message, the channel's rules and the sender's recent past in,
a :class:`ModerationDecision` out.

Verdicts: ``accepted``; ``rejected`` with a reason shown only to the sender; ``held`` when no rule is
broken but the message looks risky (score >= the hold threshold), so a moderator approves or denies it.

Reasons: ``blocked_term``; ``link`` (the link policy); ``spam`` for formatting (capitals, repeated
characters or words, combining marks/zalgo); ``duplicate`` (the sender's own repeat) and ``unique_chat``
(anyone's, in unique-chat mode); the pace reasons; ``too_long``; ``other`` for an empty message.

Order: pace rules first (followers-only, slow mode, rate limit: they need no text analysis), then the
length, then content (blocked terms, links, zalgo, caps, repetition), then repetition across time
(duplicate per user, unique-chat across the channel), then the risk score. Privileged senders (owner,
moderators, admins) are checked for length only, as on the platforms viewers know.

Risk signals (summed, capped at 1.0): a blocked term spelled apart (``b.a-dword``, ``ba dword``,
``scamcoin``: could be innocent, so a person decides; a term merely inside a longer word, or ordinary
words lining up with it across spaces, ``classic``, ``pen is``, is no signal); evasion markers
(invisible characters touching a letter, look-alike letters of another script inside Latin words); a
link under the ``allow`` policy from a domain not on the allow-list; heavy but tolerated capitals or
combining marks. Links are found with the Public Suffix List (:mod:`.chat_links`), look-alikes with
Unicode's confusables data (:mod:`.chat_rules_text`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from events.chat import LinkPolicy, RejectionReason
from stream_processors.moderation.chat_links import allowed, links
from stream_processors.moderation.chat_rules_text import (
    FoldedText,
    combining_marks,
    fold_variants,
    hides_in_words,
    is_lookalike,
    skeleton,
    spelled_apart,
    visible_text,
)

__all__ = [
    "ChannelRules",
    "ChatLimits",
    "LinkPolicy",
    "ModerationDecision",
    "Sender",
    "SenderHistory",
    "Verdict",
    "evaluate",
    "fingerprint",
    "normalised_term",
]

SIGNAL_OBFUSCATED_TERM = 0.7
SIGNAL_EVASION = 0.3
SIGNAL_LINK = 0.3
SIGNAL_SHOUTING = 0.15
SIGNAL_MARKS = 0.2

_TOKEN = re.compile(r"\S+")


class Verdict(enum.StrEnum):
    """What happens to a message."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class ModerationDecision:
    """The verdict on one message: ``reason``/``detail`` when rejected, ``score``/``signals`` when held."""

    verdict: Verdict
    reason: RejectionReason | None = None
    detail: str = ""
    score: float = 0.0
    signals: tuple[str, ...] = ()

    @classmethod
    def accepted(cls) -> ModerationDecision:
        return cls(Verdict.ACCEPTED)

    @classmethod
    def rejected(cls, reason: RejectionReason, detail: str) -> ModerationDecision:
        return cls(Verdict.REJECTED, reason, detail)

    @classmethod
    def held(cls, score: float, signals: Sequence[str]) -> ModerationDecision:
        return cls(Verdict.HELD, score=round(score, 2), signals=tuple(signals))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatLimits:
    """Deployment-wide limits (from ``ChatSettings``)."""

    max_length: int = 500
    rate_messages: int = 20
    rate_window_s: int = 30
    duplicate_window_s: int = 30
    unique_window_s: int = 60
    max_caps_ratio: float = 0.8
    caps_min_letters: int = 20
    max_repeated_chars: int = 15
    max_repeated_words: int = 8
    max_marks_per_char: int = 3
    hold_threshold: float = 0.6
    blocked_terms: tuple[str, ...] = ()  # everywhere, normalised, on top of each channel's
    link_policy: LinkPolicy = LinkPolicy.ALLOW  # where a channel has not chosen its own
    link_allowlist: tuple[str, ...] = ()

    def effective(self, channel: ChannelRules) -> ChannelRules:
        """A channel's rules with the deployment's terms, link policy and allow-list merged in."""
        return replace(
            channel,
            blocked_terms=tuple(dict.fromkeys((*self.blocked_terms, *channel.blocked_terms))),
            link_policy=channel.link_policy or self.link_policy,
            link_allowlist=tuple(dict.fromkeys((*self.link_allowlist, *channel.link_allowlist))),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelRules:
    """A channel's own rules. ``blocked_terms`` are stored normalised (see :func:`normalised_term`)."""

    blocked_terms: tuple[str, ...] = ()
    link_policy: LinkPolicy | None = None  # None = the deployment's (ChatLimits.link_policy)
    link_allowlist: tuple[str, ...] = ()
    slow_mode_s: int = 0
    followers_only_min_s: int | None = None  # None = off, 0 = any follower
    unique_chat: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Sender:
    """Who sends: privileged (owner, moderator, admin) and since when they follow the channel."""

    privileged: bool = False
    followed_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderHistory:
    """What the rules remember: the sender's accepted messages and the channel's recent fingerprints."""

    sent: tuple[tuple[float, str], ...] = ()  # (epoch seconds, fingerprint) of the sender's messages
    channel: tuple[tuple[float, str], ...] = ()  # the same for everyone (unique-chat)


def normalised_term(term: str) -> str:
    """A blocked term as it is stored and matched: folded words joined by one space."""
    return " ".join(fold_variants(term)[0].words)


def fingerprint(text: str) -> str:
    """What counts as "the same message": the folded letters (case, spacing, marks, leet ignored)."""
    return skeleton(text) or visible_text(text).strip()


def evaluate(
    text: str,
    now: datetime,
    *,
    rules: ChannelRules,
    limits: ChatLimits,
    sender: Sender,
    history: SenderHistory,
) -> ModerationDecision:
    """The verdict on ``text`` sent at ``now``."""
    if len(text) > limits.max_length:
        return ModerationDecision.rejected(RejectionReason.TOO_LONG, f"longer than {limits.max_length}")
    if not visible_text(text).strip():
        return ModerationDecision.rejected(RejectionReason.OTHER, "empty message")
    if sender.privileged:
        return ModerationDecision.accepted()
    at = now.timestamp()
    return (
        _pace(at, rules, limits, sender, history)
        or _content(text, rules, limits)
        or _repetition(fingerprint(text), at, rules, limits, history)
        or _risk(text, rules, limits)
    )


def _pace(
    at: float, rules: ChannelRules, limits: ChatLimits, sender: Sender, history: SenderHistory
) -> ModerationDecision | None:
    if rules.followers_only_min_s is not None:
        if sender.followed_at is None:
            return ModerationDecision.rejected(RejectionReason.FOLLOWERS_ONLY, "followers only")
        if at - sender.followed_at.timestamp() < rules.followers_only_min_s:
            detail = f"followers of at least {rules.followers_only_min_s} s only"
            return ModerationDecision.rejected(RejectionReason.FOLLOWERS_ONLY, detail)
    last = max((t for t, _ in history.sent), default=None)
    if rules.slow_mode_s and last is not None and at - last < rules.slow_mode_s:
        wait = int(rules.slow_mode_s - (at - last)) + 1
        return ModerationDecision.rejected(RejectionReason.SLOW_MODE, f"slow mode: wait {wait} s")
    recent = sum(1 for t, _ in history.sent if at - t < limits.rate_window_s)
    if recent >= limits.rate_messages:
        detail = f"more than {limits.rate_messages} messages in {limits.rate_window_s} s"
        return ModerationDecision.rejected(RejectionReason.RATE_LIMITED, detail)
    return None


def _content(text: str, rules: ChannelRules, limits: ChatLimits) -> ModerationDecision | None:
    variants = fold_variants(text)
    if any(_has_term(v, rules.blocked_terms) for v in variants):
        return ModerationDecision.rejected(RejectionReason.BLOCKED_TERM, "contains a blocked term")
    link = _link_verdict(text, rules)
    if link is not None:
        return link
    marks, bases, longest = combining_marks(text)
    if longest > limits.max_marks_per_char or (bases and marks > bases * limits.max_marks_per_char / 2):
        return ModerationDecision.rejected(RejectionReason.SPAM, "too many combining marks")
    if _caps_ratio(text, limits.caps_min_letters) > limits.max_caps_ratio:
        return ModerationDecision.rejected(RejectionReason.SPAM, "too many capitals")
    if _longest_char_run(visible_text(text)) > limits.max_repeated_chars:
        return ModerationDecision.rejected(RejectionReason.SPAM, "too many repeated characters")
    if _longest_word_run(visible_text(text)) > limits.max_repeated_words:
        return ModerationDecision.rejected(RejectionReason.SPAM, "too many repeated words")
    return None


def _has_term(folded: FoldedText, terms: Sequence[str]) -> bool:
    padded = f" {' '.join(folded.words)} "
    return any(f" {term} " in padded for term in terms if term)


def _link_verdict(text: str, rules: ChannelRules) -> ModerationDecision | None:
    if rules.link_policy in (None, LinkPolicy.ALLOW):
        return None
    found = links(text)
    if rules.link_policy is LinkPolicy.DENY and found:
        return ModerationDecision.rejected(RejectionReason.LINK, "links are not allowed")
    if any(not allowed(link, rules.link_allowlist) for link in found):
        return ModerationDecision.rejected(RejectionReason.LINK, "links to that site are not allowed")
    return None


def _caps_ratio(text: str, min_letters: int) -> float:
    letters = [c for c in text if c.isalpha() and (c.isupper() or c.islower())]
    if len(letters) < min_letters:
        return 0.0
    return sum(1 for c in letters if c.isupper()) / len(letters)


def _longest_char_run(text: str) -> int:
    longest = run = 0
    previous = ""
    for char in text:
        run = run + 1 if char == previous and not char.isspace() else 1
        previous = char
        longest = max(longest, run)
    return longest


def _longest_word_run(text: str) -> int:
    longest = run = 0
    previous = ""
    for token in _TOKEN.findall(text):
        run = run + 1 if token == previous else 1
        previous = token
        longest = max(longest, run)
    return longest


def _repetition(
    print_: str, at: float, rules: ChannelRules, limits: ChatLimits, history: SenderHistory
) -> ModerationDecision | None:
    if any(p == print_ and at - t < limits.duplicate_window_s for t, p in history.sent):
        return ModerationDecision.rejected(RejectionReason.DUPLICATE, "you sent that already")
    if rules.unique_chat and any(p == print_ and at - t < limits.unique_window_s for t, p in history.channel):
        return ModerationDecision.rejected(
            RejectionReason.UNIQUE_CHAT, "unique chat: someone sent that already"
        )
    return None


def _risk(text: str, rules: ChannelRules, limits: ChatLimits) -> ModerationDecision:
    signals = _signals(text, rules, limits)
    score = min(1.0, sum(weight for _, weight in signals))
    if score >= limits.hold_threshold:
        return ModerationDecision.held(score, [name for name, _ in signals])
    return ModerationDecision.accepted()


def _signals(text: str, rules: ChannelRules, limits: ChatLimits) -> list[tuple[str, float]]:
    signals: list[tuple[str, float]] = []
    variants = fold_variants(text)
    squashed_terms = [(term, term.replace(" ", "")) for term in rules.blocked_terms if term]
    if any(
        letters in v.squashed and spelled_apart(v, term) for v in variants for term, letters in squashed_terms
    ):
        signals.append(("obfuscated_term", SIGNAL_OBFUSCATED_TERM))
    if _evasive(text):
        signals.append(("evasion", SIGNAL_EVASION))
    found = links(text)
    if found and not all(allowed(link, rules.link_allowlist) for link in found):
        signals.append(("link", SIGNAL_LINK))
    if _caps_ratio(text, limits.caps_min_letters) > limits.max_caps_ratio / 2:
        signals.append(("shouting", SIGNAL_SHOUTING))
    marks, bases, _ = combining_marks(text)
    if bases and marks / bases > 0.3:
        signals.append(("combining_marks", SIGNAL_MARKS))
    return signals


def _evasive(text: str) -> bool:
    """Invisible characters touching a letter or digit (not the joiners inside emoji sequences), or
    look-alike letters of another script inside otherwise Latin words."""
    if text.isascii():
        return False
    if hides_in_words(text):
        return True
    visible = visible_text(text)
    for token in _TOKEN.findall(visible):
        if any("a" <= c <= "z" for c in token) and any(is_lookalike(c) for c in token):
            return True
    return False
