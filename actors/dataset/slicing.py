"""Slicing accepted transcripts into long-context training examples.

One transcript of n exchanges gives several examples, each "the conversation
so far, then the reply to predict": `[system, user 1, assistant 1, …, user k,
assistant k]` in the `messages` format TRL's SFTTrainer reads. Since SFT
trains on every assistant turn of an example, every one of them must come
from an accepted transcript — the caller passes only those.

Where the slices fall (`slice_points`):

- Seeded by the transcript id and the slice seed (sha256 of both →
  `random.Random`; seed 0 hashes the id alone): the same id and seed always
  give the same points; different ids give different points, so the model
  cannot learn a fixed slicing rhythm.
- Count: `examples_per_transcript(n)`, interpolated between the spec's
  ratios (20 exchanges → 5, 50 → 12, 75 → 15, 100 → 20); pass `count=` to change it.
- The final exchange is always a slice (the whole conversation is the richest example).
- The other slices are drawn without replacement from exchanges
  `min_context … n-1`, exchange k weighted `(k - min_context + 1) ** power`
  (power 2 by default): sparse early, dense late. With integer weights and
  `randrange` the draw involves no floating point, so it is the same on every
  platform and Python version.
- Never before `min_context` exchanges. A transcript shorter than that (a
  "very short" one) gives exactly one slice: its final exchange.

With a target length mix (`slice_transcripts(mix=…)`, the pack's
`slicing.length_mix`: shares of examples per token bucket, the spec's 20/50/25/5 %
over 0–5K / 5–15K / 15–30K / 30K+), where the slices fall is planned over the
whole corpus instead (`plan_mix`). The corpus keeps the spec's total count;
a transcript's own count may move up to `count_flex` (default half) from the
spec's count for its length, so long transcripts can give more when the long
buckets need them and short ones fewer:

1. Every exchange that may end a slice is put in the bucket of its slice's
   token count (exact prefix sums; an over-long slice by its trimmed size).
2. Each transcript's "natural" share per bucket is the share of its dense-late
   weight there; rounded, these give a first allocation of its slices to buckets.
3. Slices are then moved between buckets one at a time, always by the cheapest
   move (a convex penalty for leaving a transcript's natural allocation) along
   a path from a bucket over its target to one under it — within one
   transcript, or one slice fewer in one and one more in another — until
   every bucket holds its target count or no such path is left. This is
   augmenting paths in a flow over the buckets: it stops short of the mix
   only when no chain of moves can bring an under-filled bucket closer.
4. Inside each bucket a transcript's points are drawn as above (dense-late
   weights, seeded), so the final exchange is still always a slice.

The plan depends on the whole corpus, so a transcript's slices can change when
others are added; the same corpus, options and seed give the same slices.
When the corpus cannot reach the mix the plan says which buckets fall short
and why (`MixPlan.out_of_reach`).

Token counts (`build_examples`) come from a `TokenCounter`'s per-turn counts,
computed once per transcript; every slice's count is a difference of prefix
sums, so slicing a transcript costs one tokenization of it, not one per slice.
A slice over `max_tokens` is either trimmed — the oldest exchanges are
dropped until it fits, keeping the system prompt and still ending on the
target reply — or dropped and counted.

No I/O here; `slice_transcripts` may use threads because tokenizers release
the GIL.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Literal, Protocol

from .tokens import Message, TokenCounter

OverLimit = Literal["keep_recent", "drop"]
DEFAULT_MAX_TOKENS = 120_000
DEFAULT_MIN_CONTEXT = 3
DEFAULT_POWER = 2
DEFAULT_COUNT_FLEX = 0.5

# (exchanges, examples) from the spec's "Source Transcript Generation" table:
# 31×20 → ~155, 78×50 → ~936, 39×75 → ~585, 7×100 → ~140.
SPEC_RATIOS: tuple[tuple[int, int], ...] = ((20, 5), (50, 12), (75, 15), (100, 20))


class ExchangeLike(Protocol):
    number: int
    user: str
    assistant: str


class TranscriptLike(Protocol):
    id: str
    exchanges: Sequence[ExchangeLike]


# --- where to slice -------------------------------------------------------------------------------


def examples_per_transcript(n_exchanges: int, ratios: Sequence[tuple[int, int]] = SPEC_RATIOS) -> int:
    """How many examples a transcript of `n_exchanges` gives: piecewise-linear through `ratios`.

    Below the first point and above the last the first/last ratio is kept
    (20 → 5 means 8 → 2; 100 → 20 means 150 → 30). At least 1.
    """
    if n_exchanges <= 0:
        return 0
    points = sorted(ratios)
    (x0, y0), (xn, yn) = points[0], points[-1]
    if n_exchanges <= x0:
        value = n_exchanges * y0 / x0
    elif n_exchanges >= xn:
        value = n_exchanges * yn / xn
    else:
        for (xa, ya), (xb, yb) in pairwise(points):
            if xa <= n_exchanges <= xb:
                value = ya + (yb - ya) * (n_exchanges - xa) / (xb - xa)
                break
    return max(1, int(value + 0.5))


def transcript_seed(transcript_id: str, seed: int = 0) -> int:
    """A stable 64-bit seed from the id and the slice seed: the same on every machine and run (unlike `hash()`).

    Seed 0 hashes the id alone, as before the slice seed existed, so existing datasets keep their points.
    """
    key = transcript_id if seed == 0 else f"{seed}\x00{transcript_id}"
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def _weighted_draw(rng: random.Random, pool: list[int], weights: list[int], wanted: int) -> list[int]:
    """`wanted` items of `pool` without replacement, each draw weighted; integers only (platform-independent)."""
    pool, weights, chosen = list(pool), list(weights), []
    for _ in range(min(wanted, len(pool))):
        cumulative = list(accumulate(weights))
        i = bisect_left(cumulative, rng.randrange(cumulative[-1]) + 1)
        chosen.append(pool.pop(i))
        weights.pop(i)
    return chosen


def slice_points(
    transcript_id: str,
    n_exchanges: int,
    *,
    min_context: int = DEFAULT_MIN_CONTEXT,
    power: int = DEFAULT_POWER,
    count: Callable[[int], int] = examples_per_transcript,
    seed: int = 0,
) -> list[int]:
    """The exchange numbers (1-based, ascending) that end an example. See the module docstring for the rule."""
    if n_exchanges <= 0:
        return []
    if min_context < 1:
        raise ValueError("min_context must be at least 1")
    if n_exchanges <= min_context:
        return [n_exchanges]
    eligible = list(range(min_context, n_exchanges))  # the final exchange is added separately
    wanted = min(max(1, count(n_exchanges)) - 1, len(eligible))
    weights = [(k - min_context + 1) ** power for k in eligible]
    rng = random.Random(transcript_seed(transcript_id, seed))
    return sorted([n_exchanges, *_weighted_draw(rng, eligible, weights, wanted)])


# --- examples -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One training example. `messages` ends on the assistant reply of `end_exchange`.

    `start_exchange` is 1 unless the slice was trimmed to fit the token limit.
    The message dicts may be shared between examples of one transcript: treat
    them as read-only.
    """

    transcript_id: str
    end_exchange: int
    start_exchange: int
    token_count: int
    messages: list[Message]

    @property
    def trimmed(self) -> bool:
        return self.start_exchange > 1


