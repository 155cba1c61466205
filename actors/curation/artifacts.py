"""Generation artifacts in assistant replies: pure detection, one exchange at a time.

The spec's first filter ("Artifact Detection") looks for structural damage a
generator leaves behind — a coach who says it is an AI, notes about "the
roleplay", replies cut off mid-sentence, replies too thin for the message they
answer, a reply in another language, and stock sentences pasted into every
turn. Those must never be supervised: SFT trains on every assistant turn.

Each `Finding` names its kind and the offending span (`start`/`end` index into
the reply, `text` is that slice) so a fixup prompt can point at it and a person
can see it. Only the assistant's text is examined; the user message is read
only as context (its length, and which names or topics the user raised — a
user who talks about ChatGPT may get a reply that mentions ChatGPT).

The checks are regular expressions and counts, chosen to be conservative:
each one has negative tests for ordinary coaching text (italics for emphasis,
a reply ending with an emoji or a closing quote, "the simulation" when the
user works on simulations, "AI" inside a word). Thresholds live in
`ArtifactSettings`. No I/O, no model: the semantic judgement belongs to the
rubric judge, not here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal[
    "empty",
    "character_break",
    "meta_commentary",
    "truncated",
    "too_short",
    "non_english",
    "repeated_boilerplate",
]
KINDS: tuple[Kind, ...] = (
    "empty",
    "character_break",
    "meta_commentary",
    "truncated",
    "too_short",
    "non_english",
    "repeated_boilerplate",
)
# The kinds that make an exchange unusable as it stands (the spec's structural
# artifacts). A repeated stock sentence is a style problem for the fixup to
# rewrite; truncating a good conversation over it would waste data.
STRUCTURAL_KINDS: frozenset[Kind] = frozenset(KINDS) - {"repeated_boilerplate"}

# Model and vendor names a coach has no reason to say unless the user did. Callers
# add the generator's own model name (e.g. "SmolLM2", "gemma-3-12b-it").
DEFAULT_NAMES: tuple[str, ...] = (
    "Claude",
    "Anthropic",
    "OpenAI",
    "ChatGPT",
    "GPT-3",
    "GPT-3.5",
    "GPT-4",
    "GPT-4o",
    "Gemini",
    "Gemma",
    "SmolLM",
    "SmolLM2",
)


@dataclass(frozen=True)
class Finding:
    """One artifact: `text == reply[start:end]`; `detail` says why, for a person or a fixup prompt."""

    kind: Kind
    start: int
    end: int
    text: str
    detail: str


@dataclass(frozen=True)
class ArtifactSettings:
    """Thresholds. Defaults are calibrated on published coaching transcripts (no finding on any of them)."""

    # too_short: any reply under `min_words`; a reply to a multi-topic message
    # (>= multi_topic_user_words) under max(multi_topic_min_words, ratio * user words).
    min_words: int = 5
    multi_topic_user_words: int = 100
    multi_topic_min_words: int = 50
    multi_topic_min_ratio: float = 0.10
    # non_english: judged per paragraph (and on the whole reply) once it has
    # `language_min_words` words. English prose runs 25–60 % stopwords; Spanish,
    # French, German, Italian, Portuguese prose under 6 % of *English* stopwords.
    language_min_words: int = 20
    min_stopword_share: float = 0.15
    max_non_latin_share: float = 0.30
    # repeated_boilerplate: a sentence of at least `boilerplate_min_words` words,
    # or an opening sentence of at least `opening_min_words`, seen verbatim before.
    boilerplate_min_words: int = 10
    opening_min_words: int = 4


DEFAULTS = ArtifactSettings()


class ExchangeLike(Protocol):
    number: int
    user: str
    assistant: str


# --- patterns -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    kind: Kind
    regex: re.Pattern[str]
    detail: str
    # When the user's message matches this, the pattern is about the user's own topic: skip it.
    unless_user: re.Pattern[str] | None = None


_I = re.IGNORECASE
_M = re.MULTILINE
_AI_SELF = (
    r"(?:an?\s+|just\s+an?\s+|only\s+an?\s+|merely\s+an?\s+)"
    r"(?:AI|A\.I\.|artificial\s+intelligence|chat\s?bot|bot|virtual\s+assistant|computer\s+program)"
    r"(?:\s+(?:model|assistant|coach|system|language\s+model))?"
    r"|(?:an?\s+|just\s+an?\s+)?(?:large\s+)?language\s+model|an?\s+LLM"
)
# Third-person forms only: "*pause*" or "(smile)" can be a coaching instruction, "*pauses*" is a script.
_STAGE_VERBS = (
    r"nods|smiles|pauses|leans(?:\s+(?:in|forward|back))?|sighs|chuckles|laughs|grins|"
    r"takes\s+a\s+(?:deep\s+|slow\s+)?breath|sits\s+(?:back|with|quietly)|tilts|"
    r"nodding|smiling|pausing|leaning\s+(?:in|forward|back)|sighing"
)
_STAGE_ADVERBS = (
    r"softly|gently|warmly|thoughtfully|quietly|calmly|kindly|in\s+a\s+(?:soft|gentle|warm|calm)\s+(?:voice|tone)"
)

_PATTERNS: tuple[_Pattern, ...] = (
    # --- the coach says it is a model --------------------------------------------------
    _Pattern(
        "character_break",
        re.compile(rf"\b(?:I\s+am|I['’]m|I\s+was)\s+(?:{_AI_SELF})\b", _I),
        "the assistant says it is an AI or a language model",
    ),
    _Pattern(
        "character_break",
        re.compile(rf"\bas\s+(?:{_AI_SELF})\b", _I),
        "the assistant speaks 'as an AI / language model'",
    ),
    _Pattern(
        "character_break",
        re.compile(
            r"\bmy\s+(?:training\s+data|training\s+cut-?off|knowledge\s+cut-?off|programming|"
            r"developers|creators|system\s+prompt|instructions)\b",
            _I,
        ),
        "the assistant mentions its training, instructions or makers",
    ),
    _Pattern(
        "character_break",
        re.compile(
            r"\bI\s+(?:don['’]t|do\s+not|can['’]t|cannot)\s+(?:actually\s+|really\s+)?"
            r"(?:have|feel|experience)\s+(?:real\s+|personal\s+|human\s+)?"
            r"(?:feelings|emotions|a\s+body|personal\s+experiences?|consciousness|lived\s+experience)\b",
            _I,
        ),
        "the assistant denies having feelings or experiences, as a model would",
    ),
    # --- frame leaks: the conversation is a roleplay / simulation ----------------------
    _Pattern(
        "meta_commentary",
        re.compile(
            r"\b(?:this|the|our)\s+role[-\s]?play\b|\b(?:out\s+of|in|break(?:ing)?|stay(?:ing)?\s+in)\s+character\b", _I
        ),
        "talks about the roleplay or staying in character",
        unless_user=re.compile(r"role[-\s]?play|in\s+character", _I),
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            r"\b(?:this|the|our)\s+simulation\b|\bsimulated\s+(?:conversation|session|user|client|"
            r"scenario|persona|therapy|coaching|exchange)\b",
            _I,
        ),
        "calls the conversation a simulation",
        unless_user=re.compile(r"simulat", _I),
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            r"\bthis\s+(?:fictional|hypothetical|simulated|role[-\s]?play)\s+(?:scenario|conversation|session)\b|"
            r"\bthe\s+scenario\s+(?:prompt|description|setup)\b|\b(?:this|the)\s+persona\b",
            _I,
        ),
        "refers to the scenario or persona the generator was given",
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            r"\bthe\s+user(?:['’]s)?\s+(?:is|was|has|had|seems|mentioned|said|says|wants|feels|"
            r"expressed|described|might|may|appears|message|request)\b",
            _I,
        ),
        "speaks about 'the user' in the third person",
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            r"\(\s*(?:as|speaking\s+as|in\s+my\s+role\s+as)\s+(?:the|your|an?)\s+"
            r"(?:coach|therapist|counsel+or|assistant|AI)\s*\)",
            _I,
        ),
        "a role tag such as '(as the assistant)'",
    ),
    # --- notes and preambles --------------------------------------------------------------
    _Pattern(
        "meta_commentary",
        re.compile(
            r"[\[(]\s*(?:note|author['’]?s?\s+note|ooc|meta|disclaimer|word\s+count|response\s+length|"
            r"end\s+of\s+(?:response|reply|session|transcript|exchange)|continued|system)\b[^\])\n]*[\])]?",
            _I,
        ),
        "a bracketed note outside the conversation",
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            r"\[\s*(?:insert|placeholder|your|user['’]?s?|client['’]?s?)\b[^\]\n]{0,40}\]|"
            r"\[[^\]\n]{0,40}\bname\s*\]",
            _I,
        ),
        "a template placeholder left in the reply",
    ),
    _Pattern(
        "meta_commentary", re.compile(r"\[[a-z][a-z'’ ]{0,30}\](?![(\[])"), "a template placeholder left in the reply"
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            r"\A\s*(?:(?:Sure|Okay|Certainly)[,!.]?\s+)?here(?:['’]s|\s+is)\s+(?:my|a|the|an)\s+"
            r"(?:\w+\s+){0,3}(?:response|reply|answer)\b",
            _I,
        ),
        "a preamble introducing 'the response'",
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            r"\b(?:I\s+hope\s+this|in\s+this)\s+(?:response|reply)\b|\b(?:response|reply)\s+(?:below|above)\b", _I
        ),
        "comments on its own response",
    ),
    # --- speaker labels and stage directions ------------------------------------------------
    _Pattern(
        "meta_commentary",
        re.compile(r"^[ \t>]*(?:\*\*|__)?(?:Coach|Assistant|AI|Model|User|Human|Bot)(?:\*\*|__)?\s*:(?:\*\*|__)?", _M),
        "a speaker label, as in a script",
    ),
    _Pattern(
        "meta_commentary",
        re.compile(r"^[ \t>]*(?:\*\*|__)?(?:Therapist|Counsel+or)(?:\*\*|__)?\s*:(?:\*\*|__)?", _M),
        "a speaker label, as in a script",
        unless_user=re.compile(r"therapist|counsel+or", _I),
    ),
    _Pattern(
        "meta_commentary",
        re.compile(rf"(?<![*\w])[*_](?![*_\s])(?:{_STAGE_VERBS})\b[^*_\n]{{0,80}}(?<!\s)[*_](?![*\w])", _I),
        "a stage direction in italics",
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            rf"(?:^|(?<=[.!?…]\s)|(?<=\n))[ \t]*[*_](?![*_\s])(?:{_STAGE_ADVERBS})\b[^*_\n]{{0,80}}(?<!\s)[*_](?![*\w])",
            _I | _M,
        ),
        "a stage direction in italics",
    ),
    _Pattern(
        "meta_commentary",
        re.compile(
            rf"[(\[]\s*(?:{_STAGE_VERBS}|{_STAGE_ADVERBS})\b[^)\]\n]{{0,60}}[)\]]|"
            r"\[\s*(?:pause|silence|beat|laughs|sighs)\s*\]",
            _I,
        ),
        "a stage direction in brackets",
    ),
)


def _name_pattern(names: Sequence[str]) -> re.Pattern[str] | None:
    cleaned = sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(n) for n in cleaned) + r")(?![\w-])", _I)


# --- helpers ---------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]*_]*(?=\s)|\n+")

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "even",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "like",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "i'm",
        "it's",
        "that's",
        "you're",
        "don't",
        "can't",
    ]
)

# A reply may end on sentence punctuation, optionally followed by closing quotes,
# brackets or emphasis markers; or directly on a closing quote/bracket; or on an emoji.
_TERMINAL = ".!?…"
_CLOSERS = "\"'”’»)]}*_`"
_CLOSING_END = '"”’»)]'
_DANGLING = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "so",
        "because",
        "if",
        "than",
        "that",
        "which",
        "who",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "as",
        "into",
        "about",
        "your",
        "my",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "these",
        "those",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "have",
        "has",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "might",
        "may",
        "must",
        "not",
        "very",
        "more",
        "most",
        "just",
        "when",
        "while",
    ]
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line, trimmed of surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((pos, match.end() if not match.group().startswith("\n") else match.start()))
        pos = match.end()
    spans.append((pos, len(text)))
    out = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out


# A leading section label ("**Sleep:**", "**Sleep**:") or list marker is not part of the sentence.
_LABEL = re.compile(r"^\s*(?:[-*>]\s+)?(?:\*\*|__)[^*_\n]{1,80}?(?::(?:\*\*|__)|(?:\*\*|__)\s*:)\s*|^\s*[-*>]\s+")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "*": "", "_": ""})


def _normalise(sentence: str) -> str:
    """Comparable form of a sentence: no leading section label or markdown, one space, lower case."""
    sentence = _LABEL.sub("", sentence, count=1)
    return " ".join(sentence.translate(_QUOTES).lower().split())


def _ends_with_emoji(text: str) -> bool:
    """An emoji (or other pictographic symbol) closes the reply, ignoring variation selectors and joiners."""
    core = text.rstrip("\ufe0f\u200d\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")
    return bool(core) and unicodedata.category(core[-1]) == "So"


def _last_fragment_start(text: str) -> int:
    spans = _sentences(text)
    return spans[-1][0] if spans else 0


# --- individual checks -------------------------------------------------------------------------


def _pattern_findings(assistant: str, user: str | None, names: re.Pattern[str] | None) -> list[Finding]:
    found: list[Finding] = []
    for pattern in _PATTERNS:
        if pattern.unless_user is not None and user and pattern.unless_user.search(user):
            continue
        for m in pattern.regex.finditer(assistant):
            if m.end() > m.start():
                found.append(Finding(pattern.kind, m.start(), m.end(), m.group(), pattern.detail))
    if names is not None:
        raised_by_user = {m.group().lower() for m in names.finditer(user or "")}
        for m in names.finditer(assistant):
            if m.group().lower() in raised_by_user:
                continue
            found.append(
                Finding(
                    "character_break", m.start(), m.end(), m.group(), f"mentions the model or vendor name {m.group()!r}"
                )
            )
    return found


def _truncation_findings(assistant: str) -> list[Finding]:
    found: list[Finding] = []
    text = assistant.rstrip()
    end = len(text)
    core = text.rstrip(_CLOSERS + " \t\n")
    tail = core[-1:] if core else ""
    last = text[-1]
    ok = bool(tail and tail in _TERMINAL) or last in _CLOSING_END or _ends_with_emoji(text)
    if not ok:
        start = _last_fragment_start(text)
        if last in ",;:":
            detail = f"ends on {last!r}: the reply was cut off"
        elif last in "-–—":
            detail = "ends on a dash: cut off mid-sentence" if last != "-" or text[-2:-1].isspace() else "ends mid-word"
        else:
            words = _words(core[-40:])
            tail_word = words[-1].lower() if words else ""
            if tail_word in _DANGLING:
                detail = f"ends mid-sentence on {words[-1]!r}"
            else:
                detail = "ends without sentence punctuation"
        found.append(Finding("truncated", start, end, text[start:end], detail))

    # Bold markers toggle: a run of 2-3 asterisks is one toggle (3 = bold italic), a line of
    # only asterisks is a horizontal rule. An odd count means an emphasis left open.
    toggles = [
        m.start()
        for m in re.finditer(r"\*{2,}", text)
        for _ in range(len(m.group()) // 2)
        if _line_at(text, m.start()).strip(" *") or len(_line_at(text, m.start()).strip()) < 3
    ]
    if len(toggles) % 2:
        opener = toggles[-1]
        found.append(Finding("truncated", opener, end, text[opener:end], "'**' opened and never closed"))
    fences = [m.start() for m in re.finditer(r"^\s*```", text, _M)]
    if len(fences) % 2:
        found.append(
            Finding("truncated", fences[-1], end, text[fences[-1] : end], "code fence opened and never closed")
        )
    depth, opener = 0, -1
    for i, ch in enumerate(text):
        if ch == "“":
            if depth == 0:
                opener = i
            depth += 1
        elif ch in '”"' and depth:
            depth -= 1
    if depth:
        found.append(Finding("truncated", opener, end, text[opener:end], "a quotation (“) opened and never closed"))
    return found


def _line_at(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    stop = text.find("\n", index)
    return text[start : stop if stop != -1 else len(text)]


def _too_short(assistant: str, user: str | None, settings: ArtifactSettings) -> Finding | None:
    n = len(_words(assistant))
    user_words = len(_words(user)) if user else 0
    minimum, why = settings.min_words, f"only {n} words"
    if user_words >= settings.multi_topic_user_words:
        needed = max(settings.multi_topic_min_words, round(settings.multi_topic_min_ratio * user_words))
        if needed > minimum:
            minimum, why = needed, f"{n} words in reply to a {user_words}-word multi-topic message"
    if n >= minimum:
        return None
    text = assistant.strip()
    start = assistant.find(text)
    return Finding("too_short", start, start + len(text), text, f"{why} (minimum {minimum})")


def non_english_reason(text: str, settings: ArtifactSettings = DEFAULTS) -> str | None:
    """Why `text` does not read as English, or None.

    Two cheap signals, no language model: (1) the share of letters outside the
    Latin script (Cyrillic, CJK, Arabic …) above `max_non_latin_share`; (2) for
    Latin-script text of at least `language_min_words` words, the share of words
    that are common English function words below `min_stopword_share`. Short
    texts are not judged: a quoted phrase in another language is not an artifact.
    """
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return None
    if not text.isascii():
        foreign = sum(1 for ch in letters if ch > "\u024f" and not unicodedata.name(ch, "").startswith("LATIN"))
        share = foreign / len(letters)
        if share > settings.max_non_latin_share and len(letters) >= 20:
            return f"{share:.0%} of letters are not Latin script"
    words = _words(text)
    if len(words) < settings.language_min_words:
        return None
    share = sum(1 for w in words if w.lower().replace("’", "'") in STOPWORDS) / len(words)
    if share < settings.min_stopword_share:
        return f"only {share:.0%} of {len(words)} words are common English words"
    return None


def _non_english(assistant: str, settings: ArtifactSettings) -> list[Finding]:
    found = []
    pos = 0
    for para in re.split(r"(\n\s*\n)", assistant):
        start, pos = pos, pos + len(para)
        if not para.strip() or para.startswith("\n"):
            continue
        reason = non_english_reason(para, settings)
        if reason:
            found.append(Finding("non_english", start, start + len(para), para, reason))
    if not found:
        reason = non_english_reason(assistant, settings)
        if reason:
            found.append(Finding("non_english", 0, len(assistant), assistant, reason))
    return found


@dataclass
class _Seen:
    """Sentences already used by earlier replies: normalised text -> 1-based reply index."""

    sentences: dict[str, int]
    openings: dict[str, int]

    @classmethod
    def of(cls, replies: Iterable[str], settings: ArtifactSettings) -> _Seen:
        seen = cls({}, {})
        for i, reply in enumerate(replies, 1):
            seen.add(reply, i, settings)
        return seen

    def add(self, reply: str, index: int, settings: ArtifactSettings) -> None:
        spans = _sentences(reply)
        for k, (s, e) in enumerate(spans):
            norm = _normalise(reply[s:e])
            words = len(norm.split())
            if k == 0 and words >= settings.opening_min_words:
                self.openings.setdefault(norm, index)
            if words >= settings.boilerplate_min_words:
                self.sentences.setdefault(norm, index)


def _boilerplate(assistant: str, seen: _Seen, settings: ArtifactSettings) -> list[Finding]:
    found = []
    for k, (s, e) in enumerate(_sentences(assistant)):
        norm = _normalise(assistant[s:e])
        words = len(norm.split())
        where = None
        if k == 0 and words >= settings.opening_min_words and norm in seen.openings:
            where = f"opens the same way as earlier reply {seen.openings[norm]}"
        elif words >= settings.boilerplate_min_words and norm in seen.sentences:
            where = f"repeats a sentence of earlier reply {seen.sentences[norm]} verbatim"
        if where:
            found.append(Finding("repeated_boilerplate", s, e, assistant[s:e], where))
    return found


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """Sorted by position; a finding inside another of the same kind is dropped."""
    findings.sort(key=lambda f: (f.start, -f.end, KINDS.index(f.kind)))
    out: list[Finding] = []
    for f in findings:
        if any(g.kind == f.kind and g.start <= f.start and f.end <= g.end for g in out):
            continue
        out.append(f)
    return out


def _detect(
    assistant: str, user: str | None, seen: _Seen, names: re.Pattern[str] | None, settings: ArtifactSettings
) -> list[Finding]:
    if not assistant.strip():
        return [Finding("empty", 0, len(assistant), assistant, "the reply is empty")]
    findings = _pattern_findings(assistant, user, names)
    findings += _truncation_findings(assistant)
    short = _too_short(assistant, user, settings)
    if short:
        findings.append(short)
    findings += _non_english(assistant, settings)
    findings += _boilerplate(assistant, seen, settings)
    return _dedupe(findings)


# --- public API --------------------------------------------------------------------------------


def detect_artifacts(
    assistant: str,
    *,
    user: str | None = None,
    previous_assistant: Sequence[str] = (),
    names: Sequence[str] = DEFAULT_NAMES,
    settings: ArtifactSettings = DEFAULTS,
) -> list[Finding]:
    """Every artifact in one assistant reply, sorted by position.

    `user` is the message being answered (for `too_short` and to allow names
    or topics the user raised); `previous_assistant` are the earlier replies of
    the same conversation, oldest first (for `repeated_boilerplate`); `names`
    are model/vendor names that count as a character break when the coach says
    them. An empty reply gives one `empty` finding and nothing else.
    """
    return _detect(assistant, user, _Seen.of(previous_assistant, settings), _name_pattern(names), settings)


def trim_cut_off_tail(assistant: str) -> str | None:
    """The reply without its cut-off last sentence, or None when that would not leave a clean reply.

    A reply that hit its token limit mid-sentence is usually fine up to its
    last full stop: keeping that part is a rewrite entailed by the original,
    cheaper and safer than asking a model to write the reply again. Only the
    "ends mid-sentence" kind is repaired this way; an unclosed bold, fence or
    quotation is not, since cutting it off would drop what it opened.
    """
    text = assistant.rstrip()
    cut = _truncation_findings(text)
    if len(cut) != 1 or cut[0].end != len(text) or cut[0].start == 0:
        return None
    trimmed = text[: cut[0].start].rstrip()
    return trimmed if trimmed and not _truncation_findings(trimmed) else None


def transcript_artifacts(
    exchanges: Sequence[ExchangeLike],
    *,
    names: Sequence[str] = DEFAULT_NAMES,
    settings: ArtifactSettings = DEFAULTS,
) -> dict[int, list[Finding]]:
    """Findings per exchange number, for the exchanges that have any.

    Linear in the transcript: earlier replies' sentences are indexed once as the
    walk goes, not re-split for every exchange.
    """
    pattern = _name_pattern(names)
    seen = _Seen({}, {})
    out: dict[int, list[Finding]] = {}
    for i, ex in enumerate(exchanges, 1):
        findings = _detect(ex.assistant, ex.user, seen, pattern, settings)
        if findings:
            out[ex.number] = findings
        seen.add(ex.assistant, i, settings)
    return out
