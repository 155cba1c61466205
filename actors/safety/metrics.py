"""What a labelled run of the net adds up to: recall, false alarms, latency, every mistake.

Pure functions over outcomes (label, language, flagged, predicted
categories, seconds), so `coach safety eval`, the benchmark and the tests
compute the figures the same way. "Recall" is the share of crisis messages
that raised the panel, whatever category the net named; which category it
named is reported separately as category accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .taxonomy import BENIGN, Thresholds


@dataclass(frozen=True)
class Outcome:
    text: str
    category: str
    language: str
    flagged: bool
    predicted: tuple[str, ...]
    seconds: float
    layers: tuple[str, ...] = ()
    dismissed: bool = False
    """Whether a phrase hit was dismissed by the classifier as a figure of speech."""


@dataclass(frozen=True)
class Rate:
    hits: int
    total: int

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    def text(self, digits: int = 3, gap: str = " ") -> str:
        """The rate and its counts ("0.975 (353/362)"), or n/a, as wide, where nothing was counted
        (the recall of a file without crisis messages)."""
        if self.value is None:
            return "n/a".rjust(digits + 2)
        return f"{self.value:.{digits}f}{gap}({self.hits}/{self.total})"


@dataclass
class Report:
    messages: int
    crisis: int
    benign: int
    recall: Rate
    by_category: dict[str, Rate]
    by_language: dict[str, Rate]
    false_alarms: Rate
    category_top: Rate
    category_any: Rate
    p50_ms: float
    p99_ms: float
    dismissed: Rate = Rate(0, 0)
    """Crisis messages among those whose phrase hits the classifier dismissed (the rest were
    false alarms spared): the price of `dismiss_below` on this set, in plain sight."""
    misses: list[Outcome] = field(default_factory=list)
    false_alarm_list: list[Outcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        def rate(r: Rate) -> dict:
            return {"hits": r.hits, "total": r.total, "value": r.value}

        def outcome(o: Outcome) -> dict:
            return {
                "text": o.text,
                "label": o.category,
                "language": o.language,
                "predicted": list(o.predicted),
                "layers": list(o.layers),
                "dismissed": o.dismissed,
            }

        return {
            "messages": self.messages,
            "crisis": self.crisis,
            "benign": self.benign,
            "recall": rate(self.recall),
            "recall_by_category": {k: rate(v) for k, v in self.by_category.items()},
            "recall_by_language": {k: rate(v) for k, v in self.by_language.items()},
            "false_alarm_rate": rate(self.false_alarms),
            "category_accuracy_top": rate(self.category_top),
            "category_accuracy_any": rate(self.category_any),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "dismissed": {"crisis": self.dismissed.hits, "benign": self.dismissed.total - self.dismissed.hits},
            "misses": [outcome(o) for o in self.misses],
            "false_alarms": [outcome(o) for o in self.false_alarm_list],
            "failures": list(self.failures),
            "passed": not self.failures,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _rate(outcomes: Iterable[Outcome]) -> Rate:
    items = list(outcomes)
    return Rate(sum(o.flagged for o in items), len(items))


def summarise(outcomes: Sequence[Outcome], categories: Sequence[str] = ()) -> Report:
    """Every figure the eval prints; categories keep the pack's order, then any others seen."""
    crisis = [o for o in outcomes if o.category != BENIGN]
    benign = [o for o in outcomes if o.category == BENIGN]
    order = [c for c in categories if any(o.category == c for o in crisis)]
    order += sorted({o.category for o in crisis} - set(order))
    by_category = {c: _rate(o for o in crisis if o.category == c) for c in order}
    languages = sorted({o.language for o in outcomes})
    by_language = {
        lang: _rate(o for o in crisis if o.language == lang)
        for lang in languages
        if any(o.language == lang for o in crisis)
    }
    times_ms = [o.seconds * 1000 for o in outcomes]
    return Report(
        messages=len(outcomes),
        crisis=len(crisis),
        benign=len(benign),
        recall=_rate(crisis),
        by_category=by_category,
        by_language=by_language,
        false_alarms=_rate(benign),
        category_top=Rate(sum(bool(o.predicted) and o.predicted[0] == o.category for o in crisis), len(crisis)),
        category_any=Rate(sum(o.category in o.predicted for o in crisis), len(crisis)),
        p50_ms=round(percentile(times_ms, 50), 3),
        p99_ms=round(percentile(times_ms, 99), 3),
        dismissed=Rate(sum(o.dismissed for o in crisis), sum(o.dismissed for o in outcomes)),
        misses=[o for o in crisis if not o.flagged],
        false_alarm_list=[o for o in benign if o.flagged],
    )


def failures(report: Report, thresholds: Thresholds) -> list[str]:
    """Each target the report misses, in words; empty when it meets them all."""
    out: list[str] = []

    def below(name: str, rate: Rate, target: float, *, small_ok: bool = True) -> None:
        if rate.value is None or (small_ok and rate.total < thresholds.min_messages):
            return
        if rate.value < target:
            out.append(f"{name} {rate.value:.3f} < {target:.2f}")

    below("recall", report.recall, thresholds.recall, small_ok=False)
    for category, rate in report.by_category.items():
        below(f"recall[{category}]", rate, thresholds.category_recall)
    for language, rate in report.by_language.items():
        below(f"recall[{language}]", rate, thresholds.language_recall)
    fa = report.false_alarms.value
    if fa is not None and fa > thresholds.false_alarm_rate:
        out.append(f"false-alarm rate {fa:.3f} > {thresholds.false_alarm_rate:.2f}")
    if report.p99_ms > thresholds.p99_ms:
        out.append(f"p99 {report.p99_ms:.2f} ms > {thresholds.p99_ms:g} ms")
    return out
