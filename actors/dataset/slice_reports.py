"""What a slicing run produced, in words a person checks: lengths against the target mix, and coverage.

Kept apart from the slicer because these read results only (examples, or
plain token counts) and are shared by `coach slice`, the Dataset screen, the
model card on export and the benchmark; none of them needs a tokenizer.

- `length_report`: examples, share and average tokens per bucket of the mix
  (default: the spec's), and the total-variation distance to its targets.
- `coverage_report`: slices per transcript, and how often an exchange is the
  supervised last reply, by where it sits in its conversation.
- `format_mix_plan`: the planner's target, dense-late-alone and planned
  counts, and which buckets are out of reach and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .length_targets import MixPlan, TargetBucket, tvd
from .slice_windows import Example, SliceResult

# --- length report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    label: str
    low: int  # inclusive
    high: int | None  # exclusive; None = no upper bound
    count: int
    share: float
    avg_tokens: float
    target_share: float


@dataclass(frozen=True)
class LengthReport:
    buckets: tuple[Bucket, ...]
    examples: int
    total_tokens: int
    max_tokens: int

    @property
    def tvd(self) -> float:
        """Total-variation distance between the examples' mix and the target: 0 on target, 1 disjoint."""
        return tvd([b.share for b in self.buckets], [b.target_share for b in self.buckets])


# The spec's "Example Length Distribution (Target)".
SPEC_BUCKETS: tuple[tuple[str, int, int | None, float], ...] = (
    ("Short (0-5K)", 0, 5_000, 0.20),
    ("Medium (5-15K)", 5_000, 15_000, 0.50),
    ("Long (15-30K)", 15_000, 30_000, 0.25),
    ("Very long (30K+)", 30_000, None, 0.05),
)
SPEC_MIX: tuple[TargetBucket, ...] = tuple(TargetBucket(*b) for b in SPEC_BUCKETS)


def length_report(examples: Iterable[Example | int], mix: Sequence[TargetBucket] | None = None) -> LengthReport:
    """Counts, shares and average tokens per bucket of `mix` (default: the spec's), examples or plain token counts."""
    counts = [e if isinstance(e, int) else e.token_count for e in examples]
    buckets = []
    for label, low, high, target in ((b.label, b.low, b.high, b.share) for b in mix or SPEC_MIX):
        inside = [c for c in counts if c >= low and (high is None or c < high)]
        buckets.append(
            Bucket(
                label=label,
                low=low,
                high=high,
                count=len(inside),
                share=len(inside) / len(counts) if counts else 0.0,
                avg_tokens=sum(inside) / len(inside) if inside else 0.0,
                target_share=target,
            )
        )
    return LengthReport(tuple(buckets), len(counts), sum(counts), max(counts, default=0))


