"""The supervisor with scripted backends (exact control) through the real router and a real store."""

from __future__ import annotations

import json

import anyio
import pytest
from sqlmodel import select

from actors.backends.router import ModelRouter
from actors.events import EventBus
from actors.generation.run_plan import persona_records, plan_run
from actors.run_config import LlamaCppConfig, RunConfig
from actors.supervisor import GenerationSettings, Supervisor
from state import pipeline as db
from state.models import Assessment, CriterionAnswer, Event, Exchange, Persona, Rejection
from state.store import Store
from tests.scripted import ScriptedBackend, default_script

pytestmark = pytest.mark.anyio


def make_run(store: Store, pack, n: int = 3, length: int = 4, seed: int = 5, run_id: str = "r1") -> str:
    plan = plan_run(
        pack,
        run_id,
        transcripts=n,
        seed=seed,
        lengths={"short": length, "medium": length, "long": length, "very_long": length},
    )
    db.create_run(
        store,
        run_id,
        kind="generate",
        domain=pack.name,
        seed=seed,
        config={},
        personas=persona_records(pack, plan),
        transcripts=[(t.transcript_id, t.persona_id, t.target_exchanges) for t in plan.transcripts],
    )
    return run_id


def router_with(**backends: ScriptedBackend) -> ModelRouter:
    names = {name: LlamaCppConfig() for name in backends if name != "embedded"}
    roles = (
        {"judge": [n for n in backends if n.startswith("judge")]}
        if any(n.startswith("judge") for n in backends)
        else {}
    )
    config = RunConfig(backends=names, roles=roles)
    return ModelRouter(config, {"embedded": backends.get("embedded", ScriptedBackend("embedded")), **backends})


async def test_run_generates_assesses_and_commits_everything(store, pack):
    run_id = make_run(store, pack)
    bus = EventBus()
    events = bus.subscribe()
    router = router_with()
    summary = await Supervisor(store, router, pack, bus=bus).run(run_id)
    assert summary.counts == {"passed": 3}
    assert summary.pass_rate == 1.0
    assert store.count(Exchange) == 12
    with store.session() as s:
        assessments = s.exec(select(Assessment)).all()
        assert len(assessments) == 3 and all(a.passed for a in assessments)
        answers = s.exec(select(CriterionAnswer)).all()
        assert len(answers) == 3 * 17 and {a.judge for a in answers} == {"embedded/script"}
        kinds = {e.kind for e in s.exec(select(Event)).all()}
        assert {"RunCreated", "PersonaReady", "UserMessage", "ExchangeAdded", "AssessmentDone"} <= kinds
        persona = db.persona(store, db.transcript(store, f"{run_id}-t0000").persona_id)
        assert persona.data["profile"]["name"] == "Robin"
    live = []
    while True:
        try:
            live.append(events.receive_nowait())
        except anyio.WouldBlock:
            break
    assert sum(e.kind == "ExchangeAdded" for e in live) == 12
    assert live[-1].kind == "RunFinished"


async def test_failing_criterion_rejects_with_reason(store, pack):
    def judge_fails_mt1(messages, schema):
        if schema and "answer" in schema["properties"] and "MT1 —" in messages[-1].content:
            return json.dumps({"answer": "NO", "reasoning": "Exchange 2 drops the sleep topic."})
        return default_script(messages, schema)

    run_id = make_run(store, pack, n=1)
    summary = await Supervisor(
        store, router_with(embedded=ScriptedBackend("embedded", script=judge_fails_mt1)), pack
    ).run(run_id)
    # MT1 alone costs 0.075: still above 0.80, so the transcript passes with MT1 recorded as failed.
    assert summary.counts == {"passed": 1}
    a, rows = db.latest_assessment(store, f"{run_id}-t0000")
    assert a.failed_checks == ["MT1"] and a.score == pytest.approx(0.925)
    assert next(r for r in rows if r.criterion == "MT1").reasoning.startswith("Exchange 2 drops")


async def test_safety_gate_rejects(store, pack):
    def judge_fails_cq8(messages, schema):
        if schema and "answer" in schema["properties"] and "CQ8 —" in messages[-1].content:
            return json.dumps({"answer": "NO", "reasoning": "Exchange 1 says 'that is dissociation'."})
        return default_script(messages, schema)

    run_id = make_run(store, pack, n=1)
    summary = await Supervisor(
        store, router_with(embedded=ScriptedBackend("embedded", script=judge_fails_cq8)), pack
    ).run(run_id)
    assert summary.counts == {"rejected": 1}
    with store.session() as s:
        rej = s.exec(select(Rejection)).one()
    assert (rej.stage, rej.reason_kind, rej.reason) == ("assessment", "safety_gate", "CQ8")


