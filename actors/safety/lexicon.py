"""The pack's words for danger: patterns, slang and negation cues per category and language.

A lexicon file per language (`lexicon/en.yaml` …) holds regular expressions
per category, slang and euphemisms as whole words, emoji, a negation cue
list, the stopwords that tell the language apart and the key words worth
correcting when misspelt. This module reads and compiles them; it matches
nothing by itself that the pack did not write down.

Patterns are written in lower case and read the normalised, accent-folded
message (`normalise`), so one spelling covers "Suicídio", "suicidio" and
"SUICIDIO". Each is anchored at the start of a word. Figures of speech are
kept out by the patterns' shape ("kill myself", not "kill"); a negation cue
within a few words before a match, in the same clause, cancels it unless
the pattern says ``negatable: false`` (phrasings that are themselves
negations, such as "I don't want to be here anymore"); frames and a distant
past apply to those too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from actors.pack.problems import Problem
from state.errors import CoachError

from .normalise import Aliases, fold_pattern, normalise
from .prefilter import anchored_matches, key_positions, parse, required_literals, start_keys
from .taxonomy import LexiconFile, PatternEntry

_ESCAPE = re.compile(r"\\.")
_VOCAB_WORD = re.compile(r"[^\W\d_]{2,}")
_NON_SPACE = re.compile(r"\S+")
_CLAUSE_PUNCT = r"[,:;.!?()\"]|\s-\s"
_DEFINED = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
_CONDITION_REACH = 5
"""How many words before a negation cue a condition's opener may stand ("si elle ne me rappelle pas")."""


@cache
def _regex(source: str) -> re.Pattern[str]:
    return re.compile(source)


@dataclass(frozen=True)
class Entry:
    """One pattern (or a category's slang as one alternation), compiled when first needed.

    Why lazily: the lexicons hold well over a thousand patterns and compiling them all took
    seconds at every start, while a message only ever reaches the few the prefilter lets
    through. Loading still parses each pattern once (for the prefilter, and to report a bad
    one with its file and field); `coach config check` compiles them all.
    """

    language: str
    category: str
    source: str
    negatable: bool
    where: str
    tree: Any = field(default=None, compare=False, repr=False)
    """The parsed pattern (see `prefilter.parse`), kept from loading for the prefilter."""
    mention: bool = False
    """The pattern names the topic (`Pattern.mention`)."""

    @property
    def regex(self) -> re.Pattern[str]:
        try:
            return _regex(self.source)
        except re.error as err:
            raise CoachError(f"{self.where}: bad regular expression: {err}") from None


@dataclass(frozen=True)
class Hit:
    category: str
    language: str
    evidence: str
    where: str
    cause: Cause | None = None
    """Why a negated match was cancelled (None for a match that stands; see `Cause`)."""
    mention: bool = False
    """The match only names the topic (`Pattern.mention`)."""


Cause = Literal["denied", "framed", "deferred"]
"""Why a match is cancelled, strongest first: a negation cue ("I would never kill myself");
a frame or a recovery ("in the film he kills himself"), which a near-certain classifier may
still overrule; or only a distant past, a joke marker or a question that proposes it ("years
ago I tried to kill myself", "kill myself lol", "why don't I just kill myself"), which leaves
the message to the classifier (see `SafetyNet`)."""
_STRENGTH: tuple[Cause, ...] = ("denied", "framed", "deferred")


