"""Chat text normalisation for rule matching (pure): what a message *reads as*, not what it shows.

A blocked term must match however it is dressed up, so matching runs on a folded form of the text:

1. NFKC (fullwidth letters -> ASCII, ligatures, circled and styled letters), then case folding;
2. invisible characters removed: format characters (zero-width space/joiner/non-joiner, word joiner,
   soft hyphen, bidi controls) and the blank "filler" letters some scripts have;
3. combining marks removed (NFD, drop ``Mn``/``Me``): struck-through letters and zalgo read plain;
4. look-alikes mapped to Latin letters with Unicode's confusables data (Cyrillic a, Greek omicron,
   Cherokee, Armenian, Lisu... about 400 letters; the ``confusable-homoglyphs`` package ships the
   data, loaded once at import);
5. leetspeak mapped to letters (``b4d`` -> ``bad``); ``1`` and ``|`` are ambiguous (``i`` or ``l``), so
   :func:`fold_variants` yields both readings.

The displayed text is never changed: these forms exist only to decide. The functions are pure, so
the last :data:`TEXTS_CACHED` texts' forms are cached: one message's rules ask for the same forms
many times, and chat repeats itself.
Characters outside the Basic Multilingual Latin range are written as escapes so that the source does
not itself contain the look-alikes it maps.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from itertools import pairwise

__all__ = [
    "COMMON_SHORT_WORDS",
    "FoldedText",
    "combining_marks",
    "fold",
    "fold_variants",
    "hides_in_words",
    "is_lookalike",
    "skeleton",
    "spelled_apart",
    "squash",
    "visible_text",
    "words",
]

TEXTS_CACHED = 4096
# Letters that render blank (Hangul fillers, braille blank) but are not format characters.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _strip_marks(text: str) -> str:
    if text.isascii():  # no ASCII character is or decomposes into a mark
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))


def _latin_reading(glyph: str) -> str | None:
    """What a homoglyph reads as in ASCII letters (``o`` + long solidus -> ``o``), or None."""
    plain = _strip_marks(unicodedata.normalize("NFKC", glyph))
    return plain.lower() if plain.isascii() and plain.isalpha() else None


def _load_confusables() -> dict[str, str]:
    """Unicode's confusables (confusables.txt, as the ``confusable-homoglyphs`` package ships it) as a
    table from a case-folded non-ASCII letter to the ASCII letters it looks like.

    Only letters that NFKC leaves alone are kept (the rest are folded before the table is used). A
    letter is read through its own look-alikes, else through its capital's (Cyrillic small ve has no
    Latin twin, its capital has: B).
    """
    data = json.loads((files("confusable_homoglyphs") / "confusables.json").read_text("utf-8"))
    own: dict[str, str] = {}
    capital: dict[str, str] = {}
    for char, glyphs in data.items():
        folded = char.casefold()
        if len(folded) != 1 or folded.isascii() or not unicodedata.category(char).startswith("L"):
            continue
        if unicodedata.normalize("NFKC", folded) != folded:
            continue
        readings = [r for glyph in glyphs if (r := _latin_reading(glyph["c"])) is not None]
        if readings:
            (own if char == folded else capital).setdefault(folded, min(readings, key=len))
    return {**capital, **own}


# Loaded once, at import (~60 ms): about 400 letters of other scripts (and Latin ones outside ASCII).
_CONFUSABLES = _load_confusables()
# The look-alikes that are not Latin letters: mixed into a Latin word, they are an evasion marker.
_OTHER_SCRIPT_LOOKALIKES = frozenset(
    c for c in _CONFUSABLES if not unicodedata.name(c, "").startswith("LATIN")
)

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
# Words of one or two letters chat writes on their own: a term split into these is no evasion, and
# "the dot is" is no address.
COMMON_SHORT_WORDS = frozenset(
    "a i u am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we ya yo ye "
    "uh um eh ah ha hm mm gg ez gj gl hf wp ff ty np gz ur".split()
)


@dataclass(frozen=True, slots=True)
class FoldedText:
    """The readings of a message used for matching: words (spaced-out letters rejoined) and squashed."""

    words: tuple[str, ...]  # folded words, with runs of single letters ("b a d") joined into one
    squashed: str  # every letter of the folded text, nothing else ("b.a d-word" -> "badword")
    form: str = ""  # the folded text itself


@lru_cache(maxsize=TEXTS_CACHED)
def visible_text(text: str) -> str:
    """NFKC, case folded, without invisible characters: the form links and caps are judged on."""
    if text.isascii():  # NFKC changes no ASCII, and no ASCII character is invisible or blank
        return text.lower()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if not _invisible(c))


def _invisible(char: str) -> bool:
    return unicodedata.category(char) == "Cf" or char in _BLANK_LETTERS


@lru_cache(maxsize=TEXTS_CACHED)
def fold(text: str, *, alternative: bool = False) -> str:
    """The text as it reads: visible, without combining marks, look-alikes and leetspeak mapped."""
    table, symbols = (_ALTERNATIVE, _SYMBOLS_ALTERNATIVE) if alternative else (_PRIMARY, _SYMBOLS)
    plain = unicodedata.normalize("NFC", _strip_marks(visible_text(text)))
    return _SYMBOL_IN_WORD.sub(lambda m: symbols[m.group(0)], plain).translate(table)


def hides_in_words(text: str) -> bool:
    """Whether an invisible character touches a letter or digit (``bad`` + zero-width space +
    ``word``), unlike the joiners inside emoji sequences."""
    plain = unicodedata.normalize("NFKC", text)
    if len(visible_text(text)) == len(plain.casefold()):
        return False  # nothing invisible
    for at, char in enumerate(plain):
        if _invisible(char) and any(
            _shown_alnum(n) for n in plain[max(0, at - 1) : at] + plain[at + 1 : at + 2]
        ):
            return True
    return False


def _shown_alnum(char: str) -> bool:
    return char.isalnum() and not _invisible(char)


def is_lookalike(char: str) -> bool:
    """Whether ``char`` (case folded) is a letter of another script that looks like a Latin one."""
    return char in _OTHER_SCRIPT_LOOKALIKES


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
    return tuple(FoldedText(words(form), squash(form), form) for form in forms)


def spelled_apart(folded: FoldedText, term: str) -> bool:
    """Whether ``term``'s letters are spelled by whole pieces of the text in a way words are not.

    Suspicious: a split inside a word (``ba-dword``, ``b.a.d word``), a split into fragments
    (``ba dword``), or a multi-word term run together (``scamcoin``). Innocent: a term inside a longer
    word (``classic``, ``badwordsmith``), one that starts or ends inside a word (``this hit``), and
    ordinary words that line up with it across spaces (``pen is``, ``bad word``).
    """
    letters = term.replace(" ", "")
    at = folded.squashed.find(letters)
    if at < 0:
        return False
    runs = list(_WORD.finditer(folded.form))
    pieces = tuple(m.group(0) for m in runs)
    spaced = tuple(any(c.isspace() for c in folded.form[a.end() : b.start()]) for a, b in pairwise(runs))
    while at >= 0:
        span = _whole_pieces(pieces, at, at + len(letters))
        if span is not None and not _ordinary_words(pieces[span[0] : span[1] + 1], spaced[span[0] : span[1]]):
            return True
        at = folded.squashed.find(letters, at + 1)
    return False


def _whole_pieces(pieces: tuple[str, ...], start: int, end: int) -> tuple[int, int] | None:
    """``(first, last)`` pieces that make up exactly ``squashed[start:end]``, if any do."""
    offset, first = 0, None
    for index, piece in enumerate(pieces):
        if offset == start:
            first = index
        offset += len(piece)
        if offset == end:
            return None if first is None else (first, index)
        if offset > end:
            return None
    return None


def _ordinary_words(span: tuple[str, ...], spaced: tuple[bool, ...]) -> bool:
    """Two or more pieces, each a word (3+ letters or a common short one), whitespace between them."""
    return len(span) > 1 and all(spaced) and all(len(p) >= 3 or p in COMMON_SHORT_WORDS for p in span)


@lru_cache(maxsize=TEXTS_CACHED)
def combining_marks(text: str) -> tuple[int, int, int]:
    """``(marks, bases, longest run of marks on one base)`` of the NFD form (zalgo measure)."""
    if text.isascii():  # no marks: every visible character is a base
        return 0, sum(1 for c in text if not c.isspace()), 0
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
