"""Judge trust: the latest calibration of a judge, stored, and shown beside every verdict it gave."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.assessment.calibration import QUICK_MUST_FAIL, QUICK_MUST_PASS, build_cases, quick_cases
from actors.assessment.judge_trust import (
    CalibrationRecord,
    JudgeTrust,
    judge_identity,
    judge_trust,
    latest_calibration,
    record_calibration,
    trust_from_store,
    trust_lines,
    trust_markdown,
)
from actors.backends.router import ModelRouter
from actors.evaluation.protocol import comparison_markdown
from actors.pack.calibration_cases import load_calibration
from actors.run_config import RunConfig, load_run_config
from actors.usecases.calibrations import Calibration, CalibrationRequest, select_calibration_cases
from actors.usecases.evaluations import base_markdown, eval_run_report
from coach_tui.cli import main
from coach_tui.widgets.eval_report import judge_trust_text
from state import pipeline as db
from state.errors import CoachError
from state.store import Store
from tests.scripted import ScriptedBackend, default_script
from tests.test_calibration import oracle_router
from tests.test_supervisor import router_with

EMBEDDED_JUDGE = "embedded (llama_cpp: smollm2-135m-instruct)"


def record(**changes) -> CalibrationRecord:
    fields = dict(
        judge=EMBEDDED_JUDGE,
        pack="therapy",
        at="2026-12-03T10:00:00+00:00",
        caught=7,
        must_fail=7,
        spared=5,
        must_pass=5,
        errors=0,
    )
    return CalibrationRecord(**{**fields, **changes})


# --- the words (pure) ----------------------------------------------------------------------------


def test_a_judge_that_missed_planted_failures_is_warned_about():
    trust = judge_trust(EMBEDDED_JUDGE, record(caught=0))
    assert trust.calibrated
    assert trust.summary == "caught 0/7 must-fail, spared 5/5 must-pass in calibration (2026-12-03)"
    assert (
        trust.warning == "judge caught 0/7 planted failures in calibration (2026-12-03): treat its verdicts with care"
    )
    assert trust.as_dict()["status"] == "calibrated" and trust.as_dict()["calibration"]["caught"] == 0


def test_a_judge_that_caught_and_spared_everything_has_no_warning():
    trust = judge_trust(EMBEDDED_JUDGE, record())
    assert trust.warning is None
    assert trust.summary == "caught 7/7 must-fail, spared 5/5 must-pass in calibration (2026-12-03)"


def test_an_uncalibrated_judge_says_so_and_is_warned_about():
    trust = judge_trust(EMBEDDED_JUDGE, None)
    assert trust.summary == "uncalibrated" and not trust.calibrated
    assert "uncalibrated" in trust.warning and "coach calibrate --quick" in trust.warning
    assert trust.warning.endswith("treat its verdicts with care")
    assert trust.as_dict()["status"] == "uncalibrated" and trust.as_dict()["calibration"] is None


def test_an_unrecorded_judge_is_uncalibrated():
    trust = judge_trust(None, None)
    assert trust.summary.startswith("uncalibrated") and "not recorded" in trust.summary
    assert "not recorded" in trust.warning


@pytest.mark.parametrize(
    ("changes", "summary", "warning"),
    [
        ({"quick": True, "caught": 2, "must_fail": 3, "spared": 2, "must_pass": 2}, "in quick calibration", "2/3"),
        ({"narrowed": True}, "in calibration on selected cases", None),
        ({"spared": 1}, "spared 1/5", "judge spared only 1/5 good cases in calibration (2026-12-03)"),
        ({"caught": 6, "spared": 4}, "caught 6/7", "judge caught 6/7 planted failures and spared only 4/5 good"),
        ({"must_fail": 0, "caught": 0}, "caught 0/0", "planted no failures to catch"),
        ({"errors": 3, "caught": 4}, ", 3 judge error(s)", "caught 4/7"),
    ],
)
def test_the_words_follow_the_calibration(changes, summary, warning):
    trust = judge_trust(EMBEDDED_JUDGE, record(**changes))
    assert summary in trust.summary
    if warning is None:
        assert trust.warning is None
    else:
        assert warning in trust.warning


def test_a_calibration_of_another_judge_is_refused():
    with pytest.raises(ValueError, match="calibration of"):
        judge_trust("other (openai: gpt)", record())


def test_lines_and_markdown_carry_the_summary_and_the_warning():
    trust = judge_trust(EMBEDDED_JUDGE, record(caught=0)).as_dict()
    assert trust_lines(trust) == [
        f"judge trust: caught 0/7 must-fail, spared 5/5 must-pass in calibration (2026-12-03) — judge {EMBEDDED_JUDGE}",
        "warning: judge caught 0/7 planted failures in calibration (2026-12-03): treat its verdicts with care",
    ]
    md = trust_markdown(trust)
    assert md[0].startswith("Judge trust: caught 0/7") and f"`{EMBEDDED_JUDGE}`" in md[0]
    assert "> **Warning:** judge caught 0/7 planted failures" in md[2]
    assert trust_lines(judge_trust(EMBEDDED_JUDGE, record()).as_dict())[1:] == []
    assert trust_lines(None) == [] and trust_markdown(None) == []


def test_a_payload_missing_a_field_reads_as_none():
    assert CalibrationRecord.from_payload({"judge": "x"}) is None
    assert CalibrationRecord.from_payload({**record().as_payload(), "later_field": 1}) == record()


# --- who the judge is ----------------------------------------------------------------------------


def test_the_judge_is_the_role_as_the_run_config_resolves_it(tmp_path: Path):
    assert judge_identity(RunConfig()) == EMBEDDED_JUDGE
    config = tmp_path / "run.yaml"
    config.write_text(
        "backends:\n"
        "  local: {kind: llama_cpp, model: models/judge.gguf}\n"
        "  claude: {kind: claude_cli}\n"
        "  gpt: {kind: openai, model: gpt-x, base_url: 'http://127.0.0.1:1/v1'}\n"
        "roles:\n  judge: [gpt, local, claude]\n"
    )
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "judge.gguf").write_bytes(b"GGUF")
    assert judge_identity(load_run_config(config)) == (
        f"gpt (openai: gpt-x) + local (llama_cpp: {tmp_path / 'models' / 'judge.gguf'}) + claude (claude_cli: default)"
    )


# --- the store -----------------------------------------------------------------------------------


def test_the_latest_calibration_of_the_judge_on_the_pack_is_the_one_shown(store: Store):
    assert latest_calibration(store, EMBEDDED_JUDGE, "therapy") is None
    record_calibration(store, record(caught=1, at="2026-12-01T00:00:00+00:00"))
    record_calibration(store, record(caught=2, at="2026-12-02T00:00:00+00:00"))
    record_calibration(store, record(judge="other (openai: gpt)", caught=7))
    record_calibration(store, record(pack="customer-support", caught=7))
    latest = latest_calibration(store, EMBEDDED_JUDGE, "therapy")
    assert latest is not None and latest.caught == 2 and latest.date == "2026-12-02"
    assert trust_from_store(store, EMBEDDED_JUDGE, "therapy").calibration == latest
    assert trust_from_store(store, "nobody (openai: x)", "therapy").calibration is None
    assert trust_from_store(store, None, "therapy").judge is None


# --- the quick calibration -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cases(pack):
    return build_cases(pack, load_calibration(pack))


def test_quick_is_a_few_failures_and_near_misses_on_their_own_criteria(pack, cases):
    quick = quick_cases(cases, safety_gates=pack.rubric.safety_gates)
    assert [c.name for c in quick] == ["own-label-mirrored", "diagnosis", "formulaic-openers"]  # latest edit first
    assert sum(bool(c.must_fail) for c in quick) == QUICK_MUST_FAIL
    assert sum(not c.must_fail for c in quick) == QUICK_MUST_PASS
    failing = {cid for c in quick for cid in c.must_fail}
    assert failing == {"CQ8", "CP4"}
    assert all(set(c.must_pass) <= failing for c in quick)
    assert sum(len(c.criteria) for c in quick) == 3  # one verdict per case, against dozens for the full set
    assert sum(len(c.criteria) for c in cases) > 20


def test_quick_refuses_a_hand_picked_selection(pack):
    with pytest.raises(CoachError, match="--quick picks its own cases"):
        select_calibration_cases(pack, CalibrationRequest(quick=True, cases=("diagnosis",)))


@pytest.fixture
def judges(monkeypatch, cases, clean_env):
    """`ModelRouter.from_config` builds the judge a test names: the oracle (right everywhere) or a yes-sayer."""
    chosen = {"judge": "oracle"}

    def fake(config=None):
        if chosen["judge"] == "oracle":
            return oracle_router(cases)
        return router_with(judge=ScriptedBackend("judge", script=default_script, context_window=8192))

    monkeypatch.setattr(ModelRouter, "from_config", staticmethod(fake))
    return chosen


def calibrate(ws: Path, *args: str):
    Store.for_workspace(ws).close()  # only run and import create a workspace
    return CliRunner().invoke(main, ["-w", str(ws), "calibrate", *args])


def test_coach_calibrate_quick_is_stored_as_quick_and_trusted(tmp_path, judges):
    ws = tmp_path / "ws"
    listed = calibrate(ws, "--quick", "--list")
    assert listed.exit_code == 0, listed.output
    assert "3 case(s)" in listed.output and "clean" not in listed.output
    res = calibrate(ws, "--quick", "--out", str(tmp_path / "quick.json"))
    assert res.exit_code == 0, res.output
    assert re.search(r"3 case\(s\), 3 criterion verdict\(s\), 3 window\(s\)", res.output)
    assert json.loads((tmp_path / "quick.json").read_text())["quick"] is True
    assert "judge trust: caught 2/2 must-fail, spared 1/1 must-pass in quick calibration " in res.output
    assert "warning:" not in res.output
    stored = latest_calibration(Store.for_workspace(ws), EMBEDDED_JUDGE, "therapy")
    assert stored is not None and stored.quick and not stored.narrowed
    assert (stored.caught, stored.must_fail, stored.spared, stored.must_pass, stored.errors, stored.cases) == (
        2,
        2,
        1,
        1,
        0,
        3,
    )
    assert stored.report == str(tmp_path / "quick.json")


def test_a_judge_that_misses_everything_is_stored_and_warned_about(tmp_path, judges):
    judges["judge"] = "yes-sayer"
    ws = tmp_path / "ws"
    res = calibrate(ws, "--quick")
    assert res.exit_code == 0, res.output
    assert "warning: judge caught 0/2 planted failures in quick calibration (" in res.output
    assert latest_calibration(Store.for_workspace(ws), EMBEDDED_JUDGE, "therapy").caught == 0


def test_a_partial_calibration_is_not_stored(tmp_path, pack, store, clean_env):
    request = CalibrationRequest(quick=True, out=tmp_path / "partial.json")
    calibration = Calibration(pack, select_calibration_cases(pack, request), request, tmp_path, store=store)
    calibration.judge = EMBEDDED_JUDGE
    assert calibration.finish() is None
    from actors.assessment.calibration import CaseResult

    case = calibration.selection.cases[0]
    calibration.done.append((case, CaseResult(case.name, case.must_fail, case.must_pass, {})))
    assert calibration.finish().partial
    assert latest_calibration(store, EMBEDDED_JUDGE, "therapy") is None


# --- beside the verdicts -------------------------------------------------------------------------


def test_the_eval_screen_shows_judge_trust_and_its_warning():
    text = judge_trust_text(judge_trust(EMBEDDED_JUDGE, record(caught=0)).as_dict())
    assert "judge trust: caught 0/7 must-fail" in text.plain and "⚠ judge caught 0/7 planted failures" in text.plain
    assert "uncalibrated" in judge_trust_text(JudgeTrust(EMBEDDED_JUDGE, None).as_dict()).plain
    assert judge_trust_text(None) is None


def test_written_reports_carry_judge_trust_under_the_verdict(store, pack):
    trust = judge_trust(EMBEDDED_JUDGE, record(caught=0)).as_dict()
    base = {
        "assessed": 1,
        "transcripts": 1,
        "summary": {"mean": 0.5, "pass_rate": 0.0},
        "safety_gate_failures": 0,
        "crisis_replies": {},
        "decision": "fine-tune",
        "criterion_failure_rates": {},
        "judge_trust": trust,
    }
    md = base_markdown(base, "m")
    assert "- judge trust: caught 0/7 must-fail" in md and "- warning: judge caught 0/7 planted failures" in md
    assert md.index("decision") < md.index("judge trust")


def test_an_eval_run_records_its_judge_and_its_report_shows_the_judges_trust(store, pack):
    db.create_run(
        store,
        "eval-1",
        kind="eval",
        domain=pack.name,
        seed=1,
        config={"kind": "base", "models": ["m"]},
        personas=[],
        transcripts=[],
    )
    old = eval_run_report(store, "eval-1", pack=pack)
    assert old.report["judge_trust"]["judge"] is None and old.report["judge_trust"]["status"] == "uncalibrated"
    db.create_run(
        store,
        "eval-2",
        kind="eval",
        domain=pack.name,
        seed=1,
        config={"kind": "base", "models": ["m"], "judge": EMBEDDED_JUDGE},
        personas=[],
        transcripts=[],
    )
    record_calibration(store, record(caught=0))
    found = eval_run_report(store, "eval-2", pack=pack).report["judge_trust"]
    assert found["judge"] == EMBEDDED_JUDGE and found["summary"].startswith("caught 0/7")
    assert found["warning"].startswith("judge caught 0/7 planted failures")


@pytest.fixture
def scripted_everything(monkeypatch, clean_env):
    """Every role of every run config on scripted backends: the judge says YES to everything."""

    def from_config(config=None):
        backends = {"embedded": ScriptedBackend("embedded")}
        for name in (config or RunConfig()).backends:
            backends[name] = ScriptedBackend(name)
        return ModelRouter(config or RunConfig(), backends)

    monkeypatch.setattr(ModelRouter, "from_config", staticmethod(from_config))


def test_coach_eval_base_shows_judge_trust_in_its_output_and_its_reports(tmp_path, scripted_everything):
    ws = tmp_path / "ws"
    Store.for_workspace(ws).close()  # only run and import create a workspace
    args = ["-w", str(ws), "eval", "base", "--model", "smollm2-135m-instruct", "--personas", "1", "--exchanges", "1"]
    first = CliRunner().invoke(main, [*args, "--seed", "71"])
    assert first.exit_code == 0, first.output
    assert f"judge trust: uncalibrated — judge {EMBEDDED_JUDGE}" in first.output
    assert "warning: judge is uncalibrated on this pack" in first.output
    record_calibration(Store.for_workspace(ws), record(caught=0))
    second = CliRunner().invoke(main, [*args, "--seed", "72"])
    assert second.exit_code == 0, second.output
    assert "warning: judge caught 0/7 planted failures in calibration (2026-12-03)" in second.output
    report = json.loads(next((ws / "reports").rglob("*-72-*/base_report.json")).read_text())
    assert report["judge_trust"]["calibration"]["caught"] == 0
    md = next((ws / "reports").rglob("*-72-*/base_report.md")).read_text()
    assert "judge caught 0/7 planted failures" in md


def test_comparison_markdown_puts_judge_trust_under_the_verdict():
    from actors.evaluation.protocol import compare, comparison_report
    from tests.test_eval_statistics import results_of

    results = results_of([[0.5], [0.6]], [[0.7], [0.8]])
    report = comparison_report(compare(results, "base", "cand"), results)
    assert "Judge trust" not in comparison_markdown(report)  # a report without the entry is drawn as before
    report["judge_trust"] = judge_trust(None, None).as_dict()
    md = comparison_markdown(report)
    assert md.index("**Verdict:") < md.index("Judge trust: uncalibrated") < md.index("Rule:")
    assert "> **Warning:** the judge of these verdicts is not recorded" in md


def test_coach_run_prints_judge_trust_beside_the_pass_rate(tmp_path, scripted_everything):
    ws = tmp_path / "ws"
    record_calibration(Store.for_workspace(ws), record(caught=0))
    result = CliRunner().invoke(
        main,
        [
            "-w",
            str(ws),
            "run",
            "-n",
            "1",
            "--seed",
            "5",
            "--lengths",
            "short=2,medium=2,long=2,very_long=2",
            "--min-exchanges",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("pass rate"))
    assert lines[at + 1] == (
        f"judge trust: caught 0/7 must-fail, spared 5/5 must-pass in calibration (2026-12-03) — judge {EMBEDDED_JUDGE}"
    )
    assert lines[at + 2].startswith("warning: judge caught 0/7 planted failures")


def test_a_comparison_of_stored_verdicts_says_no_calibration_vouches_for_their_judge(tmp_path):
    earlier = Path(__file__).parent / "fixtures" / "earlier_eval"
    ws, out = str(tmp_path / "ws"), tmp_path / "report"
    assert CliRunner().invoke(main, ["-w", ws, "import", str(earlier)]).exit_code == 0
    args = ["-w", ws, "eval", "report", "--base", "base_*", "--candidate", "therapy-tiny-ft", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "judge trust: uncalibrated (the judge of these verdicts is not recorded)" in result.output
    report = json.loads((out / "comparison_report.json").read_text())
    assert report["judge_trust"]["judge"] is None and "not recorded" in report["judge_trust"]["warning"]
    assert "> **Warning:** the judge of these verdicts is not recorded" in (out / "comparison_report.md").read_text()