@dataclass(frozen=True)
class NegationRule:
    cues: re.Pattern[str] | None
    breaks: re.Pattern[str]
    scope: int

    frames: re.Pattern[str] | None = None
    frame_scope: int = 6
    jokes: re.Pattern[str] | None = None
    recovery: re.Pattern[str] | None = None
    conditionals: re.Pattern[str] | None = None
    past: re.Pattern[str] | None = None
    questions: re.Pattern[str] | None = None
    """Ends just before a cue that asks rather than denies ("why don't", "por que no")."""

    def _in_condition(self, clause: str, cue_start: int) -> bool:
        """Whether a condition opens among the few words before a cue ("si no me contesta",
        "si elle ne me rappelle pas", "wenn sie mich heute nicht anruft"): the cue then negates
        the condition, and the consequence after it stands."""
        if self.conditionals is None:
            return False
        before = clause[:cue_start].split()[-_CONDITION_REACH:]
        return any(self.conditionals.fullmatch(word) for word in before)

    def _clause_before(self, segment: str, start: int) -> str:
        before = segment[max(0, start - 300) : start]
        ends = [m.end() for m in self.breaks.finditer(before)]
        return before[ends[-1] :] if ends else before

    def cause(
        self,
        segment: str,
        start: int,
        end: int,
        regex: re.Pattern[str] | None = None,
        *,
        jokes: bool = True,
        cues: bool = True,
    ) -> Cause | None:
        """Why the match is cancelled, strongest cause first. "denied": unless ``cues`` is False
        (a phrase that spells its own negation), a cue among the ``scope`` words before the
        match in its clause, or inside the match where the pattern does not spell it itself.
        "framed": a framing cue (fiction, a question asked of the person) shortly before or
        after it in its clause, or a recovery after it. "deferred": a distant past anywhere in
        its segment ("my ex used to hit me, that was six years ago"), or, unless ``jokes`` is
        False, a joke marker anywhere in the segment.

        Whether an inside cue is the pattern's own word ("wish I was *never* born") or a
        negation a wildcard let in ("I'm *not* suicidal") is decided by swapping the cue for
        a neutral word: if the pattern still matches, the cue was not part of its phrase. Only
        a cue within the first ``scope`` words of the match counts: that is where a wildcard
        lets a negation in before the crisis phrase, while one further in belongs to a later
        clause the pattern spans ("on the ledge rn and my legs won't stop shaking").
        """
        clause = self._clause_before(segment, start)
        cue = self._cue(segment, start, end, clause, regex) if cues else None
        if cue == "denied":
            return "denied"
        if self._frame_cancels(segment, end, clause):
            return "framed"
        if cue == "asked" or (self.past is not None and self.past.search(segment)):
            return "deferred"
        if jokes and self.jokes is not None and self.jokes.search(segment):
            return "deferred"
        return None

    def _asks(self, before_cue: str) -> bool:
        """Whether the words just before a cue put a question that proposes what follows ("why
        don't I just", "por que no", "warum bringe ich mich nicht"): the cue then denies nothing."""
        return self.questions is not None and self.questions.search(before_cue) is not None

    def _cue(
        self, segment: str, start: int, end: int, clause: str, regex: re.Pattern[str] | None
    ) -> Literal["denied", "asked"] | None:
        """ "denied" when a cue negates the match; "asked" when the only cues do so inside a
        question that proposes it; else None."""
        if self.cues is None:
            return None
        asked = False
        # The cue must start within the last ``scope`` words, but is searched in the whole
        # clause so its own lookbehinds see the words before it ("arrete pas" is no negation).
        starts = [m.start() for m in _NON_SPACE.finditer(clause)]
        if starts:
            for cue in self.cues.finditer(clause, starts[-min(self.scope, len(starts))]):
                if self._in_condition(clause, cue.start()):
                    continue
                if not self._asks(clause[: cue.start()]):
                    return "denied"
                asked = True
        inside = segment[start:end]
        for cue in self.cues.finditer(inside):
            if len(inside[: cue.start()].split()) > self.scope:
                break  # a cue deep inside a long match belongs to a later clause of the pattern
            if self._in_condition(clause + inside, len(clause) + cue.start()):
                continue
            if regex is not None:
                probe = segment[:start] + inside[: cue.start()] + "qqqq" + inside[cue.end() :] + segment[end:]
                if not regex.match(probe, start):
                    continue  # the cue is the pattern's own word
            if not self._asks(clause + inside[: cue.start()]):
                return "denied"
            asked = True
        return "asked" if asked else None

    def _frame_cancels(self, segment: str, end: int, clause: str) -> bool:
        if self.frames is not None:
            before = " ".join(clause.split()[-self.frame_scope :])
            after = " ".join(self._clause_after(segment, end).split()[: self.frame_scope])
            if self.frames.search(before) or self.frames.search(after):
                return True
        return self.recovery is not None and self.recovery.search(segment, end) is not None

    def framed(self, segment: str) -> bool:
        """A framing cue or a recovery anywhere in the segment: the message is about fiction,
        history, a game or a recovery (see `SafetyNet`). A joke marker or a distant past is no frame
        here: a laugh sits as often beside a crisis that is meant ("thinking about killing
        myself daily haha") as beside hyperbole, and the classifier has learnt both."""
        return any(p is not None and p.search(segment) is not None for p in (self.frames, self.recovery))

    def _clause_after(self, segment: str, end: int) -> str:
        after = segment[end : end + 300]
        cut = self.breaks.search(after)
        return after[: cut.start()] if cut is not None else after


