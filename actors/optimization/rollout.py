"""One persona's conversation under a candidate's prompts, judged on the pack's rubric.

The same steps as a generation run — persona enrichment, user simulator,
assistant, the assessor's windowed judging — without the store or the
supervisor: an optimisation scores prompts, it does not keep their
conversations as training data. Sampling seeds derive from the persona and the
exchange, so two candidates meet the same simulated person and differ only by
what their prompts make the assistant write.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from actors.assessment.assessor import TranscriptAssessment, assess
from actors.backends.errors import BackendError
from actors.generation.conversation import (
    Turn,
    assistant_messages,
    clean_user_message,
    fit_recent,
    user_sim_messages,
)
from actors.generation.personas import enrich_persona, sample_persona_seed
from actors.pack.domain_pack import DomainPack


@dataclass(frozen=True)
class Persona:
    """One simulated person of the optimisation's train or validation set."""

    id: str
    seed: int


@dataclass
class Rollout:
    turns: list[Turn]
    assessment: TranscriptAssessment
    calls: int


def _seed(persona: Persona, number: int, who: str) -> int:
    return zlib.crc32(f"{persona.id}:{number}:{who}".encode()) & 0x7FFFFFFF


async def rollout(
    router, pack: DomainPack, persona: Persona, *, exchanges: int, max_tokens: int, temperature: float = 0.7
) -> Rollout:
    """Generate `exchanges` exchanges with `persona` under `pack`'s prompts, then judge them."""
    seed = sample_persona_seed(pack.input_taxonomy, pack.flaw_taxonomy, persona.seed)
    enriched = await enrich_persona(router, pack, seed, {"seed": seed.as_dict()})
    profile = enriched.get("profile", {})
    user_backend = router.backends_for("user_sim")[0]
    budget = user_backend.context_window - max_tokens - 64
    turns: list[Turn] = []
    calls = 1
    for number in range(1, exchanges + 1):

        def build(kept, omitted):
            return user_sim_messages(
                pack, seed, profile, kept, transcript_seed=persona.id, target_exchanges=exchanges, omitted=omitted
            )

        kept, omitted = fit_recent(turns, lambda k: user_backend.count_tokens(build(k, len(turns) - len(k))) <= budget)
        asked = await router.ask(
            "user_sim",
            build(kept, omitted),
            max_tokens=max_tokens,
            temperature=temperature,
            seed=_seed(persona, number, "user"),
        )
        user = clean_user_message(asked.text)
        if not user:
            raise BackendError(asked.backend, "the user simulator returned an empty message", role="user_sim")
        reply = await router.ask(
            "assistant",
            assistant_messages(pack, turns, user),
            max_tokens=max_tokens,
            temperature=temperature,
            seed=_seed(persona, number, "assistant"),
        )
        calls += 2
        turns.append(Turn(user, reply.text.strip()))
    assessment = await assess(router, pack, turns, seed=0)
    return Rollout(turns, assessment, calls + assessment.calls)
