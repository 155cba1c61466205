"""The use cases below both faces: what the CLI prints and the app draws comes from one function each.

Models are scripted where a test needs exact answers (the router is the real
one, built from the real run config through `ModelRouter.from_config`); the
store is real SQLite.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from sqlmodel import select

from actors.backends.router import ModelRouter
from actors.events import EventBus, ExchangeAdded, TranscriptFinished
from actors.usecases import curation
from actors.usecases.datasets import SkippedForReview, SliceRequest, accepted_transcripts, slice_dataset
from actors.usecases.evaluations import (
    EvalRequest,
    EvaluationOpened,
    ModelTurn,
    eval_run_report,
    evaluate,
    open_evaluation,
)
from actors.usecases.relay import relaying
from actors.usecases.run_settings import RunSettings
from coach_tui.cli import main
from state import leases
from state import pipeline as db
from state.errors import CoachError
from state.leases import LeaseHeld, Owner
from state.models import TrainingExample
from state.store import Store
from tests.scripted import ScriptedBackend, default_script

BUNDLED = "smollm2-135m-instruct"


# --- relaying events to a face -----------------------------------------------------------------


def test_every_event_reaches_the_face_before_the_work_returns():
    bus, seen = EventBus(), []

    async def work() -> str:
        for n in range(500):
            bus.publish(ExchangeAdded(run_id="r", transcript_id="t", number=n))
        return "done"

    assert anyio.run(relaying, bus, seen.append, work) == "done"
    assert [e.number for e in seen] == list(range(500))


def test_a_use_case_error_reaches_the_face_as_itself():
    async def work() -> None:
        raise CoachError("the judge role names no backend")

    with pytest.raises(CoachError, match="names no backend"):  # not an ExceptionGroup around it
        anyio.run(relaying, EventBus(), lambda e: None, work)


# --- evaluations ----------------------------------------------------------------------------------


def _scripted(marker: str):
    def reply(messages, schema):
        return f"{marker} That sounds like a hard week at work; one small step could help."

    return reply


@pytest.fixture
def scripted_models(monkeypatch):
    """Every router the use case builds: the pipeline roles scripted, each model under test its own marker."""
    built: list[ModelRouter] = []

    def from_config(config=None):
        backends = {"embedded": ScriptedBackend("embedded", script=default_script)}
        for name in config.backends:
            if name.startswith("eval_"):
                backends[name] = ScriptedBackend(name, script=_scripted(name.upper()))
        router = ModelRouter(config, backends)
        built.append(router)
        return router

    monkeypatch.setattr(ModelRouter, "from_config", staticmethod(from_config))
    return built


def test_an_evaluation_tells_its_run_first_and_writes_the_report(tmp_path, store, pack, scripted_models):
    seen = []
    request = EvalRequest(kind="base", models=(BUNDLED,), personas=2, runs=1, exchanges=2, seed=77)
    outcome = anyio.run(evaluate, store, pack, tmp_path, request, seen.append)

    opened = seen[0]
    assert isinstance(opened, EvaluationOpened) and opened.run_id == outcome.run_id and not opened.resumed
    assert ModelTurn(BUNDLED) in seen
    assert sum(isinstance(e, TranscriptFinished) for e in seen) == 2
    assert outcome.report_md == tmp_path / "reports" / outcome.run_id / "base_report.md"
    assert json.loads(outcome.report_json.read_text()) == outcome.report
    assert outcome.report["transcripts"] == 2 and outcome.report["assessed"] == 2
    # The Eval screen reads the same numbers back from the store.
    assert eval_run_report(store, outcome.run_id, tmp_path).report == outcome.report
    assert all(
        "EVAL_SMOLLM2" in e.assistant
        for t in db.run_transcripts(store, outcome.run_id)
        for e in db.exchanges(store, t.id)
    )


def test_a_resumed_evaluation_does_nothing_twice_and_refuses_other_models(tmp_path, store, pack, scripted_models):
    request = EvalRequest(kind="base", models=(BUNDLED,), personas=1, runs=1, exchanges=2, seed=78)
    first = anyio.run(evaluate, store, pack, tmp_path, request)
    before = {t.id: len(db.exchanges(store, t.id)) for t in db.run_transcripts(store, first.run_id)}

    seen = []
    again = anyio.run(
        evaluate, store, pack, tmp_path, request.model_copy(update={"resume_id": first.run_id}), seen.append
    )
    assert again.run_id == first.run_id and seen[0].resumed
    assert {t.id: len(db.exchanges(store, t.id)) for t in db.run_transcripts(store, first.run_id)} == before
    assert again.report == first.report

    # A second resumer, while another process holds the run, is refused with that owner named.
    elsewhere = Owner(id="other-shell", host=socket.gethostname(), pid=os.getpid())
    leases.acquire(store, leases.run_scope(first.run_id), elsewhere, ttl_s=60)
    with pytest.raises(LeaseHeld, match=f"pid {os.getpid()}"):
        anyio.run(evaluate, store, pack, tmp_path, request.model_copy(update={"resume_id": first.run_id}))
    leases.release(store, leases.run_scope(first.run_id), elsewhere)

    other = request.model_copy(update={"resume_id": first.run_id, "models": ("gemma3-270m",)})
    with pytest.raises(CoachError, match=f"that run evaluates {BUNDLED}, not gemma3-270m"):
        open_evaluation(store, pack, tmp_path, other)
    with pytest.raises(CoachError, match="no evaluation run 'eval-nope'"):
        open_evaluation(store, pack, tmp_path, request.model_copy(update={"resume_id": "eval-nope"}))


def test_coach_eval_prints_what_the_use_case_returns(tmp_path, scripted_models):
    ws = tmp_path / "ws"
    Store.for_workspace(ws).close()  # only run and import create a workspace
    result = CliRunner().invoke(
        main, ["-w", str(ws), "eval", "base", "--model", BUNDLED, "--personas", "1", "--exchanges", "2", "--seed", "79"]
    )
    assert result.exit_code == 0, result.output
    assert f"— {BUNDLED} as eval_target" in result.output
    assert "persona(s) × 1 run(s) × 1 model(s), 2 exchanges each" in result.output
    assert "- decision: **" in result.output and "most failed:" in result.output
    report = next((ws / "reports").rglob("base_report.md"))
    assert f"report: {report}" in result.output

    same = CliRunner().invoke(main, ["-w", str(ws), "eval", "compare", "--base", BUNDLED, "--candidate", BUNDLED])
    assert same.exit_code == 1 and "name the same model" in same.output and "Traceback" not in same.output


# --- curation: one set of review functions for both faces ------------------------------------------


def _review_run(store, pack, run_id: str, *, min_exchanges: int, exchanges: int = 6) -> str:
    """A review-mode run whose one transcript has `exchanges` exchanges and a pending fixup at the fifth."""
    settings = RunSettings(review_mode="review", min_exchanges=min_exchanges)
    tid = f"{run_id}-t0"
    db.create_run(
        store,
        run_id,
        kind="generate",
        domain=pack.name,
        seed=1,
        config={"settings": settings.stored()},
        personas=[(f"{run_id}-p0", 1, {})],
        transcripts=[(tid, f"{run_id}-p0", exchanges)],
    )
    db.set_status(store, run_id, tid, "generating")
    for n in range(1, exchanges + 1):
        db.add_user_message(store, run_id, tid, n, f"user {n}")
        db.set_assistant_reply(store, run_id, tid, n, f"reply {n}")
    db.set_status(store, run_id, tid, "curating")
    db.save_fixup(
        store,
        run_id,
        tid,
        exchange_number=5,
        reason_kind="criterion",
        reason="CQ2",
        reasoning="generic",
        original="reply 5",
        proposed="a better reply 5",
        entailment_ok=True,
        entailment_reasoning="fits",
        decision="pending",
    )
    db.set_status(store, run_id, tid, "review")
    return tid


def test_a_rejection_applies_the_runs_own_minimum_length(store, pack):
    short_ok = _review_run(store, pack, "r-min3", min_exchanges=3)
    too_short = _review_run(store, pack, "r-min10", min_exchanges=10)
    ids = {f.transcript_id: f.id for f in curation.list_fixups(store)}

    kept = curation.decide(store, ids[short_ok], accept=False)
    assert (kept.status, kept.judge_again, kept.transcript_id) == ("assessing", True, short_ok)
    assert len(db.exchanges(store, short_ok)) == 4  # cut before exchange 5: 4 ≥ the run's minimum of 3

    gone = curation.decide(store, ids[too_short], accept=False)
    assert (gone.status, gone.judge_again) == ("rejected", False)
    with pytest.raises(CoachError, match="already decided"):
        curation.decide(store, ids[too_short], accept=True)


def test_the_decision_filters_and_the_curation_report(store, pack):
    first = _review_run(store, pack, "r-a", min_exchanges=3)
    _review_run(store, pack, "r-b", min_exchanges=3)
    fixup = next(f for f in curation.list_fixups(store) if f.transcript_id == first)
    curation.decide(store, fixup.id, accept=True)

    assert curation.pending_count(store) == 1
    assert [f.id for f in curation.list_fixups(store, decision="accepted")] == [fixup.id]
    assert len(curation.list_fixups(store, decision="all")) == 2
    assert curation.list_fixups(store, criterion="MT1") == []
    assert curation.fixup_reasons(store) == ["CQ2"]
    detail = curation.fixup_detail(store, fixup.id)
    assert (detail.user_message, detail.next_user_message) == ("user 5", "user 6")

    assert curation.curation_report(store, "r-a").decisions == [(("criterion", "accepted"), 1)]
    assert curation.curation_report(store).decisions == [(("criterion", "accepted"), 1), (("criterion", "pending"), 1)]
    assert curation.curation_report(store, "r-none").empty


# --- datasets ---------------------------------------------------------------------------------------


def test_slicing_tells_what_waits_for_review_and_slices_the_rest(tmp_path, store, pack):
    from actors.dataset.transcript_io import import_transcripts

    fixtures = sorted((Path(__file__).parent / "fixtures" / "transcripts").glob("*.json"))
    assert import_transcripts(store, fixtures, status="accepted").ok
    waiting = accepted_transcripts(store, pack.name).transcripts[0].id
    db.save_fixup(
        store,
        None,
        waiting,
        exchange_number=1,
        reason_kind="artifact",
        reason="markdown",
        reasoning="",
        original="x",
        proposed="y",
        entailment_ok=None,
        entailment_reasoning="",
        decision="pending",
    )
    seen = []
    outcome = slice_dataset(store, pack, SliceRequest(out=tmp_path / "data.jsonl"), seen.append)
    assert seen == [SkippedForReview(waiting)]
    assert outcome.skipped_pending == [waiting]
    lines = (tmp_path / "data.jsonl").read_text().splitlines()
    with store.session() as s:
        sliced = s.exec(select(TrainingExample.transcript_id)).all()
    assert len(lines) == outcome.examples == len(sliced) > 0
    assert waiting not in sliced and outcome.transcripts == 2

    with pytest.raises(CoachError, match="is a folder"):
        slice_dataset(store, pack, SliceRequest(out=tmp_path))
