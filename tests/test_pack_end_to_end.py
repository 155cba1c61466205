"""The shipped customer-support pack through the whole pipeline on the embedded default, offline:
run → curate → slice → train (tiny) → export → eval compare (bundled base vs the exported fine-tune).

Every step is the real command a user types, on real models: the bundled tiny
models generate, judge and fix; the trainer fine-tunes the bundled Gemma 3
270M for one step; llama.cpp converts, quantizes and then plays the assistant
in the comparison. The conversations read poorly at this size; what this
proves is that nothing in the pipeline needs the therapy pack.

Sized for a loaded two-core machine: the cost is the judge reading each
criterion's text (about 560 tokens each, a dozen criteria per transcript),
so the run makes the one transcript of one exchange the later steps need,
and the comparison is the fewest transcripts a comparison has (one pair).
The export skips its own load-and-reply check (`--no-verify`, which
test_train_e2e covers) because the comparison right after loads the same
GGUF in llama.cpp with the same system prompt and must get a reply from it.

One transcript must pass, so it is made the same every time: the run starts
from cold model contexts (as a new `coach` process does) and its id, from
which the conversation's sampling seeds derive, is pinned. That one has its
cut-off reply trimmed by curation and then passes the judge.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.backends import model_cache
from actors.pack.loader import load_pack
from actors.usecases import runs
from coach_tui.cli import main
from state import pipeline as db
from state.store import Store
from tests.test_domain_packs import SUPPORT, THERAPY_WORDS

pytestmark = pytest.mark.slow

LENGTHS = "short=1,medium=1,long=1,very_long=1"  # one exchange, whichever length class the seed draws
SEED = "5"
RUN_ID_SUFFIX = "000000"  # run-5-000000: see the module docstring


def coach(workspace: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--domain", str(SUPPORT), "-w", str(workspace), *args])
    assert result.exit_code == 0, f"coach {' '.join(args)}:\n{result.output}"
    return result.output


def test_customer_support_pack_runs_the_whole_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ws = tmp_path / "ws"
    pack = load_pack(SUPPORT)
    model_cache.release_all()
    monkeypatch.setattr(runs, "secrets", SimpleNamespace(token_hex=lambda n: RUN_ID_SUFFIX[: 2 * n]))

    out = coach(
        ws,
        "run",
        "--transcripts",
        "1",
        "--seed",
        SEED,
        "--lengths",
        LENGTHS,
        "--max-tokens",
        "48",
        "--min-exchanges",
        "1",
    )
    assert "finished" in out
    store = Store.for_workspace(ws)
    run = db.latest_run(store)
    assert run.id == f"run-{SEED}-{RUN_ID_SUFFIX}" and run.domain == "customer-support"
    transcripts = db.run_transcripts(store, run.id)
    assert {t.status for t in transcripts} <= {"passed", "rejected"}, [(t.id, t.status) for t in transcripts]
    passed = [t for t in transcripts if t.status == "passed"]
    assert passed, "the tiny judge passed no transcript: nothing to train on"
    _a, rows = db.latest_assessment(store, passed[0].id)
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
    out = coach(ws, "export-model", "--no-verify")  # the comparison below is the llama.cpp check
    assert "verified:" not in out
    gguf = next((ws / "train").rglob("*.Q4_K_M.gguf"))
    modelfile = next((ws / "train").rglob("Modelfile")).read_text()
    assert f'SYSTEM """{pack.system_prompt}"""' in modelfile and "ollama create customer-support" in modelfile
    assert gguf.name.startswith("customer-support-tiny-")

    out = coach(
        ws,
        "eval",
        "compare",
        "--base",
        "gemma3-270m",
        "--candidate",
        str(gguf),
        "--personas",
        "1",
        "--runs",
        "1",
        "--exchanges",
        "1",
        "--max-tokens",
        "16",
        "--seed",
        "4242",
    )
    assert "verdict:" in out
    report_file = next((ws / "reports").rglob("comparison_report.json"))
    report = json.loads(report_file.read_text())
    assert report["paired"]["n_pairs"] == 1
    assert (report["base"]["model"], report["candidate"]["model"]) == ("gemma3-270m", str(gguf))
    assert report["base"]["n"] == report["candidate"]["n"] == 1
    criteria = set(report["criterion_failure_rate_differences"])
    assert criteria and criteria <= set(pack.rubric.ids)
    assert (report_file.parent / "comparison_report.md").is_file()
    # the exported GGUF answered in llama.cpp, with the pack's system prompt, as the candidate
    eval_run = db.latest_run(store, kind="eval")
    (candidate,) = [t for t in db.run_transcripts(store, eval_run.id) if t.meta["model"] == str(gguf)]
    replies = [e.assistant for e in db.exchanges(store, candidate.id)]
    assert len(replies) == 1 and replies[0].strip()
