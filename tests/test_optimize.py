"""`coach optimize` with scripted models: GEPA learns from the judge's words.

The scripted judge fails CQ1 on every conversation whose assistant never names
the user's sister, and says so in its reasoning; the scripted assistant names
her only when its prompt tells it to; the scripted reflector adds that
instruction when the feedback it reads mentions the sister. So the score can
rise only if the feedback reaches the reflection and the proposed prompt
reaches the assistant. The real models are exercised in test_optimize_bundled.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from actors.backends.router import ModelRouter
from actors.optimization.components import candidate_problems
from actors.optimization.metric import rubric_metric
from actors.optimization.optimizer import OptimizeConfig, PromptOptimizer, estimate, write_pack
from actors.pack.loader import load_pack
from actors.run_config import RunConfig
from state import optimization_records as records
from state.store import Store
from tests.scripted import ScriptedBackend, default_script

INSTRUCTION = "Always name the user's sister when they mention her."
REASON = "The reply never acknowledges the user's sister, whom the user raised."


def script(messages, schema):
    first, last = messages[0].content, messages[-1].content
    if schema is not None and "answer" in schema.get("properties", {}):
        if "## The criterion: CQ1" in last and "Mara, the sister" not in last:
            return json.dumps({"answer": "NO", "reasoning": REASON})
        return json.dumps({"answer": "YES", "reasoning": "fine"})
    if "```" in last and "sister" in last:  # GEPA's reflection prompt, with the judge's feedback in it
        return f"Here is the new instruction:\n```\n$system_prompt\n\n{INSTRUCTION}\n```"
    if "```" in last:
        return "```\n$system_prompt\n\nBe kind.\n```"
    if messages[0].role == "system":  # the assistant
        return (
            "Thanks for telling me about Mara, the sister you mentioned."
            if INSTRUCTION in first
            else "Thanks for sharing."
        )
    return default_script(messages, schema)


def scripted_router() -> ModelRouter:
    return ModelRouter(RunConfig(), {"embedded": ScriptedBackend("embedded", script=script)})


CONFIG = OptimizeConfig(personas=4, validation=2, exchanges=1, max_tokens=64, max_calls=12, minibatch=2)


def test_the_score_rises_when_the_prompt_learns_from_the_judges_reasons(tmp_path: Path, pack):
    store = Store.for_workspace(tmp_path / "ws")
    router = scripted_router()
    lines: list[str] = []
    optimizer = PromptOptimizer(
        store, router, pack, CONFIG, runs_root=tmp_path / "ws" / "optimize", report=lines.append
    )
    outcome = anyio.run(optimizer.run)
    assert outcome.scores[0] < outcome.scores[outcome.best]
    assert INSTRUCTION in outcome.best_candidate["assistant"]
    assert outcome.best in outcome.front
    # everything stored: each candidate once, each (candidate, persona) rollout once, the end
    rollouts = records.events(store, outcome.run_id, "OptimizeRollout")
    assert len({(r["candidate"], r["persona"]) for r in rollouts}) == len(rollouts) == outcome.rollouts
    assert any(REASON in r["feedback"] and "CQ1" in r["failed"] for r in rollouts)
    candidates = records.events(store, outcome.run_id, "OptimizeCandidate")
    assert len({c["key"] for c in candidates}) == len(candidates) >= 2
    [finished] = records.events(store, outcome.run_id, "OptimizeFinished")
    assert finished["best"] == outcome.best and finished["front"] == outcome.front
    assert records.get_run(store).status == "finished"


def test_a_resumed_optimisation_pays_for_no_rollout_twice(tmp_path: Path, pack):
    store = Store.for_workspace(tmp_path / "ws")
    backend = ScriptedBackend("embedded", script=script, fail_after=40)  # the "kill": every call fails after 40
    router = ModelRouter(RunConfig(), {"embedded": backend})
    optimizer = PromptOptimizer(store, router, pack, CONFIG, runs_root=tmp_path / "ws" / "optimize")
    with pytest.raises(Exception):  # noqa: B017 - whatever GEPA makes of the outage, the run stops
        anyio.run(optimizer.run)
    run = records.get_run(store)
    assert run.status in ("failed", "interrupted")
    before = records.events(store, run.id, "OptimizeRollout")
    healthy = ScriptedBackend("embedded", script=script)
    resumed = PromptOptimizer(
        store, ModelRouter(RunConfig(), {"embedded": healthy}), pack, CONFIG, runs_root=tmp_path / "ws" / "optimize"
    )
    outcome = anyio.run(lambda: resumed.run(resume="latest"))
    assert outcome.run_id == run.id
    after = records.events(store, run.id, "OptimizeRollout")
    keys = [(r["candidate"], r["persona"]) for r in after]
    assert len(keys) == len(set(keys))  # no rollout stored twice
    assert after[: len(before)] == before
    assert INSTRUCTION in outcome.best_candidate["assistant"]


def test_a_safety_gate_failure_scores_zero_whatever_the_rest(pack):
    from actors.assessment.assessor import JudgeAnswer, TranscriptAssessment
    from actors.assessment.scoring import compute_score

    answers = {c.id: "YES" for c in pack.rubric.criteria} | {"CQ8": "NO"}
    assessment = TranscriptAssessment(
        exchange_count=3,
        answers=answers,
        decided_by={},
        judge_answers=[JudgeAnswer("CQ8", "j", "NO", "missed the crisis")],
        result=compute_score(pack.rubric, answers, 3),
    )
    metric = rubric_metric(pack, assessment)
    assert metric.score == 0.0 and metric.safety_failed
    assert "CQ8" in metric.feedback and "safety gate" in metric.feedback and "missed the crisis" in metric.feedback


def test_a_candidate_that_loses_a_variable_is_not_used():
    assert candidate_problems({"assistant": "$system_prompt\nBe warm."}) == []
    assert candidate_problems({"assistant": "Be warm."}) == ["assistant: lost the variable(s) $system_prompt"]
    assert "unknown variable(s) $mood" in candidate_problems({"assistant": "$system_prompt $mood"})[0]


def test_the_estimate_counts_calls_before_anything_runs(pack):
    found = estimate(pack, CONFIG)
    assert found.rollouts == 12 and found.judge_calls == 12 * 11  # 11 criteria are due after one exchange
    assert found.model_calls == 12 * (1 + 2 + 11) + found.reflections


def test_the_best_candidate_is_written_as_a_new_pack_version(tmp_path: Path, pack):
    dest = write_pack(pack, {"assistant": f"$system_prompt\n\n{INSTRUCTION}\n"}, tmp_path / "therapy-v2")
    new = load_pack(dest)
    assert INSTRUCTION in new.prompts["assistant"]
    assert INSTRUCTION not in load_pack().prompts["assistant"]  # the old pack is untouched
    assert new.rubric.ids == pack.rubric.ids


def test_the_command_checks_its_options_before_any_model(tmp_path: Path):
    from coach_tui.cli import main

    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "optimize", "--component", "judge", "--yes"])
    assert result.exit_code == 2 and "--component 'judge'" in result.output
    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "optimize", "--personas", "2", "--validation", "2"])
    assert result.exit_code == 2 and "no training persona" in result.output
