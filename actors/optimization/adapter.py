"""GEPA's adapter over our rollouts: evaluate a candidate on personas, say why it lost points.

GEPA runs in a worker thread and calls `evaluate` synchronously; the rollouts
of a batch run concurrently on the event loop (`anyio.from_thread`), as the
router's limits allow. Each (candidate, persona) rollout is stored once and
read back when asked again — by GEPA itself, or after a kill and `--resume` —
so no conversation or judge call is paid for twice. A backend that fails
(after the router's retries), or a judge that could not answer, stops the
optimisation — an outage is not a score — and `--resume` carries on. A
candidate that breaks one conversation scores 0 with the cause as feedback,
unstored, as GEPA's protocol asks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread

from actors.pack.domain_pack import DomainPack
from state.errors import CoachError

from .components import candidate_problems, with_candidate
from .metric import rubric_metric
from .rollout import Persona, Rollout
from .scored import Scored, candidate_key

if TYPE_CHECKING:
    from gepa.core.adapter import EvaluationBatch

__all__ = ["RubricAdapter", "Scored", "candidate_key"]


RunRollout = Callable[[DomainPack, Persona], Awaitable[Rollout]]


class RubricAdapter:
    propose_new_texts = None
    """GEPA's own reflection proposes the texts (with the `reflector` role as its model)."""

    def __init__(
        self,
        pack: DomainPack,
        run_rollout: RunRollout,
        *,
        known: dict[tuple[str, str], Scored] | None = None,
        on_candidate: Callable[[str, dict[str, str]], None] = lambda key, candidate: None,
        on_scored: Callable[[Scored], None] = lambda scored: None,
    ) -> None:
        self.pack = pack
        self.run_rollout = run_rollout
        self.known = dict(known or {})
        self.seen: set[str] = {key for key, _ in self.known}
        self.on_candidate = on_candidate
        self.on_scored = on_scored
        self.failures = 0

    # --- GEPA's protocol -----------------------------------------------------------------------

    def evaluate(
        self, batch: list[Persona], candidate: dict[str, str], capture_traces: bool = False
    ) -> EvaluationBatch:
        from gepa.core.adapter import EvaluationBatch  # only a search loads GEPA; reading results back does not

        key = candidate_key(candidate)
        if key not in self.seen:
            self.seen.add(key)
            self.on_candidate(key, candidate)
        scored = anyio.from_thread.run(self._score_batch, batch, candidate, key)
        return EvaluationBatch(
            outputs=[s.payload() for s in scored],
            scores=[s.score for s in scored],
            trajectories=[s.payload() for s in scored] if capture_traces else None,
        )

    def make_reflective_dataset(
        self, candidate: dict[str, str], eval_batch: EvaluationBatch, components_to_update: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        records = [_record(trace) for trace in eval_batch.trajectories or []]
        return {name: records for name in components_to_update}

    # --- rollouts --------------------------------------------------------------------------------

    async def _score_batch(self, batch: list[Persona], candidate: dict[str, str], key: str) -> list[Scored]:
        results: list[Scored | None] = [None] * len(batch)

        async def one(i: int, persona: Persona) -> None:
            results[i] = await self._score(persona, candidate, key)

        async with anyio.create_task_group() as tg:
            for i, persona in enumerate(batch):
                tg.start_soon(one, i, persona)
        return [r for r in results if r is not None]

    async def _score(self, persona: Persona, candidate: dict[str, str], key: str) -> Scored:
        stored = self.known.get((key, persona.id))
        if stored is not None:
            return stored
        problems = candidate_problems(candidate)
        if problems:
            scored = Scored(key, persona.id, 0.0, "The prompt cannot be used: " + "; ".join(problems), [], {}, [])
        else:
            try:
                done = await self.run_rollout(with_candidate(self.pack, candidate), persona)
            except (KeyError, ValueError) as err:  # this candidate broke one conversation: score 0, retried later
                self.failures += 1
                return Scored(key, persona.id, 0.0, f"The conversation failed: {err}", [], {}, [])
            if done.assessment.failed_calls:  # a judge that could not answer is an outage, not a verdict
                raise done.assessment.last_error or CoachError("a judge call failed")
            metric = rubric_metric(self.pack, done.assessment)
            scored = Scored(
                key,
                persona.id,
                metric.score,
                metric.feedback,
                list(metric.failed),
                dict(done.assessment.answers),
                [[t.user, t.assistant] for t in done.turns],
                done.calls,
                done.assessment.prompt_tokens,
                done.assessment.evaluated_tokens,
            )
        self.known[(key, persona.id)] = scored
        self.on_scored(scored)
        return scored


def _record(trace: dict[str, Any]) -> dict[str, Any]:
    """One example for the reflection model: the conversation it produced and the judge's verdict."""
    conversation = "\n\n".join(f"User: {user}\nAssistant: {reply}" for user, reply in trace["turns"])
    return {
        "Inputs": f"A conversation with simulated person {trace['persona']}.",
        "Generated Outputs": conversation or "(no conversation)",
        "Feedback": trace["feedback"],
    }
