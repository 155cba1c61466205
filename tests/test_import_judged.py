"""Judged results of the earlier implementation: `coach import` reads them, `coach eval report` compares them.

The fixtures in `fixtures/earlier_eval/` are modelled on the earlier
implementation's published files: transcripts with `model` and a persona
(`id`, `seed`), and one assessment file each (`conversation_id`, `pass`,
`score`, `answers`, `reasonings`, …), three personas per side.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.dataset.transcript_io import import_transcripts
from coach_tui.cli import main
from state import pipeline, whole_transcripts
from state.models import Assessment, CriterionAnswer
from state.store import Store

EARLIER = Path(__file__).parent / "fixtures" / "earlier_eval"
TRANSCRIPTS = sorted((EARLIER / "transcripts").glob("*.json"))
ASSESSMENTS = sorted((EARLIER / "assessments").glob("*.json"))


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.for_workspace(tmp_path / "ws")


def test_cli_imports_transcripts_and_their_judged_results(tmp_path: Path):
    ws = str(tmp_path / "ws")
    result = run("-w", ws, "import", str(EARLIER))
    assert result.exit_code == 0, result.output
    assert "6 added, 0 already present, 0 failed; assessments: 6 added, 0 already present" in result.output
    again = run("-w", ws, "import", str(EARLIER))
    assert again.exit_code == 0 and "assessments: 0 added, 6 already present" in again.output

    store = Store.for_workspace(tmp_path / "ws")
    assert store.count(Assessment) == 6
    assessment, rows = pipeline.latest_assessment(store, "base_seed9002_run1")
    recorded = json.loads((EARLIER / "assessments" / "base_seed9002_run1.json").read_text())
    assert assessment.stage == "imported" and assessment.exchange_count == 3
    assert assessment.score == recorded["score"] and assessment.passed is recorded["pass"] is False
    assert assessment.category_scores == recorded["category_scores"]
    assert assessment.failed_checks == recorded["failed_checks"]
    assert {r.judge for r in rows} == {"imported"}
    assert {r.criterion: r.answer for r in rows} == recorded["answers"]
    assert {r.criterion: r.reasoning for r in rows} == recorded["reasonings"]
    # an imported verdict does not move the transcript along the pipeline
    assert {t.status for t in whole_transcripts.all_transcripts(store)} == {"imported"}


def test_a_changed_assessment_is_refused_unless_replace(store: Store, tmp_path: Path):
    assert import_transcripts(store, [EARLIER]).ok
    obj = json.loads(ASSESSMENTS[0].read_text())
    obj["answers"]["CQ1"] = "NO"
    obj["reasonings"]["CQ1"] = "Turn 2: the reply answers another question."
    changed = tmp_path / ASSESSMENTS[0].name
    changed.write_text(json.dumps(obj))
    refused = import_transcripts(store, [changed])
    assert refused.failed == [
        (
            str(changed),
            f"a different imported assessment of transcript {obj['conversation_id']!r} is already in the store; "
            "not replaced (--replace makes the file win)",
        )
    ]
    replaced = import_transcripts(store, [changed], replace=True)
    assert replaced.ok and replaced.assessments_replaced == [obj["conversation_id"]]
    _a, rows = pipeline.latest_assessment(store, obj["conversation_id"])
    assert {r.criterion: r.answer for r in rows}["CQ1"] == "NO"
    assert store.count(Assessment) == 6 and store.count(CriterionAnswer) == 6 * 13


def test_an_assessment_whose_transcript_was_refused_is_not_imported(store: Store, tmp_path: Path):
    other = json.loads(TRANSCRIPTS[0].read_text())
    other["exchanges"][0]["assistant"] = "A different reply."
    (tmp_path / "other.json").write_text(json.dumps(other))
    copy = tmp_path / "copy.json"
    shutil.copy(ASSESSMENTS[0], copy)
    paths = [TRANSCRIPTS[0], tmp_path / "other.json", ASSESSMENTS[0], copy, EARLIER / "assessments"]
    report = import_transcripts(store, paths)  # the folder holds ASSESSMENTS[0] again: read once
    reasons = dict(report.failed)
    assert str(tmp_path / "other.json") in reasons[str(TRANSCRIPTS[0])]
    assert str(TRANSCRIPTS[0]) in reasons[str(tmp_path / "other.json")]
    for path in (ASSESSMENTS[0], copy):
        assert reasons[str(path)] == f"its transcript {other['id']!r} was not imported (see above)"
    assert report.added == [] and store.count(Assessment) == 0
    assert len(report.failed) == 4 + 5  # the other five assessments have no transcript in the store


def test_assessment_without_its_transcript_is_reported(store: Store, tmp_path: Path):
    lone = tmp_path / "lone.json"
    obj = json.loads(ASSESSMENTS[0].read_text())
    del obj["conversation_id"]  # then the file's name names the transcript
    lone.write_text(json.dumps(obj))
    report = import_transcripts(store, [lone])
    assert report.failed == [
        (str(lone), "transcript 'lone' is not in the store: import its transcript first (or in the same command)")
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"answers": {"CQ1": "MAYBE"}, "reasonings": {}}, "answers.CQ1: must be one of YES, NO, NA, ERROR"),
        ({"score": "high"}, 'score: must be a number, not "high"'),
        ({"score": 7}, "score: 7 is outside 0–1"),
        ({"pass": "yes"}, 'pass: must be true or false, not "yes"'),
        ({"reasonings": {"ZZ9": "why"}}, "reasonings.ZZ9: no answer for this criterion"),
        ({"category_scores": {"comprehension": None}}, "category_scores.comprehension: must be a number"),
        ({"conversation_id": 12}, "conversation_id: must be the judged transcript's id"),
    ],
)
def test_bad_assessment_fields_are_named(store: Store, tmp_path: Path, change: dict, reason: str):
    import_transcripts(store, [EARLIER / "transcripts"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(ASSESSMENTS[0].read_text()), **change}))
    report = import_transcripts(store, [bad])
    assert len(report.failed) == 1 and report.failed[0][1].startswith(reason), report.failed


def test_eval_report_compares_imported_results_by_persona(tmp_path: Path):
    ws = str(tmp_path / "ws")
    assert run("-w", ws, "import", str(EARLIER)).exit_code == 0
    out = tmp_path / "report"
    result = run("-w", ws, "eval", "report", "--base", "base_*", "--candidate", "therapy-tiny-ft", "--out", str(out))
    assert result.exit_code == 0, result.output  # PASS: the fine-tune improves on every persona
    assert "paired by persona: 3 persona(s) have transcripts on both sides" in result.output
    report = json.loads((out / "comparison_report.json").read_text())
    assert report["source"]["pairing"] == "persona"
    assert report["paired"]["n_pairs"] == 3 and report["unpaired"] == []
    scores = {p.stem: json.loads(p.read_text())["score"] for p in ASSESSMENTS}
    pairs = [(scores[f"base_seed{s}_run1"], scores[f"finetune_seed{s}_run1"]) for s in (9000, 9001, 9002)]
    assert report["paired"]["mean_difference"] == pytest.approx(sum(b - a for a, b in pairs) / 3)
    assert report["base"]["pass_rate"] == pytest.approx(2 / 3) and report["candidate"]["pass_rate"] == 1
    markdown = (out / "comparison_report.md").read_text()
    assert "From transcripts already in the store" in markdown and "paired by persona" in markdown


def test_eval_report_pairs_by_order_when_the_files_do_not_name_personas(tmp_path: Path):
    folder = tmp_path / "in"
    shutil.copytree(EARLIER, folder)
    for path in (folder / "transcripts").glob("*.json"):
        obj = json.loads(path.read_text())
        del obj["persona"]
        path.write_text(json.dumps(obj))
    ws = str(tmp_path / "ws")
    assert run("-w", ws, "import", str(folder)).exit_code == 0
    result = run("-w", ws, "eval", "report", "--base", "gemma-3-270m-it", "--candidate", "finetune_*")
    assert result.exit_code == 0, result.output
    assert "paired by order, not by persona" in result.output
    written = next((tmp_path / "ws" / "reports").glob("stored-*/comparison_report.json"))
    report = json.loads(written.read_text())
    assert report["source"]["pairing"] == "order" and report["paired"]["n_pairs"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--base", "nothing*", "--candidate", "finetune_*"), "--base 'nothing*': no transcript in the store"),
        (("--base", "*", "--candidate", "finetune_*"), "3 transcript(s) match both --base and --candidate"),
        (("--base", "base_*", "--candidate", "base_*"), "--base and --candidate are the same pattern"),
    ],
)
def test_eval_report_user_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str):
    ws = str(tmp_path / "ws")
    assert run("-w", ws, "import", str(EARLIER)).exit_code == 0
    result = run("-w", ws, "eval", "report", *args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"coach: error: {message}" in result.output


def test_eval_report_needs_judged_transcripts(tmp_path: Path):
    ws = str(tmp_path / "ws")
    assert run("-w", ws, "import", str(EARLIER / "transcripts")).exit_code == 0
    result = run("-w", ws, "eval", "report", "--base", "base_*", "--candidate", "finetune_*")
    assert result.exit_code == 1 and "none of its 3 transcript(s) has an assessment" in result.output
