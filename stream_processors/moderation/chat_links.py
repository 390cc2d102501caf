"""Links in chat (pure): which parts of a message a browser or a reader would take for a web address.

A link is anything written with a scheme (``https://``, ``hxxp://``) or ``www.``, and any bare host
whose last labels are a public suffix of the Public Suffix List's ICANN section (shipped offline by
the ``publicsuffixlist`` package, never fetched): ``scam.fr/x``, ``evil.co.uk``, ``x.xyz`` and
``пример.рф`` are links; ``e.g.``, ``gg.wp``, ``lol.wut``, ``1.5`` and ``v1.2.3`` are not, because no
such top-level domain exists. The hosts are read from the visible, case-folded text with spelled-out
dots (``example dot com``, ``example[.]com``, the ideographic full stop; not ``the dot is red``) read
as dots; punycode labels
(``xn--...``) are decoded, so an allow-list entry matches either spelling.
"""

from __future__ import annotations

import re
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from stream_processors.moderation.chat_rules_text import COMMON_SHORT_WORDS, TEXTS_CACHED, visible_text

__all__ = ["allowed", "host", "links"]

# The list in the installed package: private suffixes (github.io) are left out so that their
# subdomains still count as links of the registrable domain; unknown TLDs are not suffixes.
_SUFFIXES = PublicSuffixList(accept_unknown=False, accept_encoded_idn=False, only_icann=True)
# Dots spelled out: bracketed always; " dot " and " . " unless a common word follows ("the dot is red").
_DOT_SPELLED = re.compile(
    r"\s*(?:\[\.\]|\(\.\)|\[dot\]|\(dot\))\s*|\u3002"
    rf"|\s+(?:\.|dot)\s+(?!(?:{'|'.join(sorted(COMMON_SHORT_WORDS))})\b)"
)
_EXPLICIT = re.compile(r"(?<![\w.-])(?:[a-z][a-z0-9+.-]*://|www\.)\S+")
_BARE = re.compile(r"(?<![\w.-])[\w-]+(?:\.[\w-]+)+(?::\d{1,5})?(?:[/?#]\S*)?")
_SCHEME_WWW = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^/?#@\s]*@)?(?:www\.)?")
_LINK_MARKS = (".", "dot", "://", "\u3002")
_LABEL = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")


@lru_cache(maxsize=TEXTS_CACHED)
def links(text: str) -> tuple[str, ...]:
    """The links of ``text`` as written (folded), in order."""
    readable = visible_text(text)
    if not any(mark in readable for mark in _LINK_MARKS):
        return ()  # most chat: no dot, no link
    readable = _DOT_SPELLED.sub(".", readable)
    found = [(m.start(), m.group(0)) for m in _EXPLICIT.finditer(readable)]
    rest = _EXPLICIT.sub(lambda m: " " * len(m.group(0)), readable)
    found += [(m.start(), m.group(0)) for m in _BARE.finditer(rest) if _is_public_host(host(m.group(0)))]
    return tuple(link for _, link in sorted(found))


def host(link: str) -> str:
    """The host a link points at, without ``www.``, port or trailing dot; punycode labels decoded."""
    name = _SCHEME_WWW.sub("", link)
    name = re.split(r"[/?#]", name, maxsplit=1)[0].split(":", 1)[0].strip(".")
    return ".".join(_decoded(label) for label in name.split("."))


def allowed(link: str, allowlist: tuple[str, ...]) -> bool:
    """Whether the link's host is an allow-listed domain or one of its subdomains."""
    name = host(link)
    return any(name == domain or name.endswith(f".{domain}") for domain in allowlist)


def _decoded(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        return label.encode("ascii").decode("idna")
    except UnicodeError:
        return label  # not valid punycode: compared as written


def _is_public_host(name: str) -> bool:
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return _SUFFIXES.privatesuffix(name) is not None
