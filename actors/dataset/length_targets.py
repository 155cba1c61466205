"""The target length mix as data: its buckets, their rules, and how far a mix is from them.

Shared vocabulary of the planner (`actors.dataset.length_mix`), the slicer's
result (`SliceResult.plan`) and the reports (`actors.dataset.slice_reports`),
kept in a module of its own that imports nothing else of slicing so that
each of those can depend on it without depending on the others. A pack
declares its mix (`slicing.length_mix`); the therapy pack's is the spec's
20/50/25/5 % over 0–5K / 5–15K / 15–30K / 30K+ tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class TargetBucket:
    """A token range `[low, high)` (`high` None: no upper bound) and the share of examples wanted in it."""

    label: str
    low: int
    high: int | None
    share: float

    def holds(self, tokens: int) -> bool:
        return tokens >= self.low and (self.high is None or tokens < self.high)


def check_mix(mix: Sequence[TargetBucket]) -> None:
    """Buckets must start at 0, follow each other without gaps, end unbounded, and their shares sum to 1."""
    if not mix:
        raise ValueError("a length mix needs at least one bucket")
    if mix[0].low != 0:
        raise ValueError("the first bucket must start at 0 tokens")
    for a, b in pairwise(mix):
        if a.high is None or a.high != b.low:
            raise ValueError(f"bucket {b.label!r} must start where {a.label!r} ends")
    if any(b.high is not None and b.high <= b.low for b in mix):
        raise ValueError("every bucket must end above where it starts")
    if mix[-1].high is not None:
        raise ValueError("the last bucket must have no upper bound")
    if any(b.share < 0 for b in mix) or abs(sum(b.share for b in mix) - 1.0) > 1e-6:
        raise ValueError("bucket shares must be at least 0 and sum to 1")


@dataclass(frozen=True)
class MixPlan:
    """How the slices were spread over the target mix: wanted, natural (dense-late alone) and planned counts."""

    buckets: tuple[TargetBucket, ...]
    wanted: tuple[int, ...]
    planned: tuple[int, ...]
    natural: tuple[float, ...]  # expected counts with dense-late sampling and no mix
    possible: tuple[int, ...]  # exchanges in the corpus that could end a slice in each bucket
    out_of_reach: tuple[str, ...] = ()
    """One line per bucket the corpus cannot fill to its target (or has to overfill), saying why."""

    @property
    def examples(self) -> int:
        return sum(self.planned)

    @property
    def reachable(self) -> bool:
        return self.planned == self.wanted

    @property
    def tvd(self) -> float:
        """Total-variation distance of the planned mix from the target."""
        return tvd([p / self.examples if self.examples else 0.0 for p in self.planned], [b.share for b in self.buckets])

    @property
    def natural_tvd(self) -> float:
        total = sum(self.natural)
        return tvd([x / total if total else 0.0 for x in self.natural], [b.share for b in self.buckets])


def tvd(shares: Sequence[float], target: Sequence[float]) -> float:
    """Total-variation distance between two distributions over the same buckets: half the L1 distance."""
    return sum(abs(a - b) for a, b in zip(shares, target, strict=True)) / 2
