"""Slicing accepted transcripts into long-context training examples.

One transcript of n exchanges gives several examples, each "the conversation
so far, then the reply to predict": `[system, user 1, assistant 1, …, user k,
assistant k]` in the `messages` format TRL's SFTTrainer reads. Since SFT
trains on every assistant turn of an example, every one of them must come
from an accepted transcript — the caller passes only those.

Where the slices fall (`slice_points`):

- Seeded by the transcript id (sha256 of the id → `random.Random`): the same
  id always gives the same points; different ids give different points, so the
  model cannot learn a fixed slicing rhythm.
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


def transcript_seed(transcript_id: str) -> int:
    """A stable 64-bit seed: the same on every machine and run (unlike `hash()`)."""
    return int.from_bytes(hashlib.sha256(transcript_id.encode("utf-8")).digest()[:8], "big")


def slice_points(
    transcript_id: str,
    n_exchanges: int,
    *,
    min_context: int = DEFAULT_MIN_CONTEXT,
    power: int = DEFAULT_POWER,
    count: Callable[[int], int] = examples_per_transcript,
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
    rng = random.Random(transcript_seed(transcript_id))
    chosen = [n_exchanges]
    for _ in range(wanted):
        cumulative = list(accumulate(weights))
        i = bisect_left(cumulative, rng.randrange(cumulative[-1]) + 1)
        chosen.append(eligible.pop(i))
        weights.pop(i)
    return sorted(chosen)


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

    @property
    def trimmed(self) -> int:
        return sum(1 for e in self.examples if e.trimmed)

    def extend(self, other: SliceResult) -> None:
        self.examples += other.examples
        self.dropped += other.dropped


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
) -> SliceResult:
    """The examples of one transcript, in slice order, none over `max_tokens`.

    `points` overrides `slice_points` (exchange numbers, 1-based). With
    `over_limit="keep_recent"` an over-long slice keeps the most recent
    exchanges that fit; if even the target exchange alone with the system
    prompt does not fit, or with `over_limit="drop"`, the slice is dropped and
    reported in `SliceResult.dropped`.
    """
    if over_limit not in ("keep_recent", "drop"):
        raise ValueError(f"over_limit must be 'keep_recent' or 'drop', not {over_limit!r}")
    n = len(transcript.exchanges)
    result = SliceResult()
    if n == 0:
        return result
    if points is None:
        points = slice_points(transcript.id, n, min_context=min_context, power=power, count=count)
    points = sorted(set(points))
    messages = conversation(transcript, system_prompt)
    window = _Window(messages, counter)
    for k in points:
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


def slice_transcripts(
    transcripts: Iterable[TranscriptLike],
    system_prompt: str | None,
    counter: TokenCounter,
    *,
    workers: int = 1,
    **options,
) -> SliceResult:
    """`build_examples` over many transcripts; results in input order whatever `workers` is.

    Threads pay off because tokenization (llama.cpp via ctypes, HF's Rust
    tokenizers) runs without the GIL; the counter must be thread-safe.
    """

    def one(t: TranscriptLike) -> SliceResult:
        return build_examples(t, system_prompt, counter, **options)

    total = SliceResult()
    if workers <= 1:
        parts: Iterable[SliceResult] = map(one, transcripts)
        for part in parts:
            total.extend(part)
        return total
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slice") as pool:
        for part in pool.map(one, transcripts):
            total.extend(part)
    return total


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


# The spec's "Example Length Distribution (Target)".
SPEC_BUCKETS: tuple[tuple[str, int, int | None, float], ...] = (
    ("Short (0-5K)", 0, 5_000, 0.20),
    ("Medium (5-15K)", 5_000, 15_000, 0.50),
    ("Long (15-30K)", 15_000, 30_000, 0.25),
    ("Very long (30K+)", 30_000, None, 0.05),
)


def length_report(examples: Iterable[Example | int]) -> LengthReport:
    """Counts, shares and average tokens per spec bucket (examples or plain token counts)."""
    counts = [e if isinstance(e, int) else e.token_count for e in examples]
    buckets = []
    for label, low, high, target in SPEC_BUCKETS:
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
    return "\n".join(lines)
