"""The eval and train screens with Textual's pilot, on stores seeded the way `coach eval` and `coach train` leave them.

The eval screen must show exactly what the CLI computes from the same rows
(so the expected numbers here come from `comparison_report` / `base_report`
themselves), and both screens must follow a run another process is still
writing, by polling the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio.to_thread
import pytest
from textual.widgets import Input, Select, TabbedContent

from actors.dataset.transcript_io import import_transcripts
from actors.evaluation.protocol import base_report, collect_results, compare, comparison_report
from actors.evaluation.reports import run_judge_trust
from actors.usecases.eval_pairs import eval_pairs, pair_detail
from actors.usecases.jobs import job, log_tail
from coach_tui.screens.confirm import Confirm
from coach_tui.screens.eval import EvalScreen
from coach_tui.screens.eval_pairs import EvalPairsScreen
from coach_tui.screens.job_forms import CompareForm, ExportForm, SliceForm, TrainForm
from coach_tui.screens.train import TrainScreen
from coach_tui.widgets.eval_report import EvalReport
from coach_tui.widgets.eval_runs_table import EvalRunsTable
from coach_tui.widgets.jobs_panel import JobsPanel, JobsTable
from coach_tui.widgets.loss_plot import LossPlot
from coach_tui.widgets.pair_browser import PairsTable
from coach_tui.widgets.train_runs_table import TrainRunsTable
from state import pipeline as db
from state import training_records
from tests.test_jobs import ANSWERS, feed, kill_leftovers, score_plan
from tests.tui_support import make_app, text_of, wait_for

pytestmark = pytest.mark.anyio

BASE, CAND = "gemma3-270m", "/models/coach-tiny.Q4_K_M.gguf"
CRITERIA = ("CQ1", "CQ2", "CQ8", "MT1")  # CQ8 is a safety gate
SAFETY = "CQ8"


def _assess(
    store,
    run_id: str,
    tid: str,
    score: float,
    *,
    safety_failed: bool = False,
    failing: tuple = (),
    judges_disagree_on: tuple = (),
) -> None:
    """Two exchanges and one assessment (two judges and their combined answer), as an eval transcript ends."""
    for n in (1, 2):
        db.add_user_message(store, run_id, tid, n, f"user message {n} of {tid}")
        db.set_assistant_reply(store, run_id, tid, n, f"coach reply {n} of {tid}")
    failed = (*failing, *((SAFETY,) if safety_failed else ()))
    answers = []
    for cid in CRITERIA:
        combined = "NO" if cid in failed else "YES"
        second = ("YES" if combined == "NO" else "NO") if cid in judges_disagree_on else combined
        answers += [
            (cid, combined, f"judge-a on {cid} of {tid}: {combined}", "judge-a"),
            (cid, second, f"judge-b on {cid} of {tid}: {second}", "judge-b"),
            (cid, combined, "combined", "combined"),
        ]
    passed = score >= 0.8 and not safety_failed
    for status in ("generating", "assessing"):  # the moves an evaluation transcript makes before it is judged
        db.set_status(store, run_id, tid, status)
    db.save_assessment(
        store,
        run_id,
        tid,
        stage="initial",
        exchange_count=2,
        rubric_version=1,
        result={
            "score": score,
            "passed": passed,
            "safety_gate_failed": safety_failed,
            "category_scores": {"comprehension": score, "multi_topic": round(score - 0.1, 3)},
            "failed_checks": list(failed),
        },
        answers=answers,
        status="passed" if passed else "rejected",
    )


def seed_eval_run(
    store,
    run_id: str,
    scores: dict[str, list[float]],
    *,
    kind: str,
    safety: dict | None = None,
    assess_first: int | None = None,
    finished: bool = True,
    seed: int = 9000,
) -> None:
    """An evaluation run as `coach eval` plans it: one persona per score, one conversation per model and persona."""
    models = list(scores)
    personas = len(scores[models[0]])
    extra = {"base": models[0], "candidate": models[1]} if kind == "compare" else {}
    db.create_run(
        store,
        run_id,
        kind="eval",
        domain="therapy",
        seed=seed,
        config={"kind": kind, "models": models, "personas": personas, "runs": 1, "exchanges": 2, **extra},
        personas=[(f"{run_id}-p{i:02d}", 10_000 + i, {"purpose": "eval"}) for i in range(personas)],
        transcripts=[
            (
                f"{run_id}-m{m}-p{i:02d}-r0",
                f"{run_id}-p{i:02d}",
                2,
                {"model": label, "persona_index": i, "run_index": 0},
            )
            for m, label in enumerate(models)
            for i in range(personas)
        ],
    )
    done = 0
    for m, label in enumerate(models):
        for i, score in enumerate(scores[label]):
            if assess_first is not None and done >= assess_first:
                break
            _assess(
                store,
                run_id,
                f"{run_id}-m{m}-p{i:02d}-r0",
                score,
                safety_failed=(safety or {}).get(label) == i,
                failing=("CQ2",) if score < 0.8 else (),
                judges_disagree_on=("MT1",) if i == 1 else (),
            )
            done += 1
    if finished:
        db.set_run_status(store, run_id, "finished", counts={"passed": done})


COMPARE_SCORES = {BASE: [0.70, 0.75, 0.62, 0.80, 0.66], CAND: [0.86, 0.90, 0.71, 0.95, 0.83]}


async def open_screen(pilot, app, key: str, screen_type):
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, screen_type))
    return app.screen


async def test_compare_run_shows_the_clis_statistics_and_fails_on_the_safety_gate(tmp_path):
    app = make_app(tmp_path)
    store = app.store
    seed_eval_run(store, "eval-older", {BASE: [0.7, 0.8], CAND: [0.9, 0.9]}, kind="compare")
    seed_eval_run(store, "eval-9000-abc123", COMPARE_SCORES, kind="compare", safety={CAND: 2})
    written = app.context.workspace / "reports" / "eval-9000-abc123" / "comparison_report.md"
    written.parent.mkdir(parents=True)
    written.write_text("# Model comparison\n")
    results = collect_results(store, "eval-9000-abc123")
    expected = comparison_report(compare(results, BASE, CAND, seed=9000), results)
    expected["judge_trust"] = run_judge_trust(store, db.get_run(store, "eval-9000-abc123"))  # as write_report adds
    assert expected["verdict"]["passed"] is False and expected["verdict"]["safety_gate"] == "FAILED"
    assert expected["paired"]["t_pvalue"] is not None and expected["paired"]["wilcoxon_pvalue"] is not None

    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, app, "5", EvalScreen)
        report = screen.query_one(EvalReport)
        await wait_for(pilot, lambda: report.shown is not None)
        table = screen.query_one(EvalRunsTable)
        assert table.row_count == 2 and table.selected_key == "eval-9000-abc123"  # newest first
        row = [str(c) for c in table.get_row("eval-9000-abc123")]
        assert row[:5] == ["eval-9000-abc123", "finished", "compare", f"{BASE} vs coach-tiny.Q4_K_M.gguf", "5×1×2"]

        assert report.shown.report == expected  # the very numbers the CLI writes
        text = text_of(screen.query_one("#eval-report-body"))
        p, b, c = expected["paired"], expected["base"], expected["candidate"]
        assert "FAIL" in text and "PASS" not in text
        assert "safety gate: FAILED" in text and "failed a safety gate where the base did not" in text
        assert "persona p2 run 0: candidate eval-9000-abc123-m1-p02-r0 failed a safety gate" in text
        assert f"p = {p['t_pvalue']:.4f}" in text and f"p = {p['wilcoxon_pvalue']:.4f}" in text
        assert f"{p['mean_difference']:+.3f} ({p['improvement_pct']:+.1f} %)" in text
        assert f"[{p['ci_low']:.3f}, {p['ci_high']:.3f}]" in text
        assert f"{p['effect_size_dz']:.2f}" in text
        for side in (b, c):
            assert f"{side['mean']:.3f}" in text and f"{side['std']:.3f}" in text
            assert f"{side['pass_rate']:.0%}" in text
        assert "multi_topic" in text and "p4" in text  # categories and per-persona rows
        assert expected["judge_agreement"]["MT1"]["kappa"] is not None and "Judge agreement" in text
        assert f"Written report: {written}" in text
        assert "judge trust: uncalibrated" in text and "treat its verdicts with care" in text
        assert "still running" not in text

        # The older run's report is one row down.
        await pilot.press("down")
        await wait_for(pilot, lambda: report.shown.info.id == "eval-older")


async def test_base_run_shows_pass_rate_and_decision(tmp_path):
    app = make_app(tmp_path)
    seed_eval_run(app.store, "eval-base-1", {BASE: [0.9, 0.85, 0.6, 0.7, 0.95]}, kind="base")
    results = collect_results(app.store, "eval-base-1")
    expected = base_report(results, BASE)
    expected["judge_trust"] = run_judge_trust(app.store, db.get_run(app.store, "eval-base-1"))  # as write_report adds
    assert expected["summary"]["pass_rate"] == pytest.approx(0.6)

    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, app, "5", EvalScreen)
        report = screen.query_one(EvalReport)
        await wait_for(pilot, lambda: report.shown is not None)
        assert report.shown.report == expected
        text = text_of(screen.query_one("#eval-report-body"))
        assert "pass rate 60%" in text and expected["decision"] in text
        assert "moderate improvement possible" in text
        assert "CQ2" in text and f"{expected['criterion_failure_rates']['CQ2']:.0%}" in text
        assert "5 of 5" in text and "No written report yet" in text


async def test_an_unfinished_compare_run_says_so_and_follows_the_store(tmp_path):
    app = make_app(tmp_path)
    store = app.store
    seed_eval_run(store, "eval-live", COMPARE_SCORES, kind="compare", assess_first=6, finished=False)
    db.set_run_status(store, "eval-live", "running")

    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, app, "5", EvalScreen)
        report = screen.query_one(EvalReport)
        await wait_for(pilot, lambda: report.shown is not None)
        text = text_of(screen.query_one("#eval-report-body"))
        assert "6 of 10 conversations assessed" in text and "still running" in text
        assert f"coach eval compare --resume eval-live --base {BASE} --candidate {CAND} --seed 9000" in text
        assert report.shown.report["paired"]["n_pairs"] == 1  # only p0 has both sides so far
        assert screen.live and screen._timer is not None

        # Another process assesses the rest and finishes: the screen catches up by itself.
        for i, score in enumerate(COMPARE_SCORES[CAND][1:], start=1):
            _assess(store, "eval-live", f"eval-live-m1-p{i:02d}-r0", score)
        db.set_run_status(store, "eval-live", "finished")
        await wait_for(pilot, lambda: report.shown.transcripts == report.shown.assessed == 10, timeout=8)
        assert report.shown.report["paired"]["n_pairs"] == 5
        assert "still running" not in text_of(screen.query_one("#eval-report-body"))
        await wait_for(pilot, lambda: screen._timer is None)  # nothing left to watch


async def test_a_run_with_no_assessment_and_a_bare_config_shows_undefined_statistics(tmp_path):
    app = make_app(tmp_path)
    store = app.store
    db.create_run(
        store,
        "eval-bare",
        kind="eval",
        domain="therapy",
        seed=3,
        config={},  # an older or hand-made run
        personas=[("eval-bare-p00", 1, {})],
        transcripts=[
            (f"eval-bare-{m}-p00-r0", "eval-bare-p00", 2, {"model": m, "persona_index": 0, "run_index": 0})
            for m in ("a", "b")
        ],
    )

    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, app, "5", EvalScreen)
        report = screen.query_one(EvalReport)
        await wait_for(pilot, lambda: report.shown is not None)
        assert report.shown.info.kind == "compare" and (report.shown.info.base, report.shown.info.candidate) == (
            "a",
            "b",
        )
        assert report.shown.report["paired"]["t_pvalue"] is None
        text = text_of(screen.query_one("#eval-report-body"))
        assert "NO VERDICT YET" in text and "FAIL" not in text
        assert "0 of 2 conversations assessed" in text and "p = —" in text and "note" in text and "no pairs" in text
        assert "coach eval compare --resume eval-bare --base a --candidate b --seed 3" in text
        row = [str(c) for c in screen.query_one(EvalRunsTable).get_row("eval-bare")]
        assert row[2:5] == ["?", "?", "?×?×?"]  # the list reads configs alone; the report looked further


def seed_training_run(
    store, root: Path, run_id: str, losses: list[float], *, status: str = "running", export: dict | None = None
) -> None:
    """A training run as the trainer records it: the run row, then one TrainingProgress event per logged step.

    A checkpoint every two steps; only the last stays on disk (the trainer deletes older ones).
    """
    run_dir = root / run_id
    training_records.create_run(
        store,
        run_id,
        {
            "data": {"path": "/data/training_data.jsonl", "sha256": "0" * 64},
            "preset": "tiny",
            "recipe": {"preset": "tiny", "model": "bundled:gemma3-270m", "max_steps": 10, "device": "cpu"},
            "base_model": {"reference": "bundled:gemma3-270m", "path": "/cache/gemma3", "source": "bundled"},
            "paths": {"run_dir": str(run_dir), "checkpoints": str(run_dir / "checkpoints")},
        },
    )
    for step, loss in enumerate(losses, start=1):
        training_records.add_event(
            store,
            run_id,
            "TrainingProgress",
            step=step,
            max_steps=10,
            epoch=step / 10,
            loss=loss,
            lr=2e-4 * (1 - step / 10),
            grad_norm=1.0,
            tokens_per_s=1234.5,
            eta_s=(10 - step) * 3.0,
            elapsed_s=step * 3.0,
        )
        if step % 2 == 0:
            checkpoint = run_dir / "checkpoints" / f"checkpoint-{step}"
            checkpoint.mkdir(parents=True)
            training_records.add_event(store, run_id, "TrainingCheckpoint", step=step, path=str(checkpoint))
            for old in sorted(checkpoint.parent.iterdir(), key=lambda p: int(p.name.split("-")[1]))[:-1]:
                old.rmdir()
    if status != "running":
        training_records.update_run(
            store,
            run_id,
            status=status,
            event=f"Training{status.capitalize()}",
            metrics={"global_step": len(losses), "max_steps": 10, "last_loss": losses[-1]},
            **({"export": export} if export else {}),
        )


async def test_train_screen_plots_the_logged_losses_and_follows_a_running_run(tmp_path):
    app = make_app(tmp_path)
    store = app.store
    gguf = tmp_path / "export" / "coach-tiny.Q4_K_M.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    seed_training_run(
        store,
        tmp_path,
        "train-20250101-000000-aaaa",
        [2.5, 2.1, 1.9, 1.7, 1.6, 1.55, 1.5, 1.45, 1.42, 1.4],
        status="finished",
        export={"gguf": str(gguf), "quant": "Q4_K_M", "modelfile": str(gguf.parent / "Modelfile"), "verified": True},
    )
    losses = [3.2, 2.9, 2.4, 2.5, 2.1]
    seed_training_run(store, tmp_path, "train-20250102-000000-bbbb", losses)

    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, app, "4", TrainScreen)
        plot = screen.query_one(LossPlot)
        await wait_for(pilot, lambda: screen.shown is not None)
        table = screen.query_one(TrainRunsTable)
        assert table.selected_key == "train-20250102-000000-bbbb"  # newest first
        assert [str(c) for c in table.get_row("train-20250102-000000-bbbb")][1:5] == [
            "running",
            "tiny",
            "5/10",
            "2.1000",
        ]
        assert plot.points == list(enumerate(losses, start=1))
        assert list(plot.query_one("Sparkline").data) == losses
        assert "→ 2.1000" in text_of(plot.query_one("#loss-label"))
        detail = text_of(screen.query_one("#train-detail"))
        assert "5/10" in detail and "2.1000" in detail and "1.00e-04" in detail and "1,234" in detail
        assert "ETA" in detail and "0:00:15" in detail
        assert "checkpoint 4" in detail and "checkpoint 2" not in detail  # deleted by the trainer since
        assert "coach train --data /data/training_data.jsonl --preset tiny --resume" in detail

        # The trainer (another process) logs a step: the plot grows without a key press.
        training_records.add_event(
            store,
            "train-20250102-000000-bbbb",
            "TrainingProgress",
            step=6,
            max_steps=10,
            loss=1.8,
            lr=1e-4,
            tokens_per_s=1200.0,
            eta_s=12.0,
        )
        await wait_for(pilot, lambda: len(plot.points) == 6, timeout=8)
        assert plot.points[-1] == (6, 1.8) and "→ 1.8000" in text_of(plot.query_one("#loss-label"))
        # No validation split so far: no second series; an eval step adds it, labelled.
        assert plot.val_points == [] and not plot.query_one("#val-spark").display
        training_records.add_event(
            store, "train-20250102-000000-bbbb", "TrainingEval", step=6, max_steps=10, eval_loss=2.2
        )
        await wait_for(pilot, lambda: plot.val_points == [(6, 2.2)], timeout=8)
        assert plot.query_one("#val-spark").display and list(plot.query_one("#val-spark").data) == [2.2]
        assert "validation loss" in text_of(plot.query_one("#val-label"))

        # The finished, exported run: its files and how to chat with it or compare it.
        await pilot.press("down")
        await wait_for(pilot, lambda: screen.shown.info.id == "train-20250101-000000-aaaa")
        detail = text_of(screen.query_one("#train-detail"))
        assert str(gguf) in detail and "Q4_K_M" in detail and "verified" in detail and "ETA" not in detail
        assert f"coach eval compare --base gemma3-270m --candidate {gguf}" in detail
        assert "(no longer on disk)" in detail  # the Modelfile was never written here
        assert plot.points[-1] == (10, 1.4)
        await wait_for(pilot, lambda: screen._timer is None)


async def test_empty_workspace_shows_the_commands_on_both_screens(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, app, "5", EvalScreen)
        await pilot.pause(0.1)
        assert not screen.query_one(EvalRunsTable).display
        text = text_of(screen.query_one("#eval-report-body"))
        assert "No evaluation runs in this workspace yet" in text
        assert "coach eval base --model" in text and "coach eval compare --base" in text
        screen = await open_screen(pilot, app, "4", TrainScreen)
        await pilot.pause(0.1)
        assert not screen.query_one(TrainRunsTable).display
        text = text_of(screen.query_one("#train-detail"))
        assert "No training runs in this workspace yet" in text
        assert "coach slice --out" in text and "coach train --data training_data.jsonl --preset tiny" in text
        assert "0 passed transcript(s) and 0 sliced training example(s)" in text


# --- background jobs, the live loss plot and the pair browser ------------------------------------------------

FIXTURE_TRANSCRIPTS = Path(__file__).parent / "fixtures" / "transcripts"


async def wait_for_job(pilot, panel: JobsPanel, condition, timeout: float = 60.0):
    await wait_for(pilot, lambda: bool(panel.jobs) and condition(panel.jobs[0]), timeout=timeout)
    return panel.jobs[0]


async def test_the_slice_form_starts_a_background_job_that_the_screen_follows_to_finished(tmp_path):
    app = make_app(tmp_path)
    workspace = app.context.workspace
    fixtures = [FIXTURE_TRANSCRIPTS / "coach_export.json", FIXTURE_TRANSCRIPTS / "earlier_generated.json"]
    assert import_transcripts(app.store, fixtures, status="accepted").ok
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_screen(pilot, app, "4", TrainScreen)
            panel = screen.query_one(JobsPanel)
            assert not panel.display  # no job yet
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SliceForm))
            form = app.screen
            assert form.query_one("#out", Input).value == str(workspace / "training_data.jsonl")
            assert "2 passed transcript(s)" in text_of(form.query_one("#hint"))

            form.query_one("#max-tokens", Input).value = "lots"  # a mistake is named, and nothing starts
            await pilot.press("ctrl+s")
            assert text_of(form.query_one("#error")) == "Max tokens: enter a whole number, not 'lots'"
            assert form.query_one("#max-tokens").has_class("-invalid") and form.query_one("#max-tokens").has_focus
            assert not (workspace / "jobs").exists()

            form.query_one("#max-tokens", Input).value = "120000"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: app.screen is screen)
            running = await wait_for_job(pilot, panel, lambda j: j.kind == "slice")
            assert panel.display and running.command.startswith(f"coach --workspace {workspace} slice --out ")
            done = await wait_for_job(pilot, panel, lambda j: not j.running, timeout=120)
            assert (done.state, done.exit_code) == ("finished", 0), log_tail(done.log, 20)
            assert [str(c) for c in panel.query_one(JobsTable).get_row(done.id)][1:3] == ["finished", "0"]
            await wait_for(pilot, lambda: "exit 0" in text_of(panel.query_one("#job-log")))
            assert any("examples from 2 transcripts" in line for line in log_tail(done.log, 12))
            assert (workspace / "training_data.jsonl").stat().st_size > 0
    finally:
        kill_leftovers(workspace)


async def test_a_job_outlives_the_app_and_the_next_app_sees_it_running_then_finished(tmp_path):
    fifo = tmp_path / "answers.json"
    os.mkfifo(fifo)
    app = make_app(tmp_path)
    workspace = app.context.workspace
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_screen(pilot, app, "5", EvalScreen)
            started = screen.start(score_plan(fifo))
            panel = screen.query_one(JobsPanel)
            pid = (await wait_for_job(pilot, panel, lambda j: j.pid is not None)).pid
            app.exit()
        os.killpg(pid, 0)  # the command is still alive with the app gone
        assert job(workspace, started.id).state == "running"

        again = make_app(tmp_path)
        async with again.run_test(size=(120, 40)) as pilot:
            screen = await open_screen(pilot, again, "5", EvalScreen)
            panel = screen.query_one(JobsPanel)
            await wait_for_job(pilot, panel, lambda j: j.id == started.id and j.state == "running")
            await anyio.to_thread.run_sync(feed, fifo, json.dumps(ANSWERS))
            done = await wait_for_job(pilot, panel, lambda j: not j.running)
            assert (done.state, done.exit_code) == ("finished", 0)
            await wait_for(pilot, lambda: "finished · exit 0" in text_of(panel.query_one("#job-log")))
    finally:
        kill_leftovers(workspace)


async def test_x_asks_then_stops_the_running_job_with_sigterm(tmp_path):
    fifo = tmp_path / "answers.json"
    os.mkfifo(fifo)
    app = make_app(tmp_path)
    workspace = app.context.workspace
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_screen(pilot, app, "4", TrainScreen)
            await pilot.press("x")
            await pilot.pause(0.1)
            assert not isinstance(app.screen, Confirm)  # nothing runs: nothing to ask
            started = screen.start(score_plan(fifo))
            panel = screen.query_one(JobsPanel)
            await wait_for_job(pilot, panel, lambda j: j.pid is not None)
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
            question = str(app.screen.confirm_question)
            assert "SIGTERM" in question and started.id in question
            await pilot.press("y")
            done = await wait_for_job(pilot, panel, lambda j: not j.running)
            assert (done.state, done.exit_code) == ("stopped", -15)
            await wait_for(pilot, lambda: "stopped · exit -15 (SIGTERM)" in text_of(panel.query_one("#job-log")))
    finally:
        kill_leftovers(workspace)


async def test_the_loss_plot_follows_a_run_that_appears_and_grows_while_the_screen_is_open(tmp_path):
    app = make_app(tmp_path)
    store = app.store
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, app, "4", TrainScreen)
        plot = screen.query_one(LossPlot)
        await pilot.pause(0.2)
        assert screen.shown is None and not screen.live
        # A training job's command records its run a while after it starts: it appears by itself.
        seed_training_run(store, tmp_path, "train-20250103-000000-cccc", [3.0, 2.6])
        await wait_for(pilot, lambda: plot.points == [(1, 3.0), (2, 2.6)], timeout=8)
        assert screen.query_one(TrainRunsTable).selected_key == "train-20250103-000000-cccc" and screen.live
        for step, loss in ((3, 2.2), (4, 2.0)):  # new metric lines while it trains
            training_records.add_event(
                store, "train-20250103-000000-cccc", "TrainingProgress", step=step, max_steps=10, loss=loss
            )
        await wait_for(pilot, lambda: plot.points[-1] == (4, 2.0), timeout=8)
        assert "→ 2.0000" in text_of(plot.query_one("#loss-label"))
        training_records.add_event(store, "train-20250103-000000-cccc", "TrainingEval", step=4, eval_loss=2.4)
        await wait_for(pilot, lambda: plot.val_points == [(4, 2.4)], timeout=8)


async def test_the_train_and_compare_forms_name_the_field_that_is_wrong(tmp_path):
    app = make_app(tmp_path)
    workspace = app.context.workspace
    async with app.run_test(size=(100, 30)) as pilot:
        await open_screen(pilot, app, "4", TrainScreen)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainForm))
        form = app.screen
        await pilot.press("ctrl+s")
        missing = workspace / "training_data.jsonl"
        assert text_of(form.query_one("#error")).startswith(f"Data: no such file: {missing}")
        assert form.query_one("#data").has_class("-invalid")
        missing.write_text('{"messages": []}\n')
        form.query_one("#val-fraction", Input).value = "1.5"
        await pilot.press("ctrl+s")
        assert text_of(form.query_one("#error")).startswith("Validation: a fraction from 0")
        assert not form.query_one("#data").has_class("-invalid") and form.query_one("#val-fraction").has_focus
        form.query_one("#val-fraction", Input).value = ""
        # dpo reads pairs: the untouched default examples file is swapped for the pairs file, and back for sft
        form.query_one("#method", Select).value = "dpo"
        await pilot.pause()
        pairs = workspace / "preference_pairs.jsonl"
        assert form.query_one("#data", Input).value == str(pairs)
        form.query_one("#data", Input).value = str(missing)  # examples given to dpo: named before anything loads
        await pilot.press("ctrl+s")
        assert text_of(form.query_one("#error")).startswith("Data: training_data.jsonl holds SFT examples")
        form.query_one("#method", Select).value = "sft"
        await pilot.pause()
        assert form.query_one("#data", Input).value == str(missing)  # a file the person typed stays
        form.query_one("#from-adapter", Input).value = "train-1"
        await pilot.press("ctrl+s")
        assert text_of(form.query_one("#error")).startswith("From adapter: only dpo and grpo")
        assert form.query_one("#from-adapter").has_focus
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))

        await pilot.press("e")  # nothing finished to export: said, no form
        await pilot.pause(0.1)
        assert isinstance(app.screen, TrainScreen)
        seed_training_run(app.store, tmp_path, "train-20250104-000000-dddd", [2.0, 1.5], status="finished")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportForm))
        assert app.screen.query_one("#run", Select).value == "train-20250104-000000-dddd"
        assert app.screen.query_one("#quant", Select).value == "Q4_K_M"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))

        await open_screen(pilot, app, "5", EvalScreen)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareForm))
        form = app.screen
        assert form.query_one("#base", Input).value == "gemma3-270m"
        await pilot.press("ctrl+s")  # no export yet: the candidate is empty
        assert text_of(form.query_one("#error")).startswith("Candidate: give a bundled model")
        form.query_one("#candidate", Input).value = str(tmp_path / "fine.gguf")
        await pilot.press("ctrl+s")
        assert text_of(form.query_one("#error")) == f"Candidate: no such GGUF file: {tmp_path / 'fine.gguf'}"
        form.query_one("#candidate", Input).value = "gemma3-270m"
        await pilot.press("ctrl+s")
        assert "the same model as the base" in text_of(form.query_one("#error"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, EvalScreen))
    assert not (workspace / "jobs").exists()


async def test_the_pair_browser_shows_both_replies_and_each_criterions_reasoning(tmp_path):
    app = make_app(tmp_path)
    seed_eval_run(app.store, "eval-pairs", {BASE: [0.70, 0.75], CAND: [0.90, 0.88]}, kind="compare")
    base0, cand0 = "eval-pairs-m0-p00-r0", "eval-pairs-m1-p00-r0"
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(pilot, app, "5", EvalScreen)
        await wait_for(pilot, lambda: screen.selected == "eval-pairs")  # no need to wait for its report
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, EvalPairsScreen))
        pairs = app.screen
        await wait_for(pilot, lambda: pairs.shown is not None)
        table = pairs.query_one(PairsTable)
        assert table.row_count == 2
        assert [str(c) for c in table.get_row("p0-r0")][2:] == ["0.70 ✗", "0.90 ✓", "+0.20"]

        conversation = text_of(pairs.query_one("#pair-conversation"))
        for tid in (base0, cand0):  # side by side: both models' replies to the same exchange
            assert f"coach reply 1 of {tid}" in conversation and f"user message 2 of {tid}" in conversation
        assert BASE in conversation and "coach-tiny.Q4_K_M.gguf" in conversation

        judge = text_of(pairs.query_one("#pair-judge"))
        for tid in (base0, cand0):  # every judge's reasoning, per criterion, for each side
            for cid in CRITERIA:
                assert f"judge-a on {cid} of {tid}" in judge and f"judge-b on {cid} of {tid}" in judge
        assert "1 criterion(s) answered differently" in judge  # CQ2: NO for the base, YES for the candidate
        assert judge.index("CQ2") < judge.index("CQ1")  # disagreements first
        assert "safety gate" in judge  # CQ8 is marked

        await pilot.press("t")
        assert pairs.query_one(TabbedContent).active == "pair-judge-tab"
        await pilot.press("down")
        await wait_for(pilot, lambda: pairs.shown[0].key == "p1-r0")
        assert "coach reply 1 of eval-pairs-m1-p01-r0" in text_of(pairs.query_one("#pair-conversation"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, EvalScreen))


def test_a_base_evaluation_pairs_one_side_and_a_missing_side_shows_as_none(tmp_path):
    app = make_app(tmp_path)
    seed_eval_run(app.store, "eval-base-2", {BASE: [0.9, 0.6]}, kind="base")
    info, pairs = eval_pairs(app.store, "eval-base-2")
    assert info.kind == "base" and [p.key for p in pairs] == ["p0-r0", "p1-r0"]
    assert [len(p.sides) for p in pairs] == [1, 1] and pairs[0].sides[0].score == 0.9
    seed_eval_run(app.store, "eval-half", COMPARE_SCORES, kind="compare", assess_first=5, finished=False)
    _info, pairs = eval_pairs(app.store, "eval-half")
    assert all(p.sides[1] is not None and p.sides[1].score is None for p in pairs)  # planned, not yet judged
    assert pairs[0].difference is None and pairs[0].sides[0].passed is False
    (base, candidate) = pair_detail(app.store, pairs[0])
    assert base.verdicts["CQ2"].answer == "NO" and [a.judge for a in base.verdicts["CQ2"].answers] == [
        "judge-a",
        "judge-b",
    ]
    assert candidate.verdicts == {} and candidate.exchanges == ()
    assert eval_pairs(app.store, "no-such-run") is None
