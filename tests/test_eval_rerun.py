"""Re-running an evaluation with the same seed meets the same conversations, with real models.

The persona, user simulator and model under test are the embedded llama.cpp
model, sampling at the evaluation's temperature with per-call seeds; only the
judge is scripted, since its verdicts do not feed back into the conversation.
The two runs have different run ids, as two `coach eval` invocations do, and
the second one starts with the model's prefix cache warm from the first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.backends.router import ModelRouter
from actors.evaluation import enrich_eval_personas, plan_eval
from actors.run_config import LlamaCppConfig, RunConfig
from actors.supervisor import GenerationSettings, Supervisor
from state import pipeline as db
from state.store import Store
from tests.scripted import ScriptedBackend

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def judge_yes(messages, schema):
    return json.dumps({"answer": "YES", "reasoning": "scripted"})


async def conversations(store: Store, router: ModelRouter, pack, run_id: str, seed: int) -> list:
    plan = plan_eval(pack, run_id, ["embedded"], personas=1, runs=2, seed=seed, exchanges=2)
    db.create_run(store, run_id, kind="eval", domain=pack.name, seed=seed, config={},
                  personas=plan.personas, transcripts=plan.transcripts)
    await enrich_eval_personas(store, router, pack, run_id)
    settings = GenerationSettings(evaluation=True, temperature=0.7, max_tokens_user=24, max_tokens_assistant=24)
    summary = await Supervisor(store, router, pack, settings=settings).run(run_id)
    assert summary.counts == {"passed": 2}, summary
    (persona,) = db.personas_of_run(store, run_id)
    return [persona.data["profile"]] + [
        [(e.user, e.assistant) for e in db.exchanges(store, t.id)]
        for t in sorted(db.run_transcripts(store, run_id), key=lambda t: t.meta["run_index"])
    ]


async def test_same_seed_same_conversations_different_seed_different_ones(tmp_path: Path, pack):
    real = ModelRouter.from_config(RunConfig())  # every role on the embedded llama.cpp model
    config = RunConfig(backends={"judge": LlamaCppConfig()}, roles={"judge": "judge"})
    router = ModelRouter(config, {"embedded": real.backends["embedded"],
                                  "judge": ScriptedBackend("judge", script=judge_yes)})
    try:
        first = await conversations(Store.for_workspace(tmp_path / "a"), router, pack, "eval-31-aaaaaa", 31)
        again = await conversations(Store.for_workspace(tmp_path / "b"), router, pack, "eval-31-bbbbbb", 31)
        other = await conversations(Store.for_workspace(tmp_path / "c"), router, pack, "eval-32-cccccc", 32)
    finally:
        await router.aclose()
    assert all(reply for conv in first[1:] for _, reply in conv)
    assert again == first
    assert first[1] != first[2]  # the two runs of one persona are different conversations
    assert other[1:] != first[1:]
