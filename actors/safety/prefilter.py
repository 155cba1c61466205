"""Which patterns could possibly match a segment, decided from their first letters.

Python's regular expressions try every pattern at every word of the text:
with several hundred patterns that is too slow for a long message. Each
pattern's possible first letters (up to three, or a whole short word) are
read once from its parsed form; a segment then runs only the patterns whose
keys occur among its own words' keys. A pattern whose start cannot be told
(it begins with ``\\w`` or an emoji) runs on every segment. The filter may let
through a pattern that then fails; it never holds back one that would match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

try:  # Python 3.11+
    import re._constants as _c
    import re._parser as _parser
except ImportError:  # pragma: no cover - older layouts
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]

KEY_LEN = 3
WORD_END = "$"
AT_START = "^"
"""The key of a match that begins at the segment's start (`start_keys`): every segment offers it, at 0."""
_MAX_CLASS = 40
_MAX_KEYS = 400
_TOKEN = re.compile(r"\w+")

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT}
if hasattr(_c, "POSSESSIVE_REPEAT"):
    _REPEATS.add(_c.POSSESSIVE_REPEAT)
_ZERO_WIDTH = {_c.AT, _c.ASSERT, _c.ASSERT_NOT}


class _Unknown(Exception):
    """The pattern's start cannot be reduced to a few keys."""


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _class_chars(items: list) -> list[str]:
    chars: list[str] = []
    for op, av in items:
        if op is _c.LITERAL:
            chars.append(chr(av))
        elif op is _c.RANGE:
            lo, hi = av
            if hi - lo > _MAX_CLASS:
                raise _Unknown
            chars.extend(chr(c) for c in range(lo, hi + 1))
        else:  # NEGATE, CATEGORY (\w, \s …)
            raise _Unknown
    if len(chars) > _MAX_CLASS:
        raise _Unknown
    return chars


def _keys(items: list, prefix: str, out: set[str], starts: frozenset) -> None:
    if len(out) > _MAX_KEYS:
        raise _Unknown
    if len(prefix) >= KEY_LEN:
        out.add(prefix[:KEY_LEN])
        return
    if not items:  # the pattern may end inside a longer word: a starts-with key
        if not prefix:
            raise _Unknown
        out.add(prefix)
        return
    op, av = items[0]
    rest = items[1:]
    if op is _c.AT and av in starts and not prefix:  # "^": the match can start only where the segment does
        out.add(AT_START)
    elif op in _ZERO_WIDTH:
        _keys(rest, prefix, out, starts)
    elif op is _c.LITERAL:
        ch = chr(av)
        if _is_word(ch):
            _keys(rest, prefix + ch, out, starts)
        elif prefix:
            out.add(prefix + WORD_END)
        else:
            raise _Unknown
    elif op is _c.IN:
        try:
            chars = _class_chars(list(av))
        except _Unknown:
            if not prefix:
                raise
            out.add(prefix)
            return
        for ch in chars:
            _keys([(_c.LITERAL, ord(ch)), *rest], prefix, out, starts)
    elif op is _c.SUBPATTERN:
        _keys([*av[-1], *rest], prefix, out, starts)
    elif hasattr(_c, "ATOMIC_GROUP") and op is _c.ATOMIC_GROUP:
        _keys([*av, *rest], prefix, out, starts)
    elif op is _c.BRANCH:
        for alternative in av[1]:
            _keys([*alternative, *rest], prefix, out, starts)
    elif op in _REPEATS:
        low, high, item = av
        if low == 0:
            _keys(rest, prefix, out, starts)
        if high != 0:
            more = high - 1 if high != _c.MAXREPEAT else high
            tail = [(op, (max(low - 1, 0), more, item))] if more != 0 else []
            _keys([*item, *tail, *rest], prefix, out, starts)
    elif prefix:  # \w, ., a back-reference …: the letters so far must still start a word
        out.add(prefix)
    else:
        raise _Unknown


def parse(pattern: str):
    """The parsed form of a pattern, to hand to `start_keys` and `required_literals` (parse once)."""
    return _parser.parse(pattern)


def start_keys(pattern) -> frozenset[str] | None:
    """The keys one of which every match starts with; None when the start is open.

    A key is the first three letters of a word (``kil``), a shorter word in
    full with ``$`` (``i$``, ``me$``), one or two letters that a longer word
    begins with (``ki`` before ``\\w+``), or ``^`` for a match that can only
    start where the segment does.
    """
    tree = _parser.parse(pattern) if isinstance(pattern, str) else pattern
    lines = bool(getattr(getattr(tree, "state", None), "flags", 0) & re.MULTILINE)  # "^" starts each line
    starts = frozenset({_c.AT_BEGINNING_STRING} if lines else {_c.AT_BEGINNING, _c.AT_BEGINNING_STRING})
    try:
        out: set[str] = set()
        _keys(list(tree), "", out, starts)
    except (_Unknown, RecursionError):
        return None
    return frozenset(out)


def word_keys(token: str) -> tuple[str, ...]:
    """The keys one word offers: its first one, two and three letters, and itself with ``$`` when shorter."""
    if len(token) < KEY_LEN:
        return token[:1], token[:2], token + WORD_END
    return token[:1], token[:2], token[:KEY_LEN]


