"""Planning where the slices fall so that the examples approach a target length mix.

Why a planner: dense-late slicing alone makes examples long (on a realistic
corpus the spec's 20/50/25/5 % over 0–5K / 5–15K / 15–30K / 30K+ came out
2/43/36/19 %). With a target mix (`slicing.length_mix` in the pack: shares of
examples per token bucket), the slice points are planned over the whole
corpus instead. The corpus keeps the spec's total count; a transcript's own
count may move up to `count_flex` (default half) from the spec's count for its
length, so long transcripts can give more when the long buckets need them and
short ones fewer:

1. Every exchange that may end a slice is put in the bucket of its slice's
   token count (exact prefix sums from the transcript's `Window`; an
   over-long slice by its trimmed size).
2. Each transcript's "natural" share per bucket is the share of its dense-late
   weight there; rounded, these give a first allocation of its slices to buckets.
3. Slices are then moved between buckets one at a time, always by the cheapest
   move (a convex penalty for leaving a transcript's natural allocation) along
   a path from a bucket over its target to one under it — within one
   transcript, or one slice fewer in one and one more in another — until
   every bucket holds its target count or no such path is left. This is
   augmenting paths in a flow over the buckets: it stops short of the mix
   only when no chain of moves can bring an under-filled bucket closer.
4. Inside each bucket a transcript's points are drawn as without a mix
   (`mix_points`: dense-late weights, seeded), so the final exchange is still
   always a slice.

The plan depends on the whole corpus, so a transcript's slices can change when
others are added; the same corpus, options and seed give the same slices.
When the corpus cannot reach the mix the plan says which buckets fall short
and why (`MixPlan.out_of_reach`). Pure logic: no I/O, no tokenizer calls
beyond the window's.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from .length_targets import MixPlan, TargetBucket
from .slice_placement import DEFAULT_MIN_CONTEXT, transcript_seed, weighted_draw
from .slice_windows import DEFAULT_MAX_TOKENS, TranscriptLike, Window

DEFAULT_COUNT_FLEX = 0.5


def _bucket_of(lows: Sequence[int], tokens: int) -> int:
    return bisect_left(lows, tokens + 1) - 1


@dataclass
class Candidates:
    """Where one transcript's slices may end, and in which bucket each would fall."""

    transcript: TranscriptLike
    window: Window | None
    n: int
    eligible: list[int]  # positions that may end a non-final slice (never one that would be dropped)
    weights: list[int]  # their dense-late weights
    buckets: list[int]  # their buckets
    tokens: list[int]  # their (planned) token counts
    final_bucket: int | None  # the final slice's bucket; None if it would be dropped
    final_tokens: int | None
    wanted: int  # non-final slices to place

    @classmethod
    def of(cls, t, window, mix, max_tokens, over_limit, min_context, power, count) -> Candidates:
        n = len(t.exchanges)
        if window is None or n == 0:
            return cls(t, None, 0, [], [], [], [], None, None, 0)
        lows = [b.low for b in mix]

        def planned(k: int) -> int | None:
            tokens = window.total(1, k)
            if tokens <= max_tokens:
                return tokens
            if over_limit == "drop":
                return None
            # Trimmed: the most history whose estimate fits (exact counts come when the example is built).
            lo, hi = 1, k + 1
            while lo < hi:
                mid = (lo + hi) // 2
                if window.estimate(mid, k) <= max_tokens:
                    hi = mid
                else:
                    lo = mid + 1
            return None if lo > k else window.estimate(lo, k)

        eligible, weights, buckets, tokens = [], [], [], []
        if n > min_context:
            for k in range(min_context, n):
                planned_k = planned(k)
                if planned_k is not None:
                    eligible.append(k)
                    weights.append((k - min_context + 1) ** power)
                    buckets.append(_bucket_of(lows, planned_k))
                    tokens.append(planned_k)
        final = planned(n)
        wanted = 0 if n <= min_context else min(max(1, count(n)) - 1, len(eligible))
        final_bucket = None if final is None else _bucket_of(lows, final)
        return cls(t, window, n, eligible, weights, buckets, tokens, final_bucket, final, wanted)