def _cause(
    negation: dict[str, NegationRule],
    language: str,
    segment: str,
    match: re.Match[str],
    message_language: str | None = None,
    *,
    jokes: bool = True,
    cues: bool = True,
) -> Cause | None:
    """The strongest cause that cancels the match among the cues, frames, recovery, distant past
    and joke markers of the pattern's own language and of the message's (a Portuguese pattern can
    match a French word). No other language is consulted: one language's cue is another's
    ordinary word (Portuguese "no" is "in the", Spanish "prima" a cousin, "lol" means nothing in
    German)."""
    found: list[Cause] = []
    for lang in dict.fromkeys((language, message_language)):
        rule = negation.get(lang) if lang else None
        if rule is not None:
            cause = rule.cause(segment, match.start(), match.end(), match.re, jokes=jokes, cues=cues)
            if cause is not None:
                found.append(cause)
    return min(found, key=_STRENGTH.index) if found else None


_WORDS = re.compile(r"\w+")


def _required_words(literals: frozenset[str]) -> tuple[frozenset[str], frozenset[str], frozenset[str]] | None:
    """Per literal, one word any segment holding it must show: as a whole token (an inner word of
    the literal), as the start of a token (a word the literal begins at a word boundary but may
    cut short), or at least inside a token (a word at the literal's start, which may be the tail
    of a longer token). Returns (whole words, word starts, word parts); None when a literal holds
    no word at all."""
    whole: set[str] = set()
    starts: set[str] = set()
    parts: set[str] = set()
    for literal in literals:
        best: tuple[int, str, set[str]] | None = None
        for m in _WORDS.finditer(literal):
            a, b = m.start(), m.end()
            word = m.group(0)
            if a > 0 and b < len(literal):
                option = (len(word) * 3 + 2, word, whole)
            elif a > 0:
                option = (len(word) * 3 + 1, word, starts)
            else:
                option = (len(word) * 2, word, parts)
            if best is None or option[0] > best[0]:
                best = option
        if best is None:
            return None
        best[2].add(best[1])
    return frozenset(whole), frozenset(starts), frozenset(parts)


_TOKEN_CACHE = 100_000


