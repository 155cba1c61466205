"""Slicing accepted transcripts into long-context training examples: the entry point.

`slice_transcripts` turns a corpus into examples, optionally planned toward a
target length mix. The pieces live in modules named for what they hold, so
each can be read (and tested) on its own:

- `actors.dataset.slice_placement`: where one transcript's slices fall —
  seeded by transcript id and slice seed, sparse early and dense late, never
  before `min_context`, the final exchange always included.
- `actors.dataset.slice_windows`: the examples themselves — the messages of
  each window and their exact token counts from per-turn prefix sums, trimmed
  or dropped at `max_tokens`.
- `actors.dataset.length_targets`: the target length mix as data (buckets,
  their rules, the plan's summary, the distance between two mixes).
- `actors.dataset.length_mix`: the planner that spreads slices over the
  pack's length mix (`slicing.length_mix`), and says which buckets are out of
  reach and why.
- `actors.dataset.slice_reports`: the length, coverage and mix-plan reports.

Every name other modules and tests import from here is re-exported below, so
`from actors.dataset.slicing import …` keeps working.

Speed: counting is the whole cost of slicing, and each transcript is counted
once — `Window` asks the `TokenCounter` for its per-turn counts a single
time, and every slice, trimmed window and planned candidate reads prefix sums
from it. The Gemma 3 counter (`actors.dataset.gguf_vocab`) counts each new
chunk of text once per process and sums cached chunks in C, so a corpus costs
about as much as a proxy tokenizer reading it once. No I/O here; threads pay
off because tokenization runs without the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .length_mix import DEFAULT_COUNT_FLEX, Candidates, mix_points, plan_mix
from .length_targets import MixPlan, TargetBucket, check_mix, tvd
from .slice_placement import (
    DEFAULT_MIN_CONTEXT,
    DEFAULT_POWER,
    SPEC_RATIOS,
    examples_per_transcript,
    slice_points,
    transcript_seed,
)
from .slice_reports import (
    LENGTH_GROUPS,
    SPEC_BUCKETS,
    SPEC_MIX,
    Bucket,
    CoverageReport,
    LengthReport,
    coverage_report,
    format_coverage_report,
    format_length_report,
    format_mix_plan,
    length_report,
)
from .slice_windows import (
    DEFAULT_MAX_TOKENS,
    DroppedSlice,
    Example,
    ExchangeLike,
    OverLimit,
    SliceResult,
    TranscriptLike,
    Window,
    build_examples,
    check_over_limit,
    conversation,
    examples_at,
)
from .tokens import TokenCounter

__all__ = [
    "DEFAULT_COUNT_FLEX",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MIN_CONTEXT",
    "DEFAULT_POWER",
    "LENGTH_GROUPS",
    "SPEC_BUCKETS",
    "SPEC_MIX",
    "SPEC_RATIOS",
    "Bucket",
    "CoverageReport",
    "DroppedSlice",
    "Example",
    "ExchangeLike",
    "LengthReport",
    "MixPlan",
    "OverLimit",
    "Progress",
    "SliceResult",
    "TargetBucket",
    "TranscriptLike",
    "build_examples",
    "check_mix",
    "conversation",
    "coverage_report",
    "examples_per_transcript",
    "format_coverage_report",
    "format_length_report",
    "format_mix_plan",
    "length_report",
    "plan_mix",
    "slice_points",
    "slice_transcripts",
    "transcript_seed",
    "tvd",
]

Progress = Callable[[int, int], None]
"""`on_progress(done, total)`: transcripts counted so far, of all (not `actors.usecases.progress.OnProgress`)."""

T = TypeVar("T")
R = TypeVar("R")


def _map(fn: Callable[[T], R], items: Sequence[T], workers: int, on_progress: Progress | None = None) -> list[R]:
    """`fn` over `items` in order, on `workers` threads; `on_progress` hears each result in the calling thread."""
    out: list[R] = []
    if workers <= 1:
        results = map(fn, items)
        for result in results:
            out.append(result)
            if on_progress is not None:
                on_progress(len(out), len(items))
        return out
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slice") as pool:
        for result in pool.map(fn, items):
            out.append(result)
            if on_progress is not None:
                on_progress(len(out), len(items))
    return out


def slice_transcripts(
    transcripts: Iterable[TranscriptLike],
    system_prompt: str | None,
    counter: TokenCounter,
    *,
    workers: int = 1,
    mix: Sequence[TargetBucket] | None = None,
    count_flex: float = DEFAULT_COUNT_FLEX,
    on_progress: Progress | None = None,
    **options,
) -> SliceResult:
    """`build_examples` over many transcripts; results in input order whatever `workers` is.

    With `mix` (target shares per token bucket) the slice points are planned
    over the whole corpus to approach it (`plan_mix`; `actors.dataset.length_mix`
    has the rule) and `SliceResult.plan` reports how close it came; `count_flex`
    is how far a transcript's slice count may move from the spec's count for
    its length to get there. `options` are `build_examples`'s (`points` only
    without a mix).

    `on_progress(done, total)`, if given, is called from the calling thread as
    each transcript's token counts are done — the slow part of slicing (with a
    mix, before the plan; the examples are then assembled from those counts).

    Threads pay off because tokenization (llama.cpp via ctypes) runs without
    the GIL; the counter must be thread-safe.
    """
    transcripts = list(transcripts)
    if not mix:

        def one(t: TranscriptLike) -> SliceResult:
            return build_examples(t, system_prompt, counter, **options)

        total = SliceResult()
        for part in _map(one, transcripts, workers, on_progress):
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
    check_over_limit(over_limit)
    min_context = options.get("min_context", DEFAULT_MIN_CONTEXT)
    power = options.get("power", DEFAULT_POWER)
    count = options.get("count", examples_per_transcript)
    seed = options.get("seed", 0)
    if min_context < 1:
        raise ValueError("min_context must be at least 1")
    if not 0 <= count_flex <= 1:
        raise ValueError("count_flex must be between 0 and 1")

    def candidates(t: TranscriptLike) -> Candidates:
        window = Window(conversation(t, system_prompt), counter) if t.exchanges else None
        return Candidates.of(t, window, mix, max_tokens, over_limit, min_context, power, count)

    cands = _map(candidates, transcripts, workers, on_progress)
    quotas, plan = plan_mix(cands, mix, max_tokens=max_tokens, min_context=min_context, count_flex=count_flex)

    def build(item: tuple[Candidates, list[int]]) -> SliceResult:
        c, quota = item
        if c.window is None:
            return SliceResult(exchanges={c.transcript.id: 0})
        return examples_at(c.transcript, c.window, mix_points(c, quota, seed), max_tokens, over_limit)

    total = SliceResult(plan=plan)
    for part in _map(build, list(zip(cands, quotas, strict=True)), workers):
        total.extend(part)
    return total