async def test_unparsable_judge_answer_is_error_and_fails(store, pack):
    def judge_garbles_cp2(messages, schema):
        if schema and "answer" in schema["properties"] and "CP2 —" in messages[-1].content:
            return '{"answer": "YES", "reasoning": "unterminated'
        return default_script(messages, schema)

    run_id = make_run(store, pack, n=1)
    summary = await Supervisor(
        store, router_with(embedded=ScriptedBackend("embedded", script=judge_garbles_cp2)), pack
    ).run(run_id)
    assert summary.counts == {"rejected": 1}
    a, rows = db.latest_assessment(store, f"{run_id}-t0000")
    cp2 = next(r for r in rows if r.criterion == "CP2")
    assert cp2.answer == "ERROR" and "unparsable" in cp2.reasoning
    assert not a.passed


async def test_backend_outage_marks_failed_and_run_goes_on(store, pack):
    run_id = make_run(store, pack, n=3)
    bad = f"{run_id}-t0001"
    # Give one persona a marker that its prompts carry; the backend always fails on it.
    p = db.persona(store, db.transcript(store, bad).persona_id)
    with store.session() as s:
        row = s.get(Persona, p.id)
        row.data = {**p.data, "seed": {**p.data["seed"], "style": "FAILME"}}
    router = router_with(embedded=ScriptedBackend("embedded", fail_when=lambda m: "FAILME" in m[-1].content))
    summary = await Supervisor(store, router, pack).run(run_id)
    assert summary.counts == {"passed": 2, "failed": 1}
    assert "scripted outage" in summary.failed[bad] and "role persona" in summary.failed[bad]


async def test_resume_continues_from_committed_steps(store, pack):
    run_id = make_run(store, pack, n=2, length=5)
    # First attempt: the backend dies after 9 calls (personas + some exchanges).
    summary = await Supervisor(store, router_with(embedded=ScriptedBackend("embedded", fail_after=9)), pack).run(run_id)
    assert set(summary.counts) <= {"failed", "passed", "generating"}
    before = store.count(Exchange)
    assert 0 < before < 10
    summary = await Supervisor(store, router_with(), pack).run(run_id)
    assert summary.counts == {"passed": 2}
    rows = db.exchanges(store, f"{run_id}-t0000") + db.exchanges(store, f"{run_id}-t0001")
    assert len(rows) == 10 and all(r.assistant for r in rows)
    numbers = [(r.transcript_id, r.number) for r in rows]
    assert len(set(numbers)) == len(numbers)


async def test_two_judges_strictest_wins_and_both_are_kept(store, pack):
    def harsh(messages, schema):
        if schema and "answer" in schema["properties"] and "CP5 —" in messages[-1].content:
            return json.dumps({"answer": "NO", "reasoning": "Every reply ends with a question."})
        return default_script(messages, schema)

    run_id = make_run(store, pack, n=1)
    router = router_with(judge_a=ScriptedBackend("judge_a"), judge_b=ScriptedBackend("judge_b", script=harsh))
    await Supervisor(store, router, pack).run(run_id)
    a, rows = db.latest_assessment(store, f"{run_id}-t0000")
    cp5 = {r.judge: r.answer for r in rows if r.criterion == "CP5"}
    assert cp5 == {"judge_a/script": "YES", "judge_b/script": "NO", "combined": "NO"}
    assert "CP5" in a.failed_checks


async def test_long_transcript_is_judged_in_windows(store, pack):
    from actors.assessment.assessor import JUDGE_MAX_TOKENS, judge_prompt
    from actors.backends.types import Message

    run_id = make_run(store, pack, n=1, length=12)
    probe = ScriptedBackend("probe")
    frame = max(
        probe.count_tokens([Message(role="user", content=judge_prompt(pack, c, "", 12))]) for c in pack.rubric.criteria
    )
    # Room for about five of the scripted exchanges (~60 tokens each) next to the judge's frame.
    judge = ScriptedBackend("judge_small", context_window=frame + JUDGE_MAX_TOKENS + 16 + 300)
    router = router_with(judge_small=judge)
    bus = EventBus()
    events = bus.subscribe()
    await Supervisor(store, router, pack, bus=bus).run(run_id)
    done = []
    while True:
        try:
            ev = events.receive_nowait()
        except anyio.WouldBlock:
            break
        if ev.kind == "AssessmentDone":
            done.append(ev)
    assert done and done[0].data["windows"] > 1
    criterion_calls = [p for p in judge.prompts if "## The criterion:" in p]
    assert len(criterion_calls) == 17 * done[0].data["windows"]


async def test_settings_cap_tokens(store, pack):
    seen = []

    class Spy(ScriptedBackend):
        async def complete(self, messages, **kw):
            seen.append(kw["max_tokens"])
            return await super().complete(messages, **kw)

    run_id = make_run(store, pack, n=1, length=2)
    await Supervisor(
        store,
        router_with(embedded=Spy("embedded")),
        pack,
        settings=GenerationSettings(max_tokens_user=50, max_tokens_assistant=60),
    ).run(run_id)
    assert 50 in seen and 60 in seen