class PatternSet:
    """Entries indexed by the keys their matches start with (see `prefilter`) and by the words
    their matches must contain, so a segment runs only the few regexes it could satisfy."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = tuple(entries)
        self._by_key: dict[str, list[int]] = {}
        self._always: list[int] = []
        self._by_whole: dict[str, set[int]] = {}
        self._by_start: dict[str, set[int]] = {}
        self._by_part: dict[str, set[int]] = {}
        self._untestable: set[int] = set()
        """Entries with no required word (no literal, or a literal without a word character)."""
        self._start_keys: list[frozenset[str] | None] = []
        """Per entry, the keys its matches start with (None: it may start anywhere)."""
        self._by_token: dict[str, frozenset[int]] = {}
        """Per token seen, the entries whose required words it shows (tokens repeat across messages)."""
        for i, entry in enumerate(self.entries):
            tree = entry.tree if entry.tree is not None else parse(entry.source.removeprefix(r"(?<!\w)"))
            literals = required_literals(tree)
            words = _required_words(literals) if literals else None
            if words is None:
                self._untestable.add(i)
            else:
                for index, required in zip((self._by_whole, self._by_start, self._by_part), words, strict=True):
                    for word in required:
                        index.setdefault(word, set()).add(i)
            keys = start_keys(tree)
            self._start_keys.append(keys)
            if keys is None:
                self._always.append(i)
            else:
                for key in keys:
                    self._by_key.setdefault(key, []).append(i)
        # The parsed trees were for this index only. Kept, they were half a million small objects
        # (tuples, lists, parser nodes) that every full garbage collection walked: 0.5–0.9 s
        # pauses of the app's event loop, now and then, while a chat reply streamed.
        self.entries = tuple(replace(e, tree=None) if e.tree is not None else e for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def compile_all(self) -> None:
        """Compile every entry's regex now (see `SafetyNet.warm`); each is compiled once per process."""
        for entry in self.entries:
            entry.regex  # noqa: B018 - compiled and cached by `_regex`

    def candidates(self, segment_tokens: Sequence[str], keys: Iterable[str]) -> list[int]:
        """Entries, in order, whose start key (among ``keys``, those the tokens offer: see
        `key_positions`) and required words the segment's tokens show."""
        keyed = set(self._always)
        for key in keys:
            keyed.update(self._by_key.get(key, ()))
        shown = set(self._untestable)
        for token in set(segment_tokens):
            shown.update(self._shown_by(token))
        return sorted(keyed & shown)

    def _shown_by(self, token: str) -> frozenset[int]:
        """Entries one of whose required words this token shows: as itself, as its start, or inside it."""
        found = self._by_token.get(token)
        if found is None:
            entries: set[int] = set()
            entries.update(self._by_whole.get(token, ()))
            for k in range(1, len(token) + 1):
                entries.update(self._by_start.get(token[:k], ()))
                for a in range(k):
                    entries.update(self._by_part.get(token[a:k], ()))
            found = frozenset(entries)
            if len(self._by_token) >= _TOKEN_CACHE:
                self._by_token.clear()
            self._by_token[token] = found
        return found

    def _matches(
        self, i: int, segment: str, at: dict[str, list[int]], offered: frozenset[str]
    ) -> Iterable[re.Match[str]]:
        """Entry ``i``'s matches in ``segment``, tried only at the words its start keys allow: a
        long update's segment runs some 70 patterns, and a regex scanned over every one of its 400
        characters cost ten times one tried at the one or two words where it could start."""
        keys = self._start_keys[i]
        regex = self.entries[i].regex
        if keys is None:
            return regex.finditer(segment)
        shown = keys & offered
        if len(shown) == 1:
            (key,) = shown
            return anchored_matches(regex, segment, at[key])
        return anchored_matches(regex, segment, sorted({p for key in shown for p in at[key]}))

    def hits(
        self,
        segments: Sequence[str],
        negation: dict[str, NegationRule],
        *,
        skip: Iterable[str] = (),
        language: str | None = None,
        negated: list[Hit] | None = None,
        earnest: Collection[str] = (),
    ) -> list[Hit]:
        """The first un-negated match per category, over ``segments`` in order; matches that a
        negation cancelled are appended to ``negated`` when a list is given, with their `Cause`.
        A joke marker does not cancel a match of an ``earnest`` category (see
        `CategoryDef.jokes_cancel`). A match that only names the topic (`Pattern.mention`)
        stands for its category only where no other pattern of it matches."""
        done = set(skip)
        out: list[Hit] = []
        mentions: dict[str, Hit] = {}
        for segment in segments:
            words, at = key_positions(segment)
            offered = frozenset(at)
            for i in self.candidates(words, offered):
                entry = self.entries[i]
                if entry.category in done:
                    continue
                for match in self._matches(i, segment, at, offered):
                    # a phrase that spells its own "never" has no cue to find, but is framed all the same
                    cause = _cause(
                        negation,
                        entry.language,
                        segment,
                        match,
                        language,
                        jokes=entry.category not in earnest,
                        cues=entry.negatable,
                    )
                    if cause is not None:
                        if negated is not None:
                            negated.append(Hit(entry.category, entry.language, match.group(0), entry.where, cause))
                        continue
                    if entry.mention:
                        mentions.setdefault(
                            entry.category,
                            Hit(entry.category, entry.language, match.group(0), entry.where, mention=True),
                        )
                        break
                    done.add(entry.category)
                    out.append(Hit(entry.category, entry.language, match.group(0), entry.where))
                    break
        return out + [hit for category, hit in mentions.items() if category not in done]


