"""`coach eval compare` on the shipped customer-support pack, with real models, offline.

Two models are compared on new personas of this pack: the bundled Gemma 3 270M
base by name, and SmolLM2 by the path of its GGUF file, the way a person names
an exported fine-tune. The fine-tune itself is exported and checked in
test_pack_end_to_end.py; this comparison does not need it, so the two run side
by side. The comparison is the fewest transcripts one has (one pair, one
exchange each; INCONCLUSIVE, as one pair always is): the judge reading a dozen
criteria per transcript is its cost. That cost is reading, not writing (each
criterion's text is some 560 prompt tokens, the verdict a dozen), and on a CPU
Gemma 3 270M reads a prompt in about half the time SmolLM2 takes (5 against 9
ms a token, and fewer tokens for the same text), so a run config points the
judge at it: which model judges is not what this test is about.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.backends.bundled import bundled_path
from actors.pack.loader import load_pack
from coach_tui.cli import main
from state import pipeline as db
from state.store import Store
from tests.test_domain_packs import SUPPORT

pytestmark = pytest.mark.slow

JUDGE_ON_GEMMA = "backends:\n  gemma:\n    kind: llama_cpp\n    model: gemma3-270m\nroles:\n  judge: gemma\n"
"""The judge on the bundled model that reads prompts faster (see the module docstring); the rest stays embedded."""


def judge_on_gemma(folder: Path) -> Path:
    """`JUDGE_ON_GEMMA` written as a run config file in `folder`, for `--config` / `--run-config`."""
    config = folder / "run-config.yaml"
    config.write_text(JUDGE_ON_GEMMA)
    return config


def test_eval_compare_of_two_models_on_the_packs_rubric(tmp_path: Path):
    ws, pack = tmp_path / "ws", load_pack(SUPPORT)
    Store.for_workspace(ws).close()  # only run and import create a workspace
    candidate = str(bundled_path("smollm2-135m-instruct"))
    config = judge_on_gemma(tmp_path)
    result = CliRunner().invoke(main, ["--domain", str(SUPPORT), "-w", str(ws), "eval", "compare",
                                       "--base", "gemma3-270m", "--candidate", candidate, "--personas", "1",
                                       "--runs", "1", "--exchanges", "1", "--max-tokens", "16", "--seed", "4242",
                                       "--config", str(config)])  # fmt: skip
    # One persona is one pair: no test is possible, so the verdict is INCONCLUSIVE, and a verdict
    # other than PASS exits 1 (a pipeline gated on it stops).
    assert result.exit_code == 1 and "verdict: INCONCLUSIVE" in result.output, result.output
    report_file = next((ws / "reports").rglob("comparison_report.json"))
    report = json.loads(report_file.read_text())
    assert report["paired"]["n_pairs"] == 1
    assert (report["base"]["model"], report["candidate"]["model"]) == ("gemma3-270m", candidate)
    assert report["base"]["n"] == report["candidate"]["n"] == 1
    criteria = set(report["criterion_failure_rate_differences"])
    assert criteria and criteria <= set(pack.rubric.ids)
    assert (report_file.parent / "comparison_report.md").is_file()
    assert report["judge_trust"]["judge"] == "gemma (llama_cpp: gemma3-270m)"  # the run config's judge judged
    # the GGUF named by path answered in llama.cpp, with the pack's system prompt, as the candidate
    store = Store.for_workspace(ws)
    eval_run = db.latest_run(store, kind="eval")
    assert eval_run.domain == "customer-support"
    (transcript,) = [t for t in db.run_transcripts(store, eval_run.id) if t.meta["model"] == candidate]
    replies = [e.assistant for e in db.exchanges(store, transcript.id)]
    assert len(replies) == 1 and replies[0].strip()
