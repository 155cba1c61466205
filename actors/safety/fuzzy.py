"""Typo tolerance on the few words that matter most: "sucide", "myslef", "overdoesed".

A misspelt key word is corrected to the key word it is one edit away from
(Damerau-Levenshtein: one letter added, dropped, changed, or two neighbours
swapped), and the patterns run again on the corrected text. Only words of
five letters or more are corrected, and never a word the lexicon itself
knows, so "putting" never becomes "cutting" unless "cutting" is listed as a
key word (it is not: common neighbours are the reason a word stays off the
key list).

Lookup is a deletion index (the SymSpell idea): every key word is stored
under each spelling with one letter removed, and a typed word is looked up
under its own such spellings. That is a handful of dictionary probes per
word, whatever the size of the key list, and linear in the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_LEN = 5
VOCAB_MIN_LEN = 7
_WORD = re.compile(rf"[^\W\d_]{{{MIN_LEN},}}")


def within_one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance of ``a`` and ``b`` is at most one (adjacent swap counts one)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def _substitution(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one changed letter ("geschlafen"/"geschlagen"): a different
    word far more often than a typo, so only key terms are corrected that way."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def _other_ending(a: str, b: str) -> bool:
    """``a`` and ``b`` differ only in their last letter: another form of the word, not a typo
    ("pillola"/"pillole", "hermana"/"hermano")."""
    return len(a) == len(b) and a[:-1] == b[:-1]


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _index(words: Iterable[str]) -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for word in words:
        for key in _deletions(word) | {word}:
            index.setdefault(key, set()).add(word)
    return index


class FuzzyIndex:
    """Corrects a word one edit away from a key word (five letters or more), or from any word
    of eight letters or more that the lexicon spells."""

    def __init__(self, key_terms: Iterable[str], known: Iterable[str]) -> None:
        self.terms = frozenset(t for t in key_terms if len(t) >= MIN_LEN and t.isalpha())
        self.known = frozenset(known) | self.terms
        self._terms = _index(self.terms)
        self._vocabulary = _index(w for w in self.known if len(w) >= VOCAB_MIN_LEN + 1 and w.isalpha())

    @staticmethod
    def _lookup(index: dict[str, set[str]], word: str) -> list[str]:
        candidates: set[str] = set()
        for key in _deletions(word) | {word}:
            candidates |= index.get(key, set())
        return sorted(t for t in candidates if within_one_edit(word, t))

    def correct(self, word: str) -> str | None:
        """The word ``word`` is a typo of, or None (also when it is a known word or ambiguous).

        Typos keep the first letter and rarely fall on a word's ending, while a different
        word of the same family differs exactly there ("hermana"/"hermano",
        "loyer"/"noyer"): so the first letter must agree, and a correction to a lexicon
        word other than a key term must leave the last two letters alone and may not be
        a changed letter (only a dropped, doubled or swapped one).
        """
        if len(word) < MIN_LEN or word in self.known:
            return None
        matches = [m for m in self._lookup(self._terms, word) if m[0] == word[0] and not _other_ending(word, m)]
        if not matches and len(word) >= VOCAB_MIN_LEN:
            matches = [
                m
                for m in self._lookup(self._vocabulary, word)
                if m[0] == word[0] and m[-2:] == word[-2:] and not _substitution(word, m)
            ]
        return matches[0] if len(matches) == 1 else None

    def apply(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        """``text`` with misspelt key words corrected, and the (typed, corrected) pairs."""
        if not self.terms:
            return text, []
        seen: dict[str, str | None] = {}
        fixes: list[tuple[str, str]] = []

        def fix(match: re.Match[str]) -> str:
            word = match.group(0)
            if word not in seen:
                seen[word] = self.correct(word)
                if seen[word] is not None:
                    fixes.append((word, seen[word]))
            return seen[word] or word

        return _WORD.sub(fix, text), fixes
