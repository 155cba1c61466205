"""Where one transcript's slices fall: how many, and at which exchanges.

Kept apart from counting and planning because it is the part of slicing that
must never drift: the points are seeded by the transcript id and the slice
seed, so an existing dataset is reproduced exactly from its seed, and both the
plain slicer and the length-mix planner (`actors.dataset.length_mix`) draw
with the same integer-only weighted draw.

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
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import accumulate, pairwise

DEFAULT_MIN_CONTEXT = 3
DEFAULT_POWER = 2

# (exchanges, examples) from the spec's "Source Transcript Generation" table:
# 31×20 → ~155, 78×50 → ~936, 39×75 → ~585, 7×100 → ~140.
SPEC_RATIOS: tuple[tuple[int, int], ...] = ((20, 5), (50, 12), (75, 15), (100, 20))


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


def weighted_draw(rng: random.Random, pool: list[int], weights: list[int], wanted: int) -> list[int]:
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
    return sorted([n_exchanges, *weighted_draw(rng, eligible, weights, wanted)])
