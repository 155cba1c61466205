"""Re-running an evaluation with the same seed meets the same conversations, with real models.

The persona, user simulator and model under test are the embedded llama.cpp
model, sampling at the evaluation's temperature with per-call seeds; only the
judge is scripted, since its verdicts do not feed back into the conversation.
The two runs have different run ids, as two `coach eval` invocations do, and
each starts from cold model contexts, as each invocation is its own process.

Why cold: a context that already holds the prompt evaluates only the rest of
it (at least the last token again), in batches of another size, and llama.cpp
rounds those differently. At temperature 0.7 that is enough to sample another
word: in one process, a warm second run drew another persona from the same
seed. One exchange per conversation and short strings keep this quick; what
is compared is the whole persona and every message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.backends.router import ModelRouter
from actors.evaluation.protocol import enrich_eval_personas, plan_eval
from actors.run_config import LlamaCppConfig, RunConfig
from actors.supervisor import GenerationSettings, Supervisor
from state import pipeline as db
from state.store import Store
from tests.scripted import ScriptedBackend

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

# Free strings (the persona's fields) bounded short: the tiny model otherwise fills them with repetition.
EMBEDDED = LlamaCppConfig(max_string_chars=48)


def judge_yes(messages, schema):
    return json.dumps({"answer": "YES", "reasoning": "scripted"})


async def conversations(workspace: Path, pack, run_id: str, seed: int, runs: int = 2) -> list:
    """The persona and the conversations of one evaluation run (started from cold models: see cold_models)."""
    store = Store.for_workspace(workspace)
    real = ModelRouter.from_config(RunConfig(backends={"embedded": EMBEDDED}))
    config = RunConfig(backends={"embedded": EMBEDDED, "judge": LlamaCppConfig()}, roles={"judge": "judge"})
    router = ModelRouter(
        config, {"embedded": real.backends["embedded"], "judge": ScriptedBackend("judge", script=judge_yes)}
    )
    try:
        plan = plan_eval(pack, run_id, ["embedded"], personas=1, runs=runs, seed=seed, exchanges=1)
        db.create_run(
            store,
            run_id,
            kind="eval",
            domain=pack.name,
            seed=seed,
            config={},
            personas=plan.personas,
            transcripts=plan.transcripts,
        )
        await enrich_eval_personas(store, router, pack, run_id)
        settings = GenerationSettings(evaluation=True, temperature=0.7, max_tokens_user=24, max_tokens_assistant=24)
        summary = await Supervisor(store, router, pack, settings=settings).run(run_id)
    finally:
        await router.aclose()
    assert summary.counts == {"passed": runs}, summary
    (persona,) = db.personas_of_run(store, run_id)
    return [persona.data["profile"]] + [
        [(e.user, e.assistant) for e in db.exchanges(store, t.id)]
        for t in sorted(db.run_transcripts(store, run_id), key=lambda t: t.meta["run_index"])
    ]


async def test_same_seed_same_conversations_different_seed_different_ones(tmp_path: Path, pack, cold_models):
    cold_models()
    first = await conversations(tmp_path / "a", pack, "eval-31-aaaaaa", 31)
    cold_models()  # a second `coach eval` process
    again = await conversations(tmp_path / "b", pack, "eval-31-bbbbbb", 31)
    cold_models()
    other = await conversations(tmp_path / "c", pack, "eval-32-cccccc", 32, runs=1)
    assert first[0] and all(user and reply for conv in first[1:] for user, reply in conv)
    assert again == first
    assert first[1] != first[2]  # the two runs of one persona are different conversations
    assert other[1] != first[1]  # another seed: another person saying other things