def _largest_remainder(total: int, fractions: Sequence[float], caps: Sequence[int] | None = None) -> list[int]:
    """Integers summing to `total` (as far as `caps` allow), each the floor of its fraction or one more."""
    caps = caps if caps is not None else [total] * len(fractions)
    out = [min(int(f), c) for f, c in zip(fractions, caps, strict=True)]
    order = sorted(range(len(fractions)), key=lambda i: (-(fractions[i] - int(fractions[i])), i))
    left = total - sum(out)
    while left > 0:
        progressed = False
        for i in order:
            if left and out[i] < caps[i]:
                out[i] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return out


def _natural(c: Candidates, size: int) -> list[float]:
    """Expected slices per bucket of a transcript with dense-late sampling alone: its weight's shares, capped."""
    caps = [0] * size
    mass = [0] * size
    for b, w in zip(c.buckets, c.weights, strict=True):
        caps[b] += 1
        mass[b] += w
    out = [0.0] * size
    free, left = [b for b in range(size) if caps[b]], float(c.wanted)
    while free and left > 1e-12:
        total = sum(mass[b] for b in free)
        over = [b for b in free if left * mass[b] / total > caps[b]]
        if not over:
            for b in free:
                out[b] = left * mass[b] / total
            break
        for b in over:
            out[b] = float(caps[b])
            left -= caps[b]
            free.remove(b)
    return out


