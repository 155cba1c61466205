"""The Optimize screen follows a `coach optimize` run from the store, like Train follows a training.

What a `coach optimize` process commits (`state.optimization_records`: the run,
each candidate once, each scored conversation once, the end) is written here
with the same record functions the optimiser calls, between pilot steps, so
the screen is seen picking up a candidate while the run is live. Reading the
records back (scores per persona, the Pareto front, the best) is checked on
its own, and the layout by snapshots at 80×24 and 160×45.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from types import SimpleNamespace

import pytest

from actors.optimization.optimizer import OptimizeConfig
from actors.optimization.progress import build_snapshot, pareto_front, persona_ids, run_info
from actors.optimization.scored import Scored
from actors.usecases.optimizations import optimization_runs, optimization_snapshot
from coach_tui.screens import run_following
from coach_tui.screens.optimize import CandidatesTable, OptimizeDetail, OptimizeRunsTable, OptimizeScreen
from coach_tui.widgets import run_bar
from state import optimization_records as records
from state import training_records
from tests.test_snapshots import PINNED_USAGE, SIZES, screen_is
from tests.tui_support import make_app, text_of, wait_for

SETTINGS = OptimizeConfig(personas=3, validation=1, exchanges=1, max_tokens=64, max_calls=6, minibatch=1)
SEED = {"assistant": "$system_prompt\n\nBe warm."}
BETTER = {"assistant": "$system_prompt\n\nBe warm.\nAlways name the people the user mentions."}
WORSE = {"assistant": "$system_prompt\n\nBe brief."}


def start(store, run_id: str = "opt-test") -> None:
    records.create_run(
        store, run_id, {"settings": SETTINGS.model_dump(mode="json"), "pack": "therapy", "run_dir": "/tmp/x"}
    )


def candidate(store, run_id: str, key: str, texts: dict[str, str]) -> None:
    records.add_event(store, run_id, "OptimizeCandidate", {"key": key, "texts": texts})


def scored(store, run_id: str, key: str, persona: str, score: float, failed=()) -> None:
    payload = Scored(key, persona, score, f"score {score}", list(failed), {}, [["hi", "hello"]], 4, 1000, 300)
    records.add_event(store, run_id, "OptimizeRollout", payload.payload())


def finished_run(store, run_id: str = "opt-test") -> None:
    """Seed on p00 (validation), then a better candidate kept, and a worse one GEPA rejected on its minibatch."""
    start(store, run_id)
    candidate(store, run_id, "seedseed0000", SEED)
    scored(store, run_id, "seedseed0000", "p00", 0.5, ["CQ1"])
    scored(store, run_id, "seedseed0000", "p01", 0.4, ["CQ1", "CQ5"])
    candidate(store, run_id, "better000001", BETTER)
    scored(store, run_id, "better000001", "p01", 0.7)
    scored(store, run_id, "better000001", "p00", 0.8)
    candidate(store, run_id, "worse0000002", WORSE)
    scored(store, run_id, "worse0000002", "p02", 0.3, ["CQ2"])
    records.add_event(
        store,
        run_id,
        "OptimizeFinished",
        {"candidates": ["seedseed0000", "better000001"], "scores": [0.5, 0.8], "front": [1], "best": 1},
    )
    records.update_run(store, run_id, status="finished", best=BETTER, best_score=0.8)


# --- reading an optimisation back ---------------------------------------------------------------


def test_persona_ids_match_the_optimisers_split():
    from actors.optimization.optimizer import personas

    train, val = personas(SETTINGS)
    assert ([p.id for p in train], [p.id for p in val]) == persona_ids(3, 1) == (["p01", "p02"], ["p00"])


def test_the_front_keeps_every_candidate_best_on_some_validation_persona_ties_included():
    scores = {"a": {"v1": 0.9, "v2": 0.1}, "b": {"v1": 0.2, "v2": 0.8}, "c": {"v1": 0.9}, "d": {"t": 1.0}}
    assert pareto_front(scores, ["v1", "v2"]) == {"a", "b", "c"}
    assert pareto_front(scores, []) == set()


def test_a_live_snapshot_ranks_by_validation_mean_and_a_finished_one_shows_gepas_own_choice(tmp_path):
    from state.store import Store

    store = Store.for_workspace(tmp_path / "ws")
    start(store)
    candidate(store, "opt-test", "seedseed0000", SEED)
    scored(store, "opt-test", "seedseed0000", "p00", 0.5, ["CQ1"])
    candidate(store, "opt-test", "better000001", BETTER)
    scored(store, "opt-test", "better000001", "p01", 0.9)  # a training persona: no say in the front
    live = optimization_snapshot(store, "opt-test")
    assert live.live and not live.finished
    assert [(c.number, c.front, c.best) for c in live.candidates] == [(0, True, True), (1, False, False)]
    assert live.candidates[1].validation_mean is None and live.candidates[1].mean == 0.9
    assert live.judge_prompt_tokens == 2000 and live.judge_evaluated_tokens == 600
    scored(store, "opt-test", "better000001", "p00", 0.8)
    assert [c.key for c in optimization_snapshot(store, "opt-test").candidates if c.best] == ["better000001"]

    finished_run(store, "opt-done")
    done = optimization_snapshot(store, "opt-done")
    assert done.finished and not done.live
    assert [(c.key, c.front, c.best) for c in done.candidates if c.front or c.best] == [("better000001", True, True)]
    assert done.candidates[0].failed == {"CQ1": 2, "CQ5": 1}
    assert done.personas == ["p00", "p01", "p02"]
    listed = {r.id: r for r in optimization_runs(store)}
    assert listed["opt-done"].rollouts == 5 and listed["opt-done"].budget == 6
    assert listed["opt-done"].best_score == 0.8 and listed["opt-test"].best_score is None
    assert optimization_snapshot(store, "nope") is None


def test_a_rollout_stored_by_an_earlier_coach_still_reads():
    """Rollouts stored before the judge's token counts were recorded lack those fields."""
    old = {"candidate": "k", "persona": "p00", "score": 1.0, "feedback": "", "failed": [], "answers": {}, "turns": []}
    assert Scored.from_payload(old).judge_prompt_tokens == 0
    assert Scored.from_payload({**old, "added_later": 1}).score == 1.0
    snap = build_snapshot(run_info(_Run()), {"personas": 2, "validation": 1}, [], [old], None)
    assert [c.key for c in snap.candidates] == ["k"] and snap.candidates[0].best


