"""Cutting a long normalised message into the stretches a pattern may span.

A message of ordinary length is one segment: people write "standing on the
roof. just wanted to say bye", and the two sentences belong together
(negation stops at sentence and clause ends on its own, see `lexicon`). A
long message is cut into windows of a few consecutive sentences, each
window overlapping the next by a sentence, so the lexicon can pick per
window just the few patterns whose first word occurs there (`prefilter`)
and the cost grows with the message, not with message × patterns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise

_SENTENCE_END = re.compile(r"[.!?;\n]+(?:\s|$)|[!?;\n]+")
MAX_SEGMENT = 400
_PIECE = 300
_OVERLAP = 80


def _pieces(sentence: str) -> Iterator[str]:
    """A long unpunctuated stretch as overlapping windows cut at spaces."""
    start, n = 0, len(sentence)
    while start < n:
        end = start + _PIECE
        if end >= n:
            yield sentence[start:]
            return
        cut = sentence.rfind(" ", start + _OVERLAP, end)
        if cut <= start:
            cut = end
        yield sentence[start:cut]
        back = sentence.rfind(" ", start + 1, cut - _OVERLAP) if cut - _OVERLAP > start + 1 else -1
        start = back + 1 if back > start else cut


def _sentences(text: str) -> Iterator[str]:
    last = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[last : match.end()].strip()
        last = match.end()
        if piece:
            yield from (_pieces(piece) if len(piece) > _PIECE else (piece,))
    tail = text[last:].strip()
    if tail:
        yield from (_pieces(tail) if len(tail) > _PIECE else (tail,))


def segments(text: str) -> list[str]:
    """``text`` whole when short; else windows of consecutive sentences, each overlapping the next."""
    text = text.strip()
    if len(text) <= MAX_SEGMENT:
        return [text] if text else []
    out: list[str] = []
    window: list[str] = []
    size = 0
    for sentence in _sentences(text):
        if window and size + len(sentence) + 1 > MAX_SEGMENT:
            out.append(" ".join(window))
            window, size = [window[-1]], len(window[-1])
        window.append(sentence)
        size += len(sentence) + 1
    if window:
        out.append(" ".join(window))
    return out


def sentence_pairs(segment: str) -> list[str]:
    """Each two consecutive sentences of ``segment`` when it has three or more; else nothing.

    The passages of a message of one segment (`SafetyNet._alarming_passage`): one sentence of
    danger between two of the day's news is diluted in the score of the whole, while a pair keeps
    a sentence beside one neighbour, which is where a figure of speech finds its context ("he ate
    my leftovers again. i'm going to kill him")."""
    sentences = list(_sentences(segment))
    if len(sentences) < 3:
        return []
    return [f"{a} {b}" for a, b in pairwise(sentences)]