@dataclass(frozen=True)
class DroppedSlice:
    transcript_id: str
    end_exchange: int
    token_count: int  # of the untrimmed slice
    reason: str


@dataclass
class SliceResult:
    examples: list[Example] = field(default_factory=list)
    dropped: list[DroppedSlice] = field(default_factory=list)
    exchanges: dict[str, int] = field(default_factory=dict)
    """Transcript id → its number of exchanges, for every transcript sliced (the coverage report's denominators)."""
    plan: MixPlan | None = None
    """How the slices were spread over the target length mix (None: no mix asked for)."""

    @property
    def trimmed(self) -> int:
        return sum(1 for e in self.examples if e.trimmed)

    def extend(self, other: SliceResult) -> None:
        self.examples += other.examples
        self.dropped += other.dropped
        self.exchanges.update(other.exchanges)


def conversation(transcript: TranscriptLike, system_prompt: str | None) -> list[Message]:
    """The whole transcript as chat messages, system prompt first (if any)."""
    messages: list[Message] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for ex in transcript.exchanges:
        messages.append({"role": "user", "content": ex.user})
        messages.append({"role": "assistant", "content": ex.assistant})
    return messages


class _Window:
    """Token counts of `[system?, user j, assistant j, …, user k, assistant k]` from prefix sums.

    For j = 1 it is a prefix sum. For j > 1 the first kept user turn carries
    the system prompt (and BOS), so its count is taken exactly from the counter
    — one small tokenization per distinct j, cached — and the rest are sums of
    turn counts, which do not depend on what precedes them.
    """

    def __init__(self, messages: list[Message], counter: TokenCounter):
        self.messages = messages
        self.counter = counter
        self.offset = 1 if messages and messages[0]["role"] == "system" else 0
        self.prefix = [0, *accumulate(counter.segment_counts(messages))]
        self._openings: dict[int, int] = {}

    def user_index(self, j: int) -> int:
        return self.offset + 2 * (j - 1)

    def total(self, j: int, k: int) -> int:
        end = self.user_index(k) + 2
        if j == 1:
            return self.prefix[end]
        after_user = self.user_index(j) + 1
        return self.opening(j) + self.prefix[end] - self.prefix[after_user]

    def estimate(self, j: int, k: int) -> int:
        """`total` without the exact opening: the system's share is taken from exchange 1."""
        if j == 1:
            return self.total(1, k)
        system_share = self.prefix[self.offset]
        return system_share + self.prefix[self.user_index(k) + 2] - self.prefix[self.user_index(j)]

    def opening(self, j: int) -> int:
        if j not in self._openings:
            head = [*self.messages[: self.offset], self.messages[self.user_index(j)]]
            self._openings[j] = self.counter.count_messages(head)
        return self._openings[j]

    def slice(self, j: int, k: int) -> list[Message]:
        return self.messages[: self.offset] + self.messages[self.user_index(j) : self.user_index(k) + 2]

    def fit(self, k: int, budget: int) -> int | None:
        """The smallest start j (most history) whose window ending at k fits, or None."""
        lo, hi = 1, k  # the estimate falls as j grows: bisect for the first j under budget
        while lo < hi:
            mid = (lo + hi) // 2
            if self.estimate(mid, k) <= budget:
                hi = mid
            else:
                lo = mid + 1
        j = lo
        while j <= k and self.total(j, k) > budget:
            j += 1
        if j > k:
            return None
        while j > 1 and self.total(j - 1, k) <= budget:
            j -= 1
        return j