def text_keys(tokens: Iterable[str]) -> set[str]:
    """Every key the words of a segment offer, to meet `start_keys` half-way."""
    keys: set[str] = {AT_START}
    for token in tokens:
        keys.update(word_keys(token))
    return keys


def key_positions(segment: str) -> tuple[list[str], dict[str, list[int]]]:
    """The segment's words, and where each key they offer starts (ascending offsets).

    A pattern with start keys can begin a match only at a word that offers one of them, so it
    need be tried only there (`anchored_matches`), not at each of the segment's characters.
    """
    words: list[str] = []
    at: dict[str, list[int]] = {AT_START: [0]}
    for found in _TOKEN.finditer(segment):
        token = found.group()
        words.append(token)
        start = found.start()
        for key in _distinct_keys(token):
            if key in at:
                at[key].append(start)
            else:
                at[key] = [start]
    return words, at


@lru_cache(maxsize=65536)
def _distinct_keys(token: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(word_keys(token)))


def anchored_matches(regex: re.Pattern[str], segment: str, positions: Iterable[int]) -> Iterator[re.Match[str]]:
    """What ``regex.finditer(segment)`` yields when no match can start outside ``positions``.

    Tried at each position in order, skipping those inside the last match, as `finditer` resumes
    after a match; a lookbehind still sees the text before the position. A match of a pattern with
    start keys is never empty, so each one moves on.
    """
    end = 0
    for position in positions:
        if position < end:
            continue
        match = regex.match(segment, position)
        if match is not None:
            yield match
            end = match.end()


def tokens(segment: str) -> list[str]:
    return _TOKEN.findall(segment)


# --- necessary literals ----------------------------------------------------------
#
# A second, finer filter: strings at least one of which every match contains
# (the idea behind RE2's prefilter). "i want to die" starts with the common key
# "i$" but cannot match a segment without "want to die"; a substring test is far
# cheaper than running the regex.

_MAX_EXACT = 64
_ZERO = {""}


def _product(a: set[str], b: set[str]) -> set[str] | None:
    if len(a) * len(b) > _MAX_EXACT:
        return None
    return {x + y for x in a for y in b}


def _exact(items) -> set[str] | None:
    """Every string ``items`` can match, when that is a small finite set; else None."""
    out: set[str] | None = {""}
    for op, av in items:
        part = _exact_one(op, av)
        if part is None or out is None:
            return None
        out = _product(out, part)
    return out


def _exact_one(op, av) -> set[str] | None:
    if op is _c.LITERAL:
        return {chr(av)}
    if op in _ZERO_WIDTH:
        return set(_ZERO)
    if op is _c.IN:
        try:
            return set(_class_chars(list(av)))
        except _Unknown:
            return None
    if op is _c.SUBPATTERN:
        return _exact(av[-1])
    if op is _c.BRANCH:
        out: set[str] = set()
        for alternative in av[1]:
            part = _exact(alternative)
            if part is None:
                return None
            out |= part
        return out if len(out) <= _MAX_EXACT else None
    if op in _REPEATS:
        low, high, item = av
        one = _exact(item)
        if one is None or high > 3 or high == _c.MAXREPEAT:
            return None
        out = {""} if low == 0 else set()
        current = {""}
        for count in range(1, high + 1):
            current = _product(current, one)
            if current is None:
                return None
            if count >= low:
                out |= current
        return out if len(out) <= _MAX_EXACT else None
    return None


def _best(candidates: list[set[str]]) -> set[str] | None:
    """The cheapest set to test that still says something: few strings, none very short."""
    useful = [c for c in candidates if c and "" not in c]
    good = [c for c in useful if min(map(len, c)) >= 4]
    if good:
        return min(good, key=lambda c: (len(c), -min(map(len, c))))
    return max(useful, key=lambda c: (min(map(len, c)), -len(c)), default=None)


def _required(items) -> set[str] | None:
    """Strings one of which every match of ``items`` contains; None when nothing is certain."""
    candidates: list[set[str]] = []
    run: set[str] | None = {""}
    for op, av in items:
        part = _exact_one(op, av)
        if part is not None and run is not None:
            joined = _product(run, part)
            if joined is not None:
                run = joined
                continue
        if run is not None and run != {""}:
            candidates.append(run)
        run = part if part is not None else {""}
        if part is None:
            inner = _required_one(op, av)
            if inner is not None:
                candidates.append(inner)
    if run is not None and run != {""}:
        candidates.append(run)
    return _best(candidates)


def _required_one(op, av) -> set[str] | None:
    if op is _c.SUBPATTERN:
        return _required(av[-1])
    if hasattr(_c, "ATOMIC_GROUP") and op is _c.ATOMIC_GROUP:
        return _required(av)
    if op is _c.BRANCH:
        out: set[str] = set()
        for alternative in av[1]:
            part = _exact(alternative)
            part = part if part is not None and "" not in part else _required(alternative)
            if not part:
                return None
            out |= part
        return out if len(out) <= _MAX_EXACT * 4 else None
    if op in _REPEATS and av[0] >= 1:
        return _required(av[2])
    return None


def required_literals(pattern, min_len: int = 3) -> frozenset[str] | None:
    """Literals one of which every match of ``pattern`` contains (each ``min_len`` or longer), or None."""
    try:
        found = _required(list(_parser.parse(pattern) if isinstance(pattern, str) else pattern))
    except RecursionError:
        return None
    if not found or min(map(len, found)) < min_len:
        return None
    return frozenset(found)
