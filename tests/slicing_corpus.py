"""A realistic, deterministic corpus of coaching transcripts for the slicing tests and benchmark.

Shape, not content: what the length mix depends on is how many exchanges a
transcript has and how long its messages are, so those follow what coaching
conversations look like and the words are filler.

- Exchanges per transcript: most conversations are short, a few run very
  long — 55 % of 3-14 exchanges, 27 % of 15-39, 14 % of 40-79 and 4 % of
  80-140.
- Message lengths are log-normal, as chat messages are: a user writes a
  median of 60 words (a one-liner to a long paragraph, 3-900), the coach
  replies with a median of 150 (20-600). About 300 tokens per exchange with
  the Gemma 3 tokenizer on English, so a 100-exchange conversation is ~30K
  tokens — the spec's "Very long (30K+)" bucket.

`realistic_corpus(count, seed)` is the same on every machine (integer seeds,
`random.Random`). `text` makes the words: the default slices a fixed word
list (cheap, for word-counting tests); the benchmark passes its English-like
generator so the real tokenizer sees realistic text.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from actors.dataset.transcript_format import ExchangeData, TranscriptData

FILLER_TEXT = (
    "i keep thinking about what you said last week and it still feels hard to start the day "
    "my sister called again and we talked about the move and the money and i felt tired after "
    "you noticed a pattern there and i wonder what a small step could look like this weekend "
    "work has been heavy the deadline moved and my manager wants the plan by friday so i stay late "
    "sleep is better on the nights i walk after dinner but worse when i check email in bed"
)
FILLER = FILLER_TEXT.split()

# (share of transcripts, fewest exchanges, most exchanges)
LENGTH_CLASSES: tuple[tuple[float, int, int], ...] = ((0.55, 3, 14), (0.27, 15, 39), (0.14, 40, 79), (0.04, 80, 140))


def filler(rng: random.Random, n_words: int) -> str:
    """`n_words` words of the fixed filler, from a random place in it."""
    start = rng.randrange(len(FILLER))
    words = [FILLER[(start + i) % len(FILLER)] for i in range(n_words)]
    return " ".join(words) + "."


def log_normal_words(rng: random.Random, median: int, sigma: float, low: int, high: int) -> int:
    return max(low, min(high, round(median * math.exp(rng.gauss(0.0, sigma)))))


def exchange_count(rng: random.Random) -> int:
    r, acc = rng.random(), 0.0
    for share, low, high in LENGTH_CLASSES:
        acc += share
        if r < acc:
            return rng.randint(low, high)
    return rng.randint(LENGTH_CLASSES[-1][1], LENGTH_CLASSES[-1][2])


def realistic_transcript(
    tid: str, seed: int, *, exchanges: int | None = None, text: Callable[[random.Random, int], str] = filler
) -> TranscriptData:
    rng = random.Random(seed)
    n = exchanges if exchanges is not None else exchange_count(rng)
    out = []
    for i in range(1, n + 1):
        user = log_normal_words(rng, 60, 0.8, 3, 900)
        reply = log_normal_words(rng, 150, 0.45, 20, 600)
        out.append(ExchangeData(number=i, user=text(rng, user), assistant=text(rng, reply)))
    return TranscriptData(id=tid, exchanges=out)


def realistic_corpus(
    count: int = 300, seed: int = 16, *, text: Callable[[random.Random, int], str] = filler
) -> list[TranscriptData]:
    """`count` transcripts with mixed lengths: most short, a few very long. Deterministic in `seed`."""
    return [realistic_transcript(f"real-{seed}-{i:04d}", seed * 100_003 + i, text=text) for i in range(count)]


def short_corpus(count: int = 60, seed: int = 5) -> list[TranscriptData]:
    """Only short conversations (3-12 exchanges): the long buckets are out of reach."""
    rng = random.Random(seed)
    return [
        realistic_transcript(f"short-{seed}-{i:04d}", seed * 100_003 + i, exchanges=rng.randint(3, 12))
        for i in range(count)
    ]