@dataclass
class Lexicon:
    """Every language's compiled lexicon, merged."""

    languages: list[str]
    patterns: PatternSet
    distress: PatternSet
    followup: PatternSet
    negation: dict[str, NegationRule]
    stopwords: dict[str, frozenset[str]]
    key_terms: dict[str, list[str]]
    vocabulary: frozenset[str] = field(default_factory=frozenset)
    aliases: Aliases = field(default_factory=Aliases)

    def guess_language(self, words: Iterable[str]) -> str | None:
        """The language whose stopwords weigh most; None when none occurs (ties: pack order).

        A stopword shared by several languages ("la", "de") counts for each of them by
        one over the number of languages sharing it, so the distinctive ones decide."""
        if not hasattr(self, "_stop_weights"):
            owners: dict[str, list[str]] = {}
            for language in self.languages:
                for word in self.stopwords[language]:
                    owners.setdefault(word, []).append(language)
            self._stop_weights = {w: (langs, 1.0 / len(langs)) for w, langs in owners.items()}
        counts = dict.fromkeys(self.languages, 0.0)
        for word in words:
            found = self._stop_weights.get(word)
            if found is not None:
                for language in found[0]:
                    counts[language] += found[1]
        best = max(self.languages, key=lambda lang: counts[lang], default=None)
        return best if best is not None and counts[best] > 0 else None


# --- reading -----------------------------------------------------------------


def _entry_source(entry: PatternEntry) -> tuple[str, bool | None]:
    return (entry, None) if isinstance(entry, str) else (entry.re, entry.negatable)


def _is_mention(entry: PatternEntry) -> bool:
    return not isinstance(entry, str) and entry.mention


def _norm_word(text: str) -> str:
    return normalise(text).folded


def expand(source: str, defines: dict[str, str]) -> str:
    """``{NAME}`` replaced by its definition; an unknown name raises KeyError."""
    return _DEFINED.sub(lambda m: defines[m.group(1)], source)


def expanded_defines(lex: LexiconFile, file: str, problems: list[Problem]) -> dict[str, str]:
    """Definitions in file order, each expanded with the ones above it."""
    out: dict[str, str] = {}
    for name, source in lex.define.items():
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            problems.append(Problem(file, f"define.{name}", "names are upper case (used as {NAME})"))
            continue
        try:
            out[name] = "(?:" + expand(source, out) + ")"
        except KeyError as err:
            problems.append(Problem(file, f"define.{name}", f"uses {{{err.args[0]}}} before it is defined"))
    return out


def _group(source: str, file: str, where: str, problems: list[Problem], defines: dict[str, str] | None) -> str | None:
    """The pattern with its names expanded, accent-folded, as one group; None (and a problem) if a name is unknown."""
    try:
        return "(?:" + fold_pattern(expand(source, defines or {})) + ")"
    except KeyError as err:
        problems.append(Problem(file, where, f"unknown name {{{err.args[0]}}} (not under define)"))
        return None


def _compile(
    source: str, file: str, where: str, problems: list[Problem], defines: dict[str, str] | None = None
) -> re.Pattern[str] | None:
    group = _group(source, file, where, problems, defines)
    if group is None:
        return None
    try:
        return _regex(r"(?<!\w)" + group)
    except re.error as err:
        problems.append(Problem(file, where, f"bad regular expression: {err}"))
        return None


