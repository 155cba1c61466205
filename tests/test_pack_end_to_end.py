"""The shipped customer-support pack through the whole pipeline on the embedded default, offline:
run → curate → slice → train (tiny) → export → eval compare (bundled base vs the exported fine-tune).

Every step is the real command a user types, on real models: the bundled tiny
models generate, judge and fix; the trainer fine-tunes the bundled Gemma 3
270M for one step; llama.cpp converts, quantizes and then plays the assistant
in the comparison. The conversations read poorly at this size; what this
proves is that nothing in the pipeline needs the therapy pack.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.pack.loader import load_pack
from coach_tui.cli import main
from state import pipeline as db
from state.store import Store
from tests.test_domain_packs import SUPPORT, THERAPY_WORDS

pytestmark = pytest.mark.slow

LENGTHS = "short=2,medium=2,long=2,very_long=2"


def coach(workspace: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--domain", str(SUPPORT), "-w", str(workspace), *args])
    assert result.exit_code == 0, f"coach {' '.join(args)}:\n{result.output}"
    return result.output


def test_customer_support_pack_runs_the_whole_pipeline(tmp_path: Path):
    ws = tmp_path / "ws"
    pack = load_pack(SUPPORT)

    out = coach(ws, "run", "--transcripts", "2", "--seed", "5", "--lengths", LENGTHS, "--max-tokens", "96",
                "--in-flight", "2", "--min-exchanges", "1")
    assert "finished" in out
    store = Store.for_workspace(ws)
    run = db.latest_run(store)
    assert run.domain == "customer-support"
    transcripts = db.run_transcripts(store, run.id)
    assert {t.status for t in transcripts} <= {"passed", "rejected"}, [(t.id, t.status) for t in transcripts]
    passed = [t for t in transcripts if t.status == "passed"]
    assert passed, "the tiny judge passed no transcript: nothing to train on"
    a, rows = db.latest_assessment(store, passed[0].id)
    judged = {r.criterion for r in rows}  # this pack's rubric: every criterion its min_turns allows
    assert judged <= set(pack.rubric.ids) and set(pack.rubric.safety_gates) <= judged

    assert "fixups:" in coach(ws, "report", "curation")  # curation: what was fixed, cut or rejected

    data = ws / "training_data.jsonl"
    out = coach(ws, "slice", "--out", str(data), "--max-tokens", "2048")
    examples = [json.loads(line) for line in data.read_text().splitlines()]
    assert examples
    system = examples[0]["messages"][0]
    assert system["role"] == "system" and system["content"] == pack.system_prompt
    assert not THERAPY_WORDS.findall(data.read_text())

    out = coach(ws, "train", "--data", str(data), "--preset", "tiny", "--steps", "1", "--save-steps", "1")
    assert "finished at step 1/1" in out
    out = coach(ws, "export-model")
    assert "verified: llama.cpp answered" in out
    gguf = next((ws / "train").rglob("*.Q4_K_M.gguf"))
    modelfile = next((ws / "train").rglob("Modelfile")).read_text()
    assert f'SYSTEM """{pack.system_prompt}"""' in modelfile and "ollama create customer-support" in modelfile
    assert gguf.name.startswith("customer-support-tiny-")

    out = coach(ws, "eval", "compare", "--base", "gemma3-270m", "--candidate", str(gguf), "--personas", "1",
                "--runs", "1", "--exchanges", "1", "--max-tokens", "32", "--seed", "4242")
    assert "verdict:" in out
    report_file = next((ws / "reports").rglob("comparison_report.json"))
    report = json.loads(report_file.read_text())
    assert report["paired"]["n_pairs"] == 1
    assert (report["base"]["model"], report["candidate"]["model"]) == ("gemma3-270m", str(gguf))
    assert report["base"]["n"] == report["candidate"]["n"] == 1
    criteria = set(report["criterion_failure_rate_differences"])
    assert criteria and criteria <= set(pack.rubric.ids)
    assert (report_file.parent / "comparison_report.md").is_file()
