"""Chat text normalisation for rule matching (pure): what a message *reads as*, not what it shows.

A blocked term must match however it is dressed up, so matching runs on a folded form of the text:

1. NFKC (fullwidth letters -> ASCII, ligatures, circled and styled letters), then case folding;
2. invisible characters removed: format characters (zero-width space/joiner/non-joiner, word joiner,
   soft hyphen, bidi controls) and the blank "filler" letters some scripts have;
3. combining marks removed (NFD, drop ``Mn``/``Me``): struck-through letters and zalgo read plain;
4. look-alikes from other scripts mapped to Latin (Cyrillic a, Greek omicron...);
5. leetspeak mapped to letters (``b4d`` -> ``bad``); ``1`` and ``|`` are ambiguous (``i`` or ``l``), so
   :func:`fold_variants` yields both readings.

The displayed text is never changed: these forms exist only to decide. The functions are pure, so
the last :data:`TEXTS_CACHED` texts' forms are cached: one message's rules ask for the same forms
many times, and chat repeats itself.
Characters outside the Basic Multilingual Latin range are written as escapes so that the source does
not itself contain the look-alikes it maps.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "FoldedText",
    "combining_marks",
    "fold",
    "fold_variants",
    "is_lookalike",
    "skeleton",
    "squash",
    "visible_text",
    "words",
]

TEXTS_CACHED = 4096
# Letters that render blank (Hangul fillers, braille blank) but are not format characters.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# Cyrillic and Greek letters that look like Latin ones (after case folding).
_CONFUSABLES = {
    "\u0430": "a",  # Cyrillic a
    "\u0431": "b",  # Cyrillic be (looks like 6/b)
    "\u0432": "b",  # Cyrillic ve (small capital B)
    "\u0435": "e",
    "\u0451": "e",
    "\u043a": "k",
    "\u043c": "m",
    "\u043d": "h",
    "\u043e": "o",
    "\u0440": "p",
    "\u0441": "c",
    "\u0442": "t",
    "\u0443": "y",
    "\u0445": "x",
    "\u0455": "s",
    "\u0456": "i",
    "\u0457": "i",
    "\u0458": "j",
    "\u04bb": "h",
    "\u04cf": "l",
    "\u0501": "d",
    "\u051b": "q",
    "\u051d": "w",
    "\u03b1": "a",  # Greek alpha
    "\u03b2": "b",
    "\u03b5": "e",
    "\u03b9": "i",
    "\u03ba": "k",
    "\u03bd": "v",
    "\u03bf": "o",
    "\u03c1": "p",
    "\u03c4": "t",
    "\u03c5": "u",
    "\u03c7": "x",
    "\u03c9": "w",
    "\u0131": "i",  # dotless i
    "\u0261": "g",  # script g
    "\u0251": "a",  # Latin alpha
    "\u00f8": "o",
    "\u0142": "l",
    "\u0111": "d",
    "\u00e6": "ae",
    "\u0153": "oe",
    "\u2113": "l",  # script small l
}
_DIGITS = {
    "0": "o",
    "1": "i",
    "2": "z",
    "3": "e",
    "4": "a",
    "5": "s",
    "6": "g",
    "7": "t",
    "8": "b",
    "9": "g",
}
# Symbols read as letters only when a letter or digit follows in the same word ("sh!t", not "gg!!!").
_SYMBOLS = {
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "i",
    "+": "t",
    "\u20ac": "e",  # euro sign
    "\u00a2": "c",  # cent sign
}
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)
_PRIMARY = str.maketrans({**_CONFUSABLES, **_DIGITS})
_ALTERNATIVE = str.maketrans({**_CONFUSABLES, **_DIGITS, "1": "l"})
_SYMBOLS_ALTERNATIVE = {**_SYMBOLS, "|": "l", "!": "l"}
_SYMBOL_IN_WORD = re.compile("[" + re.escape("".join(_SYMBOLS)) + r"](?=\S*?[^\W_])")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class FoldedText:
    """The readings of a message used for matching: words (spaced-out letters rejoined) and squashed."""

    words: tuple[str, ...]  # folded words, with runs of single letters ("b a d") joined into one
    squashed: str  # every letter of the folded text, nothing else ("b.a d-word" -> "badword")


@lru_cache(maxsize=TEXTS_CACHED)
def visible_text(text: str) -> str:
    """NFKC, case folded, without invisible characters: the form links and caps are judged on."""
    if text.isascii():  # NFKC changes no ASCII, and no ASCII character is invisible or blank
        return text.lower()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if not _invisible(c))


def _invisible(char: str) -> bool:
    return unicodedata.category(char) == "Cf" or char in _BLANK_LETTERS


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))


@lru_cache(maxsize=TEXTS_CACHED)
def fold(text: str, *, alternative: bool = False) -> str:
    """The text as it reads: visible, without combining marks, look-alikes and leetspeak mapped."""
    table, symbols = (_ALTERNATIVE, _SYMBOLS_ALTERNATIVE) if alternative else (_PRIMARY, _SYMBOLS)
    plain = unicodedata.normalize("NFC", _strip_marks(visible_text(text)))
    return _SYMBOL_IN_WORD.sub(lambda m: symbols[m.group(0)], plain).translate(table)


def is_lookalike(char: str) -> bool:
    """Whether ``char`` (case folded) is a letter of another script that looks like a Latin one."""
    return char in _CONFUSABLES and not char.isascii()


@lru_cache(maxsize=TEXTS_CACHED)
def skeleton(text: str) -> str:
    """Letters and digits only, look-alikes mapped, marks and case gone, digits kept (no leetspeak):
    what makes two messages "the same" for duplicate and unique-chat checks."""
    plain = unicodedata.normalize("NFC", _strip_marks(visible_text(text))).translate(_CONFUSABLE_TABLE)
    return "".join(c for c in plain if c.isalnum())


def words(folded: str) -> tuple[str, ...]:
    """Words of a folded text, with runs of single letters joined (``"b a d  guy"`` -> bad, guy)."""
    joined: list[str] = []
    run: list[str] = []
    for word in _WORD.findall(folded):
        if len(word) == 1:
            run.append(word)
            continue
        if run:
            joined.append("".join(run))
            run = []
        joined.append(word)
    if run:
        joined.append("".join(run))
    return tuple(joined)


def squash(folded: str) -> str:
    """Only the letters of a folded text."""
    return "".join(_WORD.findall(folded))


@lru_cache(maxsize=TEXTS_CACHED)
def fold_variants(text: str) -> tuple[FoldedText, ...]:
    """Both leetspeak readings of ``text`` (one when they agree)."""
    forms = dict.fromkeys((fold(text), fold(text, alternative=True)))
    return tuple(FoldedText(words(form), squash(form)) for form in forms)


@lru_cache(maxsize=TEXTS_CACHED)
def combining_marks(text: str) -> tuple[int, int, int]:
    """``(marks, bases, longest run of marks on one base)`` of the NFD form (zalgo measure)."""
    marks = bases = run = longest = 0
    for char in unicodedata.normalize("NFD", visible_text(text)):
        if unicodedata.category(char) in ("Mn", "Me"):
            marks += 1
            run += 1
            longest = max(longest, run)
        elif not char.isspace():
            bases += 1
            run = 0
    return marks, bases, longest