def _entry(
    source: str,
    file: str,
    where: str,
    problems: list[Problem],
    defines: dict[str, str] | None = None,
    *,
    lang: str,
    category: str,
    negatable: bool,
    compile_now: bool = False,
    mention: bool = False,
) -> Entry | None:
    """The entry for one pattern, parsed (a bad one becomes a problem naming file and field)."""
    group = _group(source, file, where, problems, defines)
    if group is None:
        return None
    try:
        tree = parse(group)
    except re.error as err:
        problems.append(Problem(file, where, f"bad regular expression: {err}"))
        return None
    if compile_now and _compile(source, file, where, problems, defines) is None:
        return None
    return Entry(lang, category, r"(?<!\w)" + group, negatable, f"{file}: {where}", tree, mention)


def compile_file(
    lex: LexiconFile, file: str, problems: list[Problem], *, compile_now: bool = False
) -> dict[str, list[Entry]]:
    """The file's entries by kind ("patterns", "distress", "followup"); bad ones become problems.

    `compile_now` compiles every pattern at once (`coach config check`), not when first used.
    """
    lang = lex.language
    defines = expanded_defines(lex, file, problems)
    out: dict[str, list[Entry]] = {"patterns": [], "distress": [], "followup": []}

    def add(
        kind: str, source: str, where: str, category: str, negatable: bool, defined: bool = True, mention: bool = False
    ) -> None:
        entry = _entry(
            source,
            file,
            where,
            problems,
            defines if defined else None,
            lang=lang,
            category=category,
            negatable=negatable,
            compile_now=compile_now,
            mention=mention,
        )
        if entry is not None:
            out[kind].append(entry)

    for category, cat_lex in lex.categories.items():
        for i, item in enumerate(cat_lex.patterns):
            source, negatable = _entry_source(item)
            where = f"categories.{category}.patterns[{i}]"
            add("patterns", source, where, category, negatable is not False, mention=_is_mention(item))
        terms = sorted({_norm_word(t) for t in cat_lex.terms if _norm_word(t)}, key=lambda t: (-len(t), t))
        if terms:
            source = "|".join(re.escape(t) for t in terms) + r")(?!\w"
            add("patterns", source, f"categories.{category}.terms", category, True, defined=False)
        emoji = sorted({_norm_word(e) for e in cat_lex.emoji if _norm_word(e)}, key=lambda t: (-len(t), t))
        if emoji:
            source = "|".join(re.escape(e) for e in emoji)
            out["patterns"].append(Entry(lang, category, source, False, f"{file}: categories.{category}.emoji"))
    for i, item in enumerate(lex.context.distress):
        source, negatable = _entry_source(item)
        add("distress", source, f"context.distress[{i}]", "distress", negatable is not False)
    for category, items in lex.context.followup.items():
        for i, item in enumerate(items):
            source, negatable = _entry_source(item)
            add("followup", source, f"context.followup.{category}[{i}]", category, negatable is not False)
    return out


def _alternatives(
    sources: list[str], file: str, where: str, problems: list[Problem], end: str = r"(?!\w)"
) -> re.Pattern[str] | None:
    """Regular expressions of one negation list as a single accent-folded alternation followed by
    ``end`` (a word boundary; for `negation.questions`, the end of the text before a cue); None
    when the list is empty (or does not compile: a problem says so)."""
    if not sources:
        return None
    return _compile("(?:" + "|".join(f"(?:{fold_pattern(c)})" for c in sources) + ")" + end, file, where, problems)


def _words(words: list[str]) -> str:
    return "|".join(re.escape(_norm_word(w)) for w in words if _norm_word(w))


