"""Planning a run: how many transcripts of which length, for which persona seeds.

Pure and seeded. Lengths follow the spec's distribution (20 % short, 50 %
medium, 25 % long, 5 % very long) by largest remainder, so 155 transcripts
give 31/77/39/8 (the spec rounds to 31/78/39/7) and 3 give a sensible 1/1/1
rather than three of the most common kind. Ids carry the run id and an index, so a plan
is reproducible and a resume finds the same transcripts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ..pack.loader import DomainPack
from .personas import sample_persona_seed

DEFAULT_LENGTHS = {"short": 20, "medium": 50, "long": 75, "very_long": 100}
DEFAULT_MIX = {"short": 0.20, "medium": 0.50, "long": 0.25, "very_long": 0.05}


@dataclass(frozen=True)
class PlannedTranscript:
    transcript_id: str
    persona_id: str
    persona_seed: int
    length_class: str
    target_exchanges: int


@dataclass
class RunPlan:
    run_id: str
    seed: int
    transcripts: list[PlannedTranscript] = field(default_factory=list)


def allocate(n: int, mix: dict[str, float]) -> dict[str, int]:
    """Split n across classes by weight with the largest-remainder rule (ties by weight, then order)."""
    total = sum(mix.values())
    if n <= 0 or total <= 0:
        return {k: 0 for k in mix}
    exact = {k: n * w / total for k, w in mix.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    order = sorted(mix, key=lambda k: (-(exact[k] - counts[k]), -mix[k], list(mix).index(k)))
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def plan_run(
    pack: DomainPack,
    run_id: str,
    *,
    transcripts: int,
    seed: int,
    lengths: dict[str, int] | None = None,
    mix: dict[str, float] | None = None,
) -> RunPlan:
    lengths = {**DEFAULT_LENGTHS, **(lengths or {})}
    # A given mix replaces the default one: naming two classes means only those two.
    mix = {k: v for k, v in (mix or DEFAULT_MIX).items() if v > 0}
    unknown = set(mix) - set(lengths)
    if unknown:
        raise ValueError(f"no length given for {', '.join(sorted(unknown))}")
    classes = [k for k, c in allocate(transcripts, mix).items() for _ in range(c)]
    random.Random(f"lengths:{seed}").shuffle(classes)
    plan = RunPlan(run_id=run_id, seed=seed)
    for i, cls in enumerate(classes):
        persona_seed = seed * 100_000 + i
        plan.transcripts.append(
            PlannedTranscript(
                transcript_id=f"{run_id}-t{i:04d}",
                persona_id=f"{run_id}-p{i:04d}",
                persona_seed=persona_seed,
                length_class=cls,
                target_exchanges=lengths[cls],
            )
        )
    return plan


def persona_records(pack: DomainPack, plan: RunPlan) -> list[tuple[str, int, dict]]:
    """(persona id, seed, data) rows for the store: the sampled seed, enrichment to follow."""
    return [
        (
            t.persona_id,
            t.persona_seed,
            {
                "seed": sample_persona_seed(pack.input_taxonomy, pack.flaw_taxonomy, t.persona_seed).as_dict(),
                "length_class": t.length_class,
            },
        )
        for t in plan.transcripts
    ]