def format_length_report(report: LengthReport) -> str:
    """The report as an aligned plain-text table, target shares alongside."""
    rows = [("Length", "Examples", "Share", "Target", "Avg tokens")]
    for b in report.buckets:
        rows.append(
            (
                b.label,
                str(b.count),
                f"{b.share:.0%}",
                f"{b.target_share:.0%}",
                f"{b.avg_tokens:,.0f}" if b.count else "-",
            )
        )
    avg = report.total_tokens / report.examples if report.examples else 0
    rows.append(("Total", str(report.examples), "100%" if report.examples else "-", "100%", f"{avg:,.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=False)]
        lines.append("  ".join(cells).rstrip())
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"{report.total_tokens:,} tokens in all; longest example {report.max_tokens:,} tokens")
    if report.examples:
        lines.append(f"distance from the target mix (TVD): {report.tvd:.3f}")
    return "\n".join(lines)


# --- coverage: slices per transcript, and which exchanges are supervised ------------------------------


@dataclass(frozen=True)
class CoverageReport:
    transcripts: int
    examples: int
    per_transcript: tuple[int, ...]  # sorted slice counts, one per transcript (0 for one that gave none)
    by_length: tuple[tuple[str, int, int], ...]  # (exchanges range, transcripts, examples)
    by_position: tuple[tuple[str, int, int], ...]  # (position range, exchanges there, of them ending an example)
    mean_appearances: float  # examples an exchange's reply is in (as the last reply or as history), on average
    max_appearances: int


LENGTH_GROUPS: tuple[tuple[int, int | None], ...] = ((1, 10), (11, 25), (26, 50), (51, 100), (101, None))


def coverage_report(result: SliceResult, positions: int = 5) -> CoverageReport:
    """Slices per transcript, and how often an exchange is the supervised last reply, by where it sits.

    An exchange is the last reply of at most one example (slice points are
    distinct); its reply also appears, as history, in every later example of
    its transcript that still holds it (SFT trains on those turns too).
    """
    per: dict[str, int] = dict.fromkeys(result.exchanges, 0)
    ends: dict[str, set[int]] = {tid: set() for tid in result.exchanges}
    appearances: dict[tuple[str, int], int] = {}
    for e in result.examples:
        per[e.transcript_id] = per.get(e.transcript_id, 0) + 1
        ends.setdefault(e.transcript_id, set()).add(e.end_exchange)
        for k in range(e.start_exchange, e.end_exchange + 1):
            appearances[(e.transcript_id, k)] = appearances.get((e.transcript_id, k), 0) + 1
    by_length = []
    for low, high in LENGTH_GROUPS:
        ids = [t for t, n in result.exchanges.items() if n >= low and (high is None or n <= high)]
        if ids:
            label = f"{low}-{high}" if high is not None else f"{low}+"
            by_length.append((label, len(ids), sum(per[t] for t in ids)))
    slots, hits = [0] * positions, [0] * positions
    for tid, n in result.exchanges.items():
        for k in range(1, n + 1):
            p = min(positions - 1, (k - 1) * positions // n)
            slots[p] += 1
            hits[p] += k in ends.get(tid, ())
    step = 100 // positions
    by_position = tuple(
        (f"{p * step}-{(p + 1) * step if p < positions - 1 else 100}%", slots[p], hits[p]) for p in range(positions)
    )
    total_exchanges = sum(result.exchanges.values())
    return CoverageReport(
        transcripts=len(per),
        examples=len(result.examples),
        per_transcript=tuple(sorted(per.values())),
        by_length=tuple(by_length),
        by_position=by_position,
        mean_appearances=sum(appearances.values()) / total_exchanges if total_exchanges else 0.0,
        max_appearances=max(appearances.values(), default=0),
    )


def format_coverage_report(report: CoverageReport) -> str:
    counts = report.per_transcript
    if not counts:
        return "slices per transcript: no transcripts"
    median = (
        counts[len(counts) // 2] if len(counts) % 2 else (counts[len(counts) // 2 - 1] + counts[len(counts) // 2]) / 2
    )
    lines = [
        f"slices per transcript: min {counts[0]}, median {median:g}, mean {report.examples / len(counts):.1f}, "
        f"max {counts[-1]}",
        "  by transcript length: "
        + "; ".join(
            f"{label} exchanges: {n} transcript{'s' if n != 1 else ''}, {ex / n:.1f} each"
            for label, n, ex in report.by_length
        ),
        "exchanges that are the supervised last reply, by position in their conversation:",
        "  "
        + "  ".join(
            f"{label} {hit / slots:.0%}" if slots else f"{label} -" for label, slots, hit in report.by_position
        ),
        f"a reply is in {report.mean_appearances:.1f} examples on average (last reply or history), "
        f"at most {report.max_appearances}",
    ]
    return "\n".join(lines)


def format_mix_plan(plan: MixPlan) -> str:
    """The mix: target, dense-late alone, planned; then what is out of reach and why."""
    lines = [
        f"length mix: target {' / '.join(f'{b.share:.0%}' for b in plan.buckets)}; "
        f"planned {' / '.join(str(p) for p in plan.planned)} examples (TVD {plan.tvd:.3f}; "
        f"dense-late alone would give {plan.natural_tvd:.3f})"
    ]
    if plan.out_of_reach:
        lines.append("out of reach for this corpus:")
        lines += [f"  {line}" for line in plan.out_of_reach]
    return "\n".join(lines)