def negation_rule(lex: LexiconFile, file: str, problems: list[Problem]) -> NegationRule:
    neg = lex.negation
    breaks = _words(neg.breaks)
    conditionals = _words(neg.conditionals)
    return NegationRule(
        _alternatives(neg.cues, file, "negation.cues", problems),
        re.compile(_CLAUSE_PUNCT + (rf"|(?<!\w)(?:{breaks})(?!\w)" if breaks else "")),
        neg.scope,
        _alternatives(neg.frames, file, "negation.frames", problems),
        neg.frame_scope,
        _alternatives(neg.jokes, file, "negation.jokes", problems),
        _alternatives(neg.recovery, file, "negation.recovery", problems),
        re.compile(conditionals) if conditionals else None,
        _alternatives(neg.past, file, "negation.past", problems),
        _alternatives(neg.questions, file, "negation.questions", problems, end=r"\s*$"),
    )


def vocabulary_of(lex: LexiconFile) -> set[str]:
    """Words the lexicon spells out: the ones a stretched or misspelt word may be read as."""
    words: set[str] = set()

    def add(text: str) -> None:
        words.update(_VOCAB_WORD.findall(fold_pattern(_ESCAPE.sub(" ", _DEFINED.sub(" ", text).lower()))))

    for source in lex.define.values():
        add(source)
    for cat_lex in lex.categories.values():
        for item in cat_lex.patterns:
            add(_entry_source(item)[0])
        for term in cat_lex.terms:
            add(term)
    for item in lex.context.distress:
        add(_entry_source(item)[0])
    for items in lex.context.followup.values():
        for item in items:
            add(_entry_source(item)[0])
    for word in [*lex.stopwords, *lex.key_terms, *lex.negation.cues, *lex.negation.breaks]:
        add(word)
    return words


def read_lexicon_file(path: Path, shown: str, problems: list[Problem]) -> LexiconFile | None:
    from actors.pack.yaml_io import YamlProblem, load_yaml

    if not path.is_file():
        problems.append(Problem(shown, "", "lexicon file is missing"))
        return None
    try:
        data = load_yaml(path)
    except YamlProblem as err:
        problems.append(Problem(shown, f"line {err.line}" if err.line else "", err.message))
        return None
    try:
        return LexiconFile.model_validate(data or {})
    except ValidationError as err:
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
            message = "unknown field (check its spelling)" if e["type"] == "extra_forbidden" else e["msg"]
            problems.append(Problem(shown, loc, message))
        return None


def build_lexicon(
    files: dict[str, tuple[LexiconFile, str]],
    languages: list[str],
    problems: list[Problem],
    *,
    compile_now: bool = False,
) -> Lexicon:
    """Merge per-language files (language → (file, shown name)) into one lexicon (see `Entry`)."""
    kinds: dict[str, list[Entry]] = {"patterns": [], "distress": [], "followup": []}
    negation: dict[str, NegationRule] = {}
    stopwords: dict[str, frozenset[str]] = {}
    key_terms: dict[str, list[str]] = {}
    vocabulary: set[str] = set()
    aliases: dict[str, str] = {}
    for language in languages:
        if language not in files:
            continue
        lex, shown = files[language]
        negation[language] = negation_rule(lex, shown, problems)
        for kind, entries in compile_file(lex, shown, problems, compile_now=compile_now).items():
            kinds[kind].extend(entries)
        stopwords[language] = frozenset(_norm_word(w) for w in lex.stopwords)
        key_terms[language] = [_norm_word(t) for t in lex.key_terms if _norm_word(t)]
        vocabulary |= vocabulary_of(lex)
        for short, word in lex.aliases.items():
            aliases[fold_pattern(short.lower())] = fold_pattern(word.lower())
    present = [lang for lang in languages if lang in files]
    for lang in present:
        stopwords.setdefault(lang, frozenset())
    return Lexicon(
        present,
        PatternSet(kinds["patterns"]),
        PatternSet(kinds["distress"]),
        PatternSet(kinds["followup"]),
        negation,
        stopwords,
        key_terms,
        frozenset(vocabulary),
        Aliases(aliases),
    )