def build_examples(
    transcript: TranscriptLike,
    system_prompt: str | None,
    counter: TokenCounter,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    over_limit: OverLimit = "keep_recent",
    min_context: int = DEFAULT_MIN_CONTEXT,
    points: Sequence[int] | None = None,
    power: int = DEFAULT_POWER,
    count: Callable[[int], int] = examples_per_transcript,
    seed: int = 0,
) -> SliceResult:
    """The examples of one transcript, in slice order, none over `max_tokens`.

    `points` overrides `slice_points` (exchange numbers, 1-based). With
    `over_limit="keep_recent"` an over-long slice keeps the most recent
    exchanges that fit; if even the target exchange alone with the system
    prompt does not fit, or with `over_limit="drop"`, the slice is dropped and
    reported in `SliceResult.dropped`.
    """
    _check_over_limit(over_limit)
    n = len(transcript.exchanges)
    if n == 0:
        return SliceResult(exchanges={transcript.id: 0})
    if points is None:
        points = slice_points(transcript.id, n, min_context=min_context, power=power, count=count, seed=seed)
    window = _Window(conversation(transcript, system_prompt), counter)
    return _examples_at(transcript, window, points, max_tokens, over_limit)


def _check_over_limit(over_limit: str) -> None:
    if over_limit not in ("keep_recent", "drop"):
        raise ValueError(f"over_limit must be 'keep_recent' or 'drop', not {over_limit!r}")


def _examples_at(
    transcript: TranscriptLike, window: _Window, points: Sequence[int], max_tokens: int, over_limit: OverLimit
) -> SliceResult:
    """The examples ending at `points` (1-based positions), trimmed or dropped as `over_limit` says."""
    n = len(transcript.exchanges)
    result = SliceResult(exchanges={transcript.id: n})
    for k in sorted(set(points)):
        if not 1 <= k <= n:
            raise ValueError(f"slice point {k} outside 1..{n}")
        end_number = transcript.exchanges[k - 1].number
        tokens = window.total(1, k)
        start = 1
        if tokens > max_tokens:
            fitted = window.fit(k, max_tokens) if over_limit == "keep_recent" else None
            if fitted is None:
                reason = "over the limit" if over_limit == "drop" else "the target exchange alone is over the limit"
                result.dropped.append(DroppedSlice(transcript.id, end_number, tokens, reason))
                continue
            start, tokens = fitted, window.total(fitted, k)
        result.examples.append(
            Example(
                transcript_id=transcript.id,
                end_exchange=end_number,
                start_exchange=transcript.exchanges[start - 1].number,
                token_count=tokens,
                messages=window.slice(start, k),
            )
        )
    return result