def plan_mix(
    cands: Sequence[Candidates],
    mix: Sequence[TargetBucket],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    min_context: int = DEFAULT_MIN_CONTEXT,
    count_flex: float = DEFAULT_COUNT_FLEX,
) -> tuple[list[list[int]], MixPlan]:
    """Per transcript, how many non-final slices go to each bucket; and the plan's report.

    A transcript's count may move `count_flex` of its spec count either way
    (0.5: 12 → 6…18, never more than its eligible exchanges); the corpus total
    stays the spec's. Deterministic: no randomness, ties broken by transcript
    id and bucket order.
    """
    size = len(mix)
    caps = [[0] * size for _ in cands]
    for t, c in enumerate(cands):
        for b in c.buckets:
            caps[t][b] += 1
    natural = [_natural(c, size) for c in cands]
    quota = [_largest_remainder(c.wanted, nat, cap) for c, nat, cap in zip(cands, natural, caps, strict=True)]
    fixed = [0] * size
    for c in cands:
        if c.final_bucket is not None:
            fixed[c.final_bucket] += 1
    examples = sum(fixed) + sum(sum(q) for q in quota)
    wanted = _largest_remainder(examples, [b.share * examples for b in mix])
    counts = [fixed[b] + sum(q[b] for q in quota) for b in range(size)]

    # Marginal penalties of one more (step +1) or one fewer (-1) slice. In bucket b of transcript t, the
    # convex cost (q - natural)^2 / (natural + 1/4) keeps each transcript near its own dense-late shape;
    # on a transcript's count, (r - wanted)^2 / (wanted + 1) keeps it near the spec's count for its length.
    rows = [sum(q) for q in quota]
    low = [c.wanted - math.floor(c.wanted * count_flex) for c in cands]
    high = [min(len(c.eligible), c.wanted + math.ceil(c.wanted * count_flex)) for c in cands]

    def shape(t: int, b: int, step: int) -> float:
        nat = natural[t][b]
        return (1 + 2 * step * (quota[t][b] - nat)) / (nat + 0.25)

    def recount(t: int, step: int) -> float:
        m = cands[t].wanted
        return (1 + 2 * step * (rows[t] - m)) / (m + 1)

    rank = {t: r for r, t in enumerate(sorted(range(len(cands)), key=lambda t: cands[t].transcript.id))}
    version = [0] * len(cands)
    Entry = tuple[float, int, int, int]  # (cost, rank, transcript, version)
    within: dict[tuple[int, int], list[Entry]] = {(a, b): [] for a in range(size) for b in range(size) if a != b}
    takes: list[list[Entry]] = [[] for _ in range(size)]  # one slice fewer in bucket a (and in its transcript)
    gives: list[list[Entry]] = [[] for _ in range(size)]  # one slice more in bucket b (and in its transcript)

    def push(t: int) -> None:
        r, v, q = rank[t], version[t], quota[t]
        for a in range(size):
            if q[a] > 0:
                if rows[t] > low[t]:
                    heapq.heappush(takes[a], (shape(t, a, -1) + recount(t, -1), r, t, v))
                for b in range(size):
                    if b != a and q[b] < caps[t][b]:
                        heapq.heappush(within[(a, b)], (shape(t, a, -1) + shape(t, b, +1), r, t, v))
            if q[a] < caps[t][a] and rows[t] < high[t]:
                heapq.heappush(gives[a], (shape(t, a, +1) + recount(t, +1), r, t, v))

    def top(heap: list[Entry]) -> Entry | None:
        while heap and heap[0][3] != version[heap[0][2]]:
            heapq.heappop(heap)
        return heap[0] if heap else None

    Move = tuple[int, int | None, int | None]  # (transcript, bucket losing a slice, bucket gaining one)

    def edge(a: int, b: int) -> tuple[float, tuple[Move, ...]] | None:
        """The cheapest way to turn a slice of bucket a into one of bucket b: in one transcript, or two."""
        options = []
        inside = top(within[(a, b)])
        if inside is not None:
            options.append((inside[0], ((inside[2], a, b),)))
        take, give = top(takes[a]), top(gives[b])
        if take is not None and give is not None and take[2] != give[2]:
            options.append((take[0] + give[0], ((take[2], a, None), (give[2], None, b))))
        return min(options, default=None)

    def apply(moves: Sequence[Move], check: bool) -> bool:
        """Apply `moves` (or, with `check`, only say whether every one keeps its transcript within bounds)."""
        q = {t: list(quota[t]) for t, _, _ in moves}
        n = {t: rows[t] for t, _, _ in moves}
        for t, a, b in moves:
            if a is not None:
                q[t][a] -= 1
                n[t] -= b is None
            if b is not None:
                q[t][b] += 1
                n[t] += a is None
            if (a is not None and q[t][a] < 0) or (b is not None and q[t][b] > caps[t][b]):
                return False
            if not low[t] <= n[t] <= high[t]:
                return False
        if not check:
            for t in q:
                quota[t], rows[t] = q[t], n[t]
                version[t] += 1
                push(t)
        return True

    for t in range(len(cands)):
        push(t)
    while True:
        over = [b for b in range(size) if counts[b] > wanted[b]]
        under = {b for b in range(size) if counts[b] < wanted[b]}
        if not over or not under:
            break
        edges = {(a, b): edge(a, b) for a in range(size) for b in range(size) if a != b}
        paths = []
        stack = [(s,) for s in over]
        while stack:  # simple paths over at most `size` buckets: a handful
            path = stack.pop()
            for b in range(size):
                if b in path or edges[(path[-1], b)] is None:
                    continue
                longer = (*path, b)
                if b in under:
                    steps = [edges[pair] for pair in pairwise(longer)]
                    paths.append(
                        (sum(cost for cost, _ in steps), len(longer), longer, [m for _, ms in steps for m in ms])
                    )
                else:
                    stack.append(longer)
        chosen = next((p for p in sorted(paths, key=lambda p: p[:3]) if apply(p[3], check=True)), None)
        if chosen is None:
            break
        apply(chosen[3], check=False)
        counts[chosen[2][0]] -= 1
        counts[chosen[2][-1]] += 1

    possible = [fixed[b] + sum(cap[b] for cap in caps) for b in range(size)]
    plan = MixPlan(
        buckets=tuple(mix),
        wanted=tuple(wanted),
        planned=tuple(counts),
        natural=tuple(fixed[b] + sum(nat[b] for nat in natural) for b in range(size)),
        possible=tuple(possible),
        out_of_reach=tuple(
            _why_out_of_reach(cands, mix, wanted, counts, possible, fixed, caps, (low, high), max_tokens, min_context)
        ),
    )
    return quota, plan


