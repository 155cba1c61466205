"""Persona seeds sampled from the domain pack's taxonomies.

Sampling is pure and seeded: the same pack and seed give the same personas,
so a run can be reproduced and evaluation personas can be shown to differ
from training ones. Weights are the pack's own; edge-case topics therefore
appear exactly as often as the taxonomy says. The `persona` role then turns
a seed into a person (name, traits, life context) with one model call,
`enrich_persona`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from ..pack.models import FlawTaxonomy, InputTaxonomy
from ..pack.prompts import render

T = TypeVar("T")


@dataclass(frozen=True)
class TopicSeed:
    topic: str
    subtopic: str
    complexity: str
    description: str
    edge_case: bool = False


@dataclass(frozen=True)
class FlawSeed:
    id: str
    family: str
    name: str
    description: str
    simulate: str


@dataclass(frozen=True)
class PersonaSeed:
    seed: int
    style: str
    style_words: tuple[int, int]
    difficulty: str
    topic_seeds: list[TopicSeed] = field(default_factory=list)
    flaws: list[FlawSeed] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PersonaSeed:
        return cls(
            seed=data["seed"],
            style=data["style"],
            style_words=tuple(data["style_words"]),
            difficulty=data["difficulty"],
            topic_seeds=[TopicSeed(**t) for t in data["topic_seeds"]],
            flaws=[FlawSeed(**f) for f in data["flaws"]],
        )


def _weighted(rng: random.Random, items: Sequence[T], weights: Sequence[float]) -> T:
    return rng.choices(list(items), weights=list(weights), k=1)[0]


def _weighted_distinct(rng: random.Random, items: Sequence[T], weights: Sequence[float], k: int) -> list[T]:
    """k distinct items, each draw weighted among those left (sampling without replacement)."""
    pool, w = list(items), list(weights)
    chosen: list[T] = []
    while pool and len(chosen) < k:
        if sum(w) <= 0:
            break
        i = rng.choices(range(len(pool)), weights=w, k=1)[0]
        chosen.append(pool.pop(i))
        w.pop(i)
    return chosen


def sample_persona_seed(inputs: InputTaxonomy, flaws: FlawTaxonomy, seed: int) -> PersonaSeed:
    """One persona's seeds: topics (with subtopic and complexity), flaws, style and difficulty."""
    rng = random.Random(f"persona:{seed}")
    style = _weighted(rng, inputs.styles, [s.weight for s in inputs.styles])
    difficulty = _weighted(rng, inputs.difficulty, [d.weight for d in inputs.difficulty])

    n_topics = rng.randint(inputs.topic_seeds_per_persona.min, inputs.topic_seeds_per_persona.max)
    pairs = [(t, s) for t in inputs.topics for s in t.subtopics]
    # A topic's weight is shared among its subtopics, so topic frequencies follow the taxonomy.
    pair_weights = [t.weight / len(t.subtopics) for t, _ in pairs]
    topic_seeds = [
        TopicSeed(
            topic=t.name,
            subtopic=s.name,
            complexity=_weighted(rng, inputs.difficulty, [d.weight for d in inputs.difficulty]).name,
            description=s.description or t.description,
            edge_case=t.edge_case,
        )
        for t, s in _weighted_distinct(rng, pairs, pair_weights, n_topics)
    ]

    n_flaws = rng.randint(flaws.flaws_per_persona.min, flaws.flaws_per_persona.max)
    patterns = [(fam, p) for fam in flaws.families for p in fam.patterns]
    flaw_weights = [fam.weight * p.weight for fam, p in patterns]
    flaw_seeds = [
        FlawSeed(id=p.id, family=fam.name, name=p.name, description=p.description, simulate=p.simulate)
        for fam, p in _weighted_distinct(rng, patterns, flaw_weights, n_flaws)
    ]
    return PersonaSeed(
        seed=seed,
        style=style.name,
        style_words=tuple(style.words),
        difficulty=difficulty.name,
        topic_seeds=topic_seeds,
        flaws=flaw_seeds,
    )


PERSONA_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age_range": {"type": "string", "maxLength": 12},
        "personality_traits": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 5},
        "attachment_style": {"type": "string", "maxLength": 40},
        "life_context": {"type": "string", "maxLength": 600},
        "voice": {"type": "string", "maxLength": 300},
    },
    "required": ["name", "age_range", "personality_traits", "life_context"],
}
"""What the persona role must answer; strings are bounded so a small model cannot ramble past its budget."""


def persona_prompt(pack, seed: PersonaSeed) -> str:
    return render(
        pack.prompts["persona"],
        topic_seeds="\n".join(
            f"- {t.topic} / {t.subtopic} ({t.complexity}): {t.description}" for t in seed.topic_seeds
        ),
        flaws="\n".join(f"- {f.name}: {f.description}" for f in seed.flaws) or "(none)",
        style=seed.style,
        difficulty=seed.difficulty,
    )


async def enrich_persona(router, pack, seed: PersonaSeed, data: dict) -> dict:
    """The persona's data with a `profile` from the persona role.

    An unparsable answer is recorded as `enrichment_error` with an empty
    profile, never guessed: the simulator still has the sampled seeds.
    """
    from ..backends.types import Message

    reply = await router.ask(
        "persona",
        [Message(role="user", content=persona_prompt(pack, seed))],
        schema=PERSONA_SCHEMA,
        max_tokens=400,
        temperature=0.9,
        seed=seed.seed,
    )
    enriched = dict(data)
    if reply.ok and reply.data:
        enriched["profile"] = reply.data
    else:
        enriched["profile"] = {}
        enriched["enrichment_error"] = reply.structured_error
    return enriched
