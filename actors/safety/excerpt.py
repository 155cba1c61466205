"""Which parts of a very long message the net reads in full.

Nobody in crisis types a megabyte, but a pasted diary, log or book chapter
arrives as one message and must neither freeze the chat nor slip through.
Up to `LIMIT` characters (about 6,000 words) the whole message is read.
Beyond it the net reads the beginning and the end in full, and from the
middle every stretch around a key term of any language ("suicide",
"matarme", "umbringen" …), found with plain substring search, which is fast
enough for megabytes. The cost stays bounded whatever the input; what can
be missed is an indirect phrasing buried deep inside a paste, which is said
in the README.
"""

from __future__ import annotations

from collections.abc import Iterable

LIMIT = 40_000
HEAD = 20_000
TAIL = 20_000
WINDOW = 400
MAX_WINDOWS = 64


def excerpt(text: str, key_terms: Iterable[str]) -> str:
    """``text`` itself when short; otherwise head, windows around key terms, and tail."""
    if len(text) <= LIMIT:
        return text
    middle = text[HEAD:-TAIL].lower()
    spans: list[tuple[int, int]] = []
    for term in sorted(set(key_terms)):
        start = middle.find(term)
        while start != -1 and len(spans) < MAX_WINDOWS * 4:
            spans.append((max(0, start - WINDOW), min(len(middle), start + len(term) + WINDOW)))
            start = middle.find(term, start + len(term) + WINDOW)
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    pieces = [text[:HEAD], *(middle[lo:hi] for lo, hi in merged[:MAX_WINDOWS]), text[-TAIL:]]
    return "\n".join(pieces)
