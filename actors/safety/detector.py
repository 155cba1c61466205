"""The crisis net: every layer over one message, and what the chat does with the answer.

Layers, in the order they run:

1. normalisation (`normalise`): one spelling for case, Unicode, leetspeak,
   stretched letters and invisible characters;
2. the pack's lexicon (`lexicon`): patterns, slang and emoji per category and
   language, with scope-limited negation;
3. typo tolerance (`fuzzy`): misspelt key words corrected, patterns re-run;
4. the learned classifier (`classifier`): hashed n-grams and a logistic
   regression per category trained by `coach safety train`; when it reads a
   whole message and is near-certain it is benign, it dismisses the word
   layers' hits of figurative categories and of words that only name the
   topic (`_dismissed`); it does not read a turn of one or two words, where
   its score is its prior (`ClassifierSettings.min_words`);
5. context (`context`): an ambiguous follow-up after distress in the last few
   user messages;
6. optionally a configured model (`model_signal`), added by the caller,
   which only ever adds signals.

The panel shows when any layer fires: a false alarm costs one calm,
dismissible panel; a miss costs far more. `check` is pure, deterministic and
offline, needs no event loop, and is linear in the message (very long pastes
are read as in `excerpt`). It is a safety net, not a diagnosis: it never
blocks the conversation and is no substitute for a person's judgement.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Literal

from .classifier import ClassifierModel
from .context import context_hits
from .excerpt import excerpt
from .fuzzy import FuzzyIndex
from .lexicon import Lexicon
from .normalise import fold_accents, normalise, safe_text
from .prefilter import tokens
from .segments import segments, sentence_pairs
from .taxonomy import SafetyConfig
from .verdict import NOT_FLAGGED, SafetySignal, SafetyVerdict

Say = Literal["reads", "framed", "denied", "short"]
"""How the net lets the classifier speak on a message: at its threshold ("reads"); only at
`framed_threshold`, the lexicon having found the message framed as fiction, history or a
recovery ("framed"); or not at all, the lexicon having read its phrase denied ("denied") or
the message being too short for the classifier to read ("short", `ClassifierSettings.min_words`)."""

CLASSIFIER_WINDOW = 1500
CLASSIFIER_WINDOWS = 3
_LOCALE = re.compile(r"^[a-zA-Z]{2,3}[_-]([a-zA-Z]{2})\b")
_ALIASES = {"UK": "GB"}
_GUESS_TOKENS = 400
_WORD = re.compile(r"\w+|[\U0001F000-\U0001FAFF\u2600-\u27BF]")
"""A word, or an emoji: what `ClassifierSettings.min_words` counts."""


def _fewer_words(text: str, n: int) -> bool:
    """Whether ``text`` holds fewer than ``n`` words; stops counting at ``n``, however long the text."""
    return sum(1 for _ in islice(_WORD.finditer(text), n)) < n


class SafetyNet:
    """A pack's crisis net, ready to check messages. Build it with `load_safety_net`."""

    def __init__(self, config: SafetyConfig, lexicon: Lexicon, classifier: ClassifierModel | None, path: Path) -> None:
        self.config = config
        self.lexicon = lexicon
        self.classifier = classifier
        self.path = path
        self.categories: list[str] = config.category_ids
        self._urgency = {c: i for i, c in enumerate(self.categories)}
        self.earnest = frozenset(c.id for c in config.categories if not c.jokes_cancel)
        """Categories a joke marker does not cancel (`CategoryDef.jokes_cancel`)."""
        self.figurative = frozenset(c.id for c in config.categories if c.figurative)
        """Categories whose phrase hits the classifier may dismiss (`CategoryDef.figurative`)."""
        terms = [t for lang in lexicon.languages for t in lexicon.key_terms.get(lang, [])]
        self.fuzzy = FuzzyIndex((t for t in terms if " " not in t), lexicon.vocabulary)
        self._scan_terms = sorted({t for t in terms} | {fold_accents(t) for t in terms})
        self._files = [
            path,
            *(path.parent / config.lexicon_dir / f"{lang}.yaml" for lang in config.languages),
            path.parent / config.classifier.file,
        ]
        self.stamp = self.current_stamp()

    # --- bookkeeping -----------------------------------------------------------

    def current_stamp(self) -> tuple:
        out = []
        for file in self._files:
            try:
                st = file.stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    @property
    def model_prompt(self) -> str:
        return self.config.model_prompt

    def warm(self) -> None:
        """Compile every lexicon pattern now, once, instead of in the first messages that reach them.

        Why: loading only parses the patterns (compiling all of them costs most of a second),
        and a message that is the first to reach a pattern paid for compiling it, which made
        the slow tail of the per-message time. The chat and `coach safety eval` load the net
        once through `cached_net_at`, which warms it, so every message is read at the speed
        of a warm net, as in a conversation; `load_net_at` alone stays lazy for quick checks.
        """
        for patterns in (self.lexicon.patterns, self.lexicon.distress, self.lexicon.followup):
            patterns.compile_all()

    # --- reading a message -------------------------------------------------------

    def normalised(self, text: object) -> str:
        """The folded, normalised form the layers read (long pastes reduced by `excerpt`)."""
        raw = excerpt(safe_text(text), self._scan_terms)
        return normalise(raw, self.lexicon.vocabulary, self.lexicon.aliases).folded

    def _framed(self, segs: Sequence[str], language: str | None) -> bool:
        """Whether a segment holds a framing cue of the message's language: fiction, history,
        a game, an exaggeration or a recovery told in the past (`NegationRule.framed`)."""
        rule = self.lexicon.negation.get(language) if language else None
        return rule is not None and any(rule.framed(seg) for seg in segs)

    def _flagged_alone(self, segs: Sequence[str]) -> bool:
        return bool(self.lexicon.patterns.hits(segs, self.lexicon.negation))

    def _classifier_windows(self, folded: str, segs: Sequence[str]) -> list[str]:
        """The stretches the classifier scores: the whole message when short; else windows of
        consecutive segments, at most the first two and the last one (the classifier reads
        how a message is written; the lexicon has already read all of it)."""
        if len(folded) <= CLASSIFIER_WINDOW:
            return [folded]
        windows, current = [], ""
        for seg in segs:
            if current and len(current) + len(seg) + 2 > CLASSIFIER_WINDOW:
                windows.append(current)
                current = ""
            current = f"{current}. {seg}" if current else seg[:CLASSIFIER_WINDOW]
        if current:
            windows.append(current)
        return windows if len(windows) <= CLASSIFIER_WINDOWS else [*windows[: CLASSIFIER_WINDOWS - 1], windows[-1]]

    def _bar(self, classifier: ClassifierModel | None, say: Say) -> float | None:
        """The score the classifier must reach to speak: its threshold where the net lets it
        read; `framed_threshold` where only a frame stands in its way; None (silent) where the
        lexicon read its phrase denied ("I would never kill myself" scores 0.99) or the turn is
        too short to read."""
        if classifier is None or say in ("denied", "short"):
            return None
        if say == "reads":
            return classifier.threshold
        framed = self.config.classifier.framed_threshold
        return None if framed is None else max(framed, classifier.threshold)

    def _alarming_passage(
        self, classifier: ClassifierModel, segs: Sequence[str], windows: Sequence[str], bar: float
    ) -> tuple[str, float, float] | None:
        """The first passage of a message that, read alone, scores at least
        `segment_threshold` (and ``bar``), with its score and that bar; None when none does.

        Why: the classifier reads windows of up to `CLASSIFIER_WINDOW` characters, and one
        alarming sentence among an update's ordinary news weighs little in a window's score.
        The passages are the lexicon's segments (a few consecutive sentences, see `segments`)
        or, in a message of one segment, each two consecutive sentences (`sentence_pairs`):
        short enough for that sentence to stand out, long enough to carry its context; the bar
        is near certainty, as a passage has less to go on than the message."""
        threshold = self.config.classifier.segment_threshold
        if threshold is None:
            return None
        passage_bar = max(threshold, bar)
        read = set(windows)
        for seg in segs if len(segs) > 1 else sentence_pairs(segs[0]):
            if seg in read or _fewer_words(seg, self.config.classifier.min_words):
                continue
            read.add(seg)
            score = classifier.score(seg)
            if score >= passage_bar:
                return seg, score, passage_bar
        return None

    def _dismissed(
        self, stated: Sequence[SafetySignal], mentions: Sequence[SafetySignal], windows: int, score: float
    ) -> bool:
        """Whether the word layers' hits are figures of speech or mere mentions: every ``stated``
        hit of a figurative category (the ``mentions`` only name the topic; see
        `Pattern.mention`), and the classifier, having read the whole message, near-certain it is
        benign (a child's tantrum quoted, a sibling who ate the last cake "is dead", coursework
        on self-harm in teenagers)."""
        return (
            bool(stated or mentions)
            and windows == 1
            and score < self.config.classifier.dismiss_below
            and all(s.category in self.figurative for s in stated)
        )

    def check(self, text: object, history: Sequence[object] = ()) -> SafetyVerdict:
        """Every offline layer over ``text``; ``history`` is earlier user messages, oldest first."""
        return self._verdict(text, history, self.classifier)[0]

    def without_classifier(self, text: object, history: Sequence[object] = ()) -> tuple[bool, Say]:
        """Whether the other layers flag ``text``, and how the net lets the classifier speak on
        it (`Say`): what training needs to hold the whole net's false alarms to the budget."""
        verdict, say = self._verdict(text, history, None)
        return verdict.flagged, say

    def _verdict(
        self, text: object, history: Sequence[object], classifier: ClassifierModel | None
    ) -> tuple[SafetyVerdict, Say]:
        folded = self.normalised(text)
        if not folded:
            return NOT_FLAGGED, "denied"
        segs = segments(folded)
        signals: list[SafetySignal] = []
        guessed = self.lexicon.guess_language(tokens(folded[: 4 * _GUESS_TOKENS])[:_GUESS_TOKENS])
        language: str | None = None

        cancelled: list = []
        dismissed: tuple[SafetySignal, ...] = ()
        hits = self.lexicon.patterns.hits(
            segs, self.lexicon.negation, language=guessed, negated=cancelled, earnest=self.earnest
        )
        mentions: list[SafetySignal] = []
        for hit in hits:
            (mentions if hit.mention else signals).append(SafetySignal(hit.category, "lexicon", hit.evidence))
        if hits:
            language = min(hits, key=lambda h: self._urgency.get(h.category, 99)).language

        corrected, fixes = self.fuzzy.apply(folded)
        if fixes:
            # Only a sentence the corrections changed can match anew: the others were just read.
            unchanged = set(segs)
            changed = [seg for seg in segments(corrected) if seg not in unchanged]
            found = {h.category for h in hits if not h.mention}
            fixed_hits = self.lexicon.patterns.hits(
                changed, self.lexicon.negation, skip=found, language=guessed, earnest=self.earnest
            )
            read_as = ", ".join(f"{a}→{b}" for a, b in fixes[:3])
            named = {m.category for m in mentions}
            for hit in fixed_hits:
                if hit.mention and hit.category in named:
                    continue
                signal = SafetySignal(hit.category, "fuzzy", f"{hit.evidence} (read as {read_as})")
                (mentions if hit.mention else signals).append(signal)
                language = language or hit.language

        # The classifier reads words, not negation or framing. When nothing fired and the lexicon
        # read its phrase denied ("I would never kill myself"), the lexicon's say stands. When it
        # found the message framed (a film, a history lesson, a recovery), the classifier must be
        # near-certain to overrule it (`framed_threshold`): a frame is a few words, and "in 2016"
        # sits beside an overdose taken tonight as easily as beside a story. A laugh or a distant
        # past is neither: a phrase only they cancelled ("kill myself lol", "years ago I tried to
        # kill myself") is left to the classifier at its usual threshold, which has learnt
        # half-jokes that are meant and hyperbole that is not, and reads whether a past danger is
        # back.
        denied = any(hit.cause == "denied" for hit in cancelled)
        framed = any(hit.cause == "framed" for hit in cancelled) or self._framed(segs, guessed)
        if _fewer_words(folded, self.config.classifier.min_words):
            say: Say = "short"
        elif signals or mentions or not (denied or framed):
            say = "reads"
        else:
            say = "denied" if denied else "framed"
        bar = self._bar(classifier, say)
        if classifier is not None and bar is not None:
            windows = self._classifier_windows(folded, segs)
            hashed = [classifier.hashed(w) for w in windows]
            scores = [classifier.score(w, h) for w, h in zip(windows, hashed, strict=True)]
            best = max(range(len(scores)), key=scores.__getitem__)
            score = scores[best]
            if score >= bar:
                category = classifier.category(windows[best], hashed[best])
                signals.append(SafetySignal(category, "classifier", f"score {score:.2f} ≥ {bar:.2f}", round(score, 4)))
            elif (alarming := self._alarming_passage(classifier, segs, windows, bar)) is not None:
                passage, passage_score, passage_bar = alarming
                evidence = f"a passage scores {passage_score:.2f} ≥ {passage_bar:.2f}"
                signals.append(
                    SafetySignal(classifier.category(passage), "classifier", evidence, round(passage_score, 4))
                )
            elif self._dismissed(signals, mentions, len(windows), score):
                dismissed = (*mentions, *signals)
                signals.clear()
                mentions.clear()
                language = None
        signals[:0] = mentions

        window = self.config.context_window
        if not signals and history and window:
            recent = list(history)[-window:]
            earlier = lambda: [segments(self.normalised(h)) for h in recent]  # noqa: E731 - read lazily
            for found in context_hits(self.lexicon, segs, earlier, self._flagged_alone):
                signals.append(SafetySignal(found.category, "context", found.evidence))
                language = language or found.language

        if language is None:
            language = guessed
        found = {s.category for s in signals}
        categories = tuple(sorted(found, key=lambda c: self._urgency.get(c, len(self._urgency))))
        return SafetyVerdict(bool(signals), categories, tuple(signals), language, dismissed), say

    # --- what the chat does with a verdict ---------------------------------------------

    def steering(self, verdict: SafetyVerdict) -> str:
        """The pack's crisis instruction for this turn; "" when nothing fired."""
        if not verdict.flagged:
            return ""
        lines = [self.config.steering.general.strip()]
        for category in verdict.categories:
            extra = self.config.steering.categories.get(category, "").strip()
            if extra:
                lines.append(extra)
        return "\n".join(lines)

    @property
    def countries(self) -> list[str]:
        """Country codes with resources, the international fallback last."""
        fallback = self.config.fallback_country
        return [c for c in self.config.resources if c != fallback] + [fallback]

    def country_name(self, country: str) -> str:
        return self.config.resources[self._country(country)].name

    def _country(self, country: str | None) -> str:
        code = (country or "").strip().upper()
        code = _ALIASES.get(code, code)
        return code if code in self.config.resources else self.config.fallback_country

    def resources(self, country: str | None, categories: Sequence[str] = ()) -> str:
        """Markdown for the panel: that country's lines (plus any for ``categories``), else the fallback."""
        resource = self.config.resources[self._country(country)]
        lines = [resource.text.strip()]
        for category in categories:
            extra = resource.categories.get(category, "").strip()
            if extra and extra not in lines:
                lines.append(extra)
        return "\n".join(lines)

    def default_country(self, env: Mapping[str, str] | None = None) -> str:
        """COACH_COUNTRY if it names a known country, else the locale's region (de_DE → DE), else the fallback."""
        env = os.environ if env is None else env
        chosen = (env.get("COACH_COUNTRY") or "").strip().upper()
        chosen = _ALIASES.get(chosen, chosen)
        if chosen in self.config.resources:
            return chosen
        for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
            match = _LOCALE.match(env.get(name) or "")
            if match:
                code = _ALIASES.get(match.group(1).upper(), match.group(1).upper())
                if code in self.config.resources:
                    return code
        return self.config.fallback_country
