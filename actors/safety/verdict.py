"""What the net says about one message: which layers fired, for which categories, in which language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Layer = Literal["lexicon", "fuzzy", "classifier", "context", "model"]


@dataclass(frozen=True)
class SafetySignal:
    """One layer's reason to show the panel: the category, the layer, what it saw, how sure (0–1)."""

    category: str
    layer: Layer
    evidence: str
    score: float = 1.0


@dataclass(frozen=True)
class SafetyVerdict:
    """The net's answer for one message. ``categories`` are the pack's ids, most urgent first."""

    flagged: bool
    categories: tuple[str, ...]
    signals: tuple[SafetySignal, ...]
    language: str | None
    dismissed: tuple[SafetySignal, ...] = ()
    """Phrase hits the classifier dismissed as figures of speech (kept so an eval can count them)."""

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.layer for s in self.signals))

    def with_signals(self, extra: tuple[SafetySignal, ...], order: list[str]) -> SafetyVerdict:
        """This verdict plus more signals (the model layer only ever adds)."""
        signals = self.signals + tuple(extra)
        found = {s.category for s in signals}
        categories = tuple(c for c in order if c in found)
        return SafetyVerdict(bool(signals), categories, signals, self.language, self.dismissed)


NOT_FLAGGED = SafetyVerdict(False, (), (), None)