def _why_out_of_reach(cands, mix, wanted, counts, possible, fixed, caps, bounds, max_tokens, min_context) -> list[str]:
    """One line per bucket off its target: how far, and the first reason that explains it."""
    low, high = bounds
    forced = [fixed[b] + sum(max(0, low[t] - sum(cap) + cap[b]) for t, cap in enumerate(caps)) for b in range(len(mix))]
    stuck = [mix[b].label for b in range(len(mix)) if counts[b] > wanted[b] and forced[b] >= counts[b]]
    lines = []
    every = [tok for c in cands for tok in c.tokens] + [c.final_tokens for c in cands if c.final_tokens is not None]
    for b, bucket in enumerate(mix):
        short, extra = wanted[b] - counts[b], counts[b] - wanted[b]
        head = f"{bucket.label}: {counts[b]} examples, {wanted[b]} wanted ({bucket.share:.0%})"
        if short > 0:
            if possible[b] == 0:
                if bucket.low >= max_tokens:
                    why = f"no example may have more than {max_tokens:,} tokens (--max-tokens)"
                elif every and max(every) < bucket.low:
                    why = f"no transcript is long enough: the longest possible example has {max(every):,} tokens"
                elif every and bucket.high is not None and min(every) >= bucket.high:
                    why = (
                        f"every possible example is longer: the shortest, ending at exchange {min_context} "
                        f"(--min-context) or at a short transcript's end, has {min(every):,} tokens"
                    )
                else:
                    why = "no exchange ends an example of this length (consecutive slices jump over the range)"
            elif possible[b] < wanted[b]:
                why = f"only {possible[b]} exchanges in the corpus end an example of this length"
            elif stuck:
                why = (
                    f"a slice could come here only from a bucket over its target ({', '.join(stuck)}), "
                    "and every slice there can fall nowhere else"
                )
            else:
                holders = [t for t in range(len(cands)) if caps[t][b] or cands[t].final_bucket == b]
                slots = sum(high[t] + (cands[t].final_bucket is not None) for t in holders)
                why = (
                    f"the {len(holders)} transcripts that reach it give at most {slots} slices in all (a "
                    "transcript's slice count stays near the spec's count for its length)"
                    + (", and the other buckets' targets need the rest" if slots >= wanted[b] else "")
                )
            lines.append(f"{head}: {short} out of reach: {why}")
        elif extra > 0:
            if fixed[b] > wanted[b]:
                why = f"every transcript's final exchange is a slice, and {fixed[b]} of them fall here"
            elif forced[b] > wanted[b]:
                why = (
                    f"{forced[b]} slices can fall nowhere else (final exchanges, and the fewest slices of "
                    "transcripts that reach no other bucket)"
                )
            else:
                why = "the buckets short of their target cannot take more slices (see there)"
            lines.append(f"{head}: {extra} over: {why}")
    return lines


def mix_points(c: Candidates, quota: Sequence[int], seed: int) -> list[int]:
    """The slice points of one transcript under the plan: its final exchange, and `quota[b]` drawn in bucket b."""
    rng = random.Random(transcript_seed(c.transcript.id, seed))
    points = [c.n]
    for b, wanted in enumerate(quota):
        pool = [k for k, kb in zip(c.eligible, c.buckets, strict=True) if kb == b]
        weights = [w for w, kb in zip(c.weights, c.buckets, strict=True) if kb == b]
        points += weighted_draw(rng, pool, weights, wanted)
    return points
