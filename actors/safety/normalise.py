"""One spelling for every way a person types a word, before any layer reads it.

People in distress do not write for a pattern matcher: they write in lower
case without punctuation, stretch words ("diiie"), swap letters for digits to
get past filters ("k1ll", "$uicide"), paste styled Unicode (full-width or
"fancy" letters) and carry invisible characters from other apps. Every layer
downstream sees the same normalised text, so each pattern is written once.

Two forms come out. ``text`` keeps accents (what the person wrote, for
evidence); ``folded`` also drops them (``suicídio`` → ``suicidio``), which is
what patterns and the classifier read, because accents are the first thing
people leave out on a phone. Pattern sources are folded the same way, so a
lexicon may be written with or without them.

Everything here is linear in the length of the input: a 1 MB message, binary
junk or a string with lone surrogates comes out as ordinary text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from itertools import product

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufe00-\ufe0f\ufeff]")
_QUOTES = str.maketrans(
    {
        "\u2019": "'",
        "\u2018": "'",
        "\u02bc": "'",
        "`": "'",
        "\u00b4": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2010": "-",
        "\u2011": "-",
    }
)
# Letters NFD does not split into base + accent.
_FOLD_EXTRA = str.maketrans({"æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_SPACE = re.compile(r"[\s_]+")

# Leetspeak: only inside a token that mixes letters with digits or symbols, and
# never in a number with a unit ("3am", "30mg", "2nd"), so figures survive.
_LEET_TOKEN = re.compile(r"(?<![\w@$])[\w@$]*[a-z][\w@$]*")
_LEET_CHAR = re.compile(r"[0134578@$]")
_LEET_NEAR_LETTER = re.compile(r"[a-z][0134578@$]|[0134578@$][a-z]")
_NUMBER_UNIT = re.compile(r"\d+[a-z]{1,3}")
_LEET_MAP = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s"})

_RUN3 = re.compile(r"([^\W\d_])\1{2,}")
# A word holding such a run. The lookbehind pins the start to a word's first
# letter and the lazy scan moves forward only, so a long word costs one pass.
_WORD_WITH_RUN = re.compile(r"(?<![^\W\d_])[^\W\d_]*?([^\W\d_])\1\1[^\W\d_]*")
_MAX_SQUASH_CHOICES = 3  # runs per word tried both ways: 2**3 spellings at most


@dataclass(frozen=True)
class Normalised:
    """A message as the layers read it: ``text`` keeps accents, ``folded`` does not."""

    text: str
    folded: str


def safe_text(text: object) -> str:
    """Any input as a valid Python string: bytes decoded leniently, lone surrogates replaced."""
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        text = str(text)
    if text.isascii():
        return text
    return text.encode("utf-8", errors="replace").decode("utf-8", errors="replace")


def fold_accents(text: str) -> str:
    """``Überdosis`` → ``uberdosis``: accents dropped, other characters kept."""
    if text.isascii():
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFD", text)).translate(_FOLD_EXTRA)


def _unleet(match: re.Match[str]) -> str:
    token = match.group(0)
    if not _LEET_CHAR.search(token) or _NUMBER_UNIT.fullmatch(token):
        return token
    return token.translate(_LEET_MAP)


def _squash_word(word: str, known: Collection[str]) -> str:
    """``diiie`` → ``die``, ``killll`` → ``kill``: the spelling the vocabulary knows, else one letter."""
    runs = list(_RUN3.finditer(word))
    if len(runs) > _MAX_SQUASH_CHOICES:
        return _RUN3.sub(r"\1", word)
    for widths in product((1, 2), repeat=len(runs)):
        pieces, last = [], 0
        for run, width in zip(runs, widths, strict=True):
            pieces.append(word[last : run.start()] + run.group(1) * width)
            last = run.end()
        candidate = "".join(pieces) + word[last:]
        if candidate in known:
            return candidate
    return _RUN3.sub(r"\1", word)


def squash_repeats(text: str, known: Collection[str] = ()) -> str:
    """Shorten letters typed three or more times, choosing per word the spelling ``known`` holds."""
    if not _RUN3.search(text):
        return text
    return _WORD_WITH_RUN.sub(lambda m: _squash_word(m.group(0), known), text)


class Aliases:
    """Whole-word texting spellings and what they stand for (``nn`` → ``non``), applied in one pass."""

    def __init__(self, mapping: dict[str, str] | None = None) -> None:
        self.mapping = {k: v for k, v in (mapping or {}).items() if k and k != v}
        keys = sorted(self.mapping, key=lambda k: (-len(k), k))
        self._regex = re.compile(r"(?<![\w'])(?:" + "|".join(map(re.escape, keys)) + r")(?![\w'])") if keys else None

    def apply(self, text: str) -> str:
        if self._regex is None:
            return text
        return self._regex.sub(lambda m: self.mapping[m.group(0)], text)


_NO_ALIASES = Aliases()


def normalise(text: object, known: Collection[str] = (), aliases: Aliases = _NO_ALIASES) -> Normalised:
    """The message in one spelling. ``known`` is the vocabulary that decides stretched words;
    ``aliases`` the texting spellings to read as words."""
    raw = safe_text(text)
    raw = unicodedata.normalize("NFKC", raw)
    raw = _INVISIBLE.sub("", raw).translate(_QUOTES).casefold()
    if _LEET_NEAR_LETTER.search(raw):
        raw = _LEET_TOKEN.sub(_unleet, raw)
    raw = _SPACE.sub(" ", raw).strip()
    folded = fold_accents(raw)
    return Normalised(
        text=aliases.apply(squash_repeats(raw, known)), folded=aliases.apply(squash_repeats(folded, known))
    )


def fold_pattern(source: str) -> str:
    """A lexicon pattern in the folded alphabet: accents dropped and ``ß`` spelt ``ss``, syntax untouched."""
    return fold_accents(unicodedata.normalize("NFKC", source).replace("ß", "ss").translate(_QUOTES))


Normaliser = Callable[[object], Normalised]