def _map(fn, items, workers: int) -> list:
    if workers <= 1:
        return list(map(fn, items))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slice") as pool:
        return list(pool.map(fn, items))


def slice_transcripts(
    transcripts: Iterable[TranscriptLike],
    system_prompt: str | None,
    counter: TokenCounter,
    *,
    workers: int = 1,
    mix: Sequence[TargetBucket] | None = None,
    count_flex: float = DEFAULT_COUNT_FLEX,
    **options,
) -> SliceResult:
    """`build_examples` over many transcripts; results in input order whatever `workers` is.

    With `mix` (target shares per token bucket) the slice points are planned
    over the whole corpus to approach it (`plan_mix`; the module docstring has
    the rule) and `SliceResult.plan` reports how close it came; `count_flex`
    is how far a transcript's slice count may move from the spec's count for
    its length to get there. `options` are `build_examples`'s (`points` only
    without a mix).

    Threads pay off because tokenization (llama.cpp via ctypes, HF's Rust
    tokenizers) runs without the GIL; the counter must be thread-safe.
    """
    if not mix:

        def one(t: TranscriptLike) -> SliceResult:
            return build_examples(t, system_prompt, counter, **options)

        total = SliceResult()
        for part in _map(one, transcripts, workers):
            total.extend(part)
        return total

    if "points" in options:
        raise ValueError("points and mix exclude each other: the mix chooses the points")
    unknown = set(options) - {"max_tokens", "over_limit", "min_context", "power", "count", "seed"}
    if unknown:
        raise TypeError(f"unexpected slicing options: {', '.join(sorted(unknown))}")
    mix = tuple(mix)
    check_mix(mix)
    max_tokens = options.get("max_tokens", DEFAULT_MAX_TOKENS)
    over_limit = options.get("over_limit", "keep_recent")
    _check_over_limit(over_limit)
    min_context = options.get("min_context", DEFAULT_MIN_CONTEXT)
    power = options.get("power", DEFAULT_POWER)
    count = options.get("count", examples_per_transcript)
    seed = options.get("seed", 0)
    if min_context < 1:
        raise ValueError("min_context must be at least 1")
    if not 0 <= count_flex <= 1:
        raise ValueError("count_flex must be between 0 and 1")

    def candidates(t: TranscriptLike) -> _Candidates:
        window = _Window(conversation(t, system_prompt), counter) if t.exchanges else None
        return _Candidates.of(t, window, mix, max_tokens, over_limit, min_context, power, count)

    cands = _map(candidates, list(transcripts), workers)
    quotas, plan = plan_mix(cands, mix, max_tokens=max_tokens, min_context=min_context, count_flex=count_flex)

    def build(item: tuple[_Candidates, list[int]]) -> SliceResult:
        c, quota = item
        if c.window is None:
            return SliceResult(exchanges={c.transcript.id: 0})
        rng = random.Random(transcript_seed(c.transcript.id, seed))
        points = [c.n]
        for b, wanted in enumerate(quota):
            pool = [k for k, kb in zip(c.eligible, c.buckets, strict=True) if kb == b]
            weights = [w for w, kb in zip(c.weights, c.buckets, strict=True) if kb == b]
            points += _weighted_draw(rng, pool, weights, wanted)
        return _examples_at(c.transcript, c.window, points, max_tokens, over_limit)

    total = SliceResult(plan=plan)
    for part in _map(build, list(zip(cands, quotas, strict=True)), workers):
        total.extend(part)
    return total


# --- planning slices toward a length mix --------------------------------------------------------------


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


def _bucket_of(lows: Sequence[int], tokens: int) -> int:
    return bisect_left(lows, tokens + 1) - 1


@dataclass
class _Candidates:
    """Where one transcript's slices may end, and in which bucket each would fall."""

    transcript: TranscriptLike
    window: _Window | None
    n: int
    eligible: list[int]  # positions that may end a non-final slice (never one that would be dropped)
    weights: list[int]  # their dense-late weights
    buckets: list[int]  # their buckets
    tokens: list[int]  # their (planned) token counts
    final_bucket: int | None  # the final slice's bucket; None if it would be dropped
    final_tokens: int | None
    wanted: int  # non-final slices to place

    @classmethod
    def of(cls, t, window, mix, max_tokens, over_limit, min_context, power, count) -> _Candidates:
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


def _natural(c: _Candidates, size: int) -> list[float]:
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
    cands: Sequence[_Candidates],
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
