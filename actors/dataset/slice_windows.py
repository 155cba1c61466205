"""Slices as training examples: the messages of each window and their exact token counts.

One transcript of n exchanges gives several examples, each "the conversation
so far, then the reply to predict": `[system, user 1, assistant 1, …, user k,
assistant k]` in the `messages` format TRL's SFTTrainer reads. Since SFT
trains on every assistant turn of an example, every one of them must come
from an accepted transcript — the caller passes only those.

Kept apart from where the slices fall (`actors.dataset.slice_placement`) and
from the length-mix planner because this is where exactness lives: every
count is what the target tokenizer gives for the rendered example. A
`TokenCounter`'s per-turn counts are computed once per transcript (one
`Window`); every slice's count is a difference of prefix sums, so slicing a
transcript costs one tokenization of it, not one per slice, and the planner
reads the counts of every possible slice from the same window. A slice over
`max_tokens` is either trimmed — the oldest exchanges are dropped until it
fits, keeping the system prompt and still ending on the target reply — or
dropped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Literal, Protocol

from .slice_placement import DEFAULT_MIN_CONTEXT, DEFAULT_POWER, examples_per_transcript, slice_points
from .tokens import Message, TokenCounter

if TYPE_CHECKING:
    from .length_targets import MixPlan

OverLimit = Literal["keep_recent", "drop"]
DEFAULT_MAX_TOKENS = 120_000


class ExchangeLike(Protocol):
    number: int
    user: str
    assistant: str


class TranscriptLike(Protocol):
    id: str
    exchanges: Sequence[ExchangeLike]


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


class Window:
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
    check_over_limit(over_limit)
    n = len(transcript.exchanges)
    if n == 0:
        return SliceResult(exchanges={transcript.id: 0})
    if points is None:
        points = slice_points(transcript.id, n, min_context=min_context, power=power, count=count, seed=seed)
    window = Window(conversation(transcript, system_prompt), counter)
    return examples_at(transcript, window, points, max_tokens, over_limit)


def check_over_limit(over_limit: str) -> None:
    if over_limit not in ("keep_recent", "drop"):
        raise ValueError(f"over_limit must be 'keep_recent' or 'drop', not {over_limit!r}")


def examples_at(
    transcript: TranscriptLike, window: Window, points: Sequence[int], max_tokens: int, over_limit: OverLimit
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