_Run = partial(SimpleNamespace, id="r", status="failed", config={}, created_at=datetime(2026, 1, 1))


def test_training_and_optimisation_records_share_one_update(tmp_path):
    """Both kinds merge config keys and set the status the same way (one function in `state.process_runs`)."""
    from state.store import Store

    store = Store.for_workspace(tmp_path / "ws")
    start(store)
    records.update_run(store, "opt-test", status="failed", error="boom")
    records.update_run(store, "opt-test", best_score=0.5)
    run = records.get_run(store, "opt-test")
    assert run.status == "failed" and run.config["error"] == "boom" and run.config["best_score"] == 0.5
    assert run.config["pack"] == "therapy"
    training_records.create_run(store, "train-1", {"data": "d.jsonl"})
    training_records.update_run(store, "train-1", status="interrupted", event="TrainingInterrupted", step=3)
    [train] = training_records.training_runs(store)
    assert train.status == "interrupted" and train.config == {"data": "d.jsonl", "step": 3}


# --- the screen ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_screen_sees_a_candidate_appear_while_the_optimisation_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(run_following, "POLL_S", 0.1)
    app = make_app(tmp_path)
    store = app.store
    start(store)
    candidate(store, "opt-test", "seedseed0000", SEED)
    scored(store, "opt-test", "seedseed0000", "p00", 0.5, ["CQ1"])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("6")
        await wait_for(pilot, lambda: isinstance(app.screen, OptimizeScreen))
        screen = app.screen
        table = screen.query_one(CandidatesTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        assert screen.live and "1/6" in text_of(screen.query_one(OptimizeDetail))
        # the `coach optimize` process proposes a candidate and scores it
        candidate(store, "opt-test", "better000001", BETTER)
        scored(store, "opt-test", "better000001", "p00", 0.8)
        await wait_for(pilot, lambda: table.row_count == 2)
        await wait_for(pilot, lambda: "2/6" in text_of(screen.query_one(OptimizeDetail)))
        assert "2/6" in str(screen.query_one(OptimizeRunsTable).get_row("opt-test")[4])
        best = next(c for c in screen.shown.candidates if c.best)
        assert best.key == "better000001" and best.front
        # its text, on highlighting it
        table.focus()
        table.move_cursor(row=table.get_row_index("better000001"))
        await wait_for(pilot, lambda: "Always name the people" in text_of(screen.query_one(OptimizeDetail)))
        # the end: the run is listed as finished and the screen stops following it
        records.add_event(
            store,
            "opt-test",
            "OptimizeFinished",
            {"candidates": ["seedseed0000", "better000001"], "scores": [0.5, 0.8], "front": [1], "best": 1},
        )
        records.update_run(store, "opt-test", status="finished", best=BETTER, best_score=0.8)
        await wait_for(pilot, lambda: not screen.live)
        assert "finished" in str(screen.query_one(OptimizeRunsTable).get_row("opt-test")[1])


@pytest.mark.anyio
async def test_a_new_optimisation_appears_and_is_selected_without_a_key(tmp_path, monkeypatch):
    monkeypatch.setattr("coach_tui.screens.optimize.LOOK_S", 0.1)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await wait_for(pilot, lambda: isinstance(app.screen, OptimizeScreen))
        screen = app.screen
        await wait_for(pilot, lambda: "No prompt optimisation" in text_of(screen.query_one(OptimizeDetail)))
        finished_run(app.store, "opt-new")
        await wait_for(pilot, lambda: screen.shown is not None and screen.shown.info.id == "opt-new")
        assert screen.query_one(CandidatesTable).row_count == 3


@pytest.mark.anyio
async def test_the_palette_goes_to_the_optimize_screen(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"optimize")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, OptimizeScreen))


@pytest.fixture
def pinned_usage(monkeypatch):
    monkeypatch.setattr(run_bar.ProcessUsage, "sample", lambda self: PINNED_USAGE)


@pytest.mark.parametrize("size", SIZES)
def test_optimize_screen_snapshot(snap_compare, tmp_path, pinned_usage, size):
    app = make_app(tmp_path, workspace=tmp_path / "snapshot-workspace-folder" / "ws")
    finished_run(app.store)
    assert snap_compare(app, terminal_size=size, run_before=screen_is("OptimizeScreen")(("6",)))
