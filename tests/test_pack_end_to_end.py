"""The shipped customer-support pack through the whole pipeline on the embedded default, offline:
run → curate → slice → train (tiny) → export → eval compare (bundled base vs the exported fine-tune).

Every step is the real command a user types, on real models: the bundled tiny
models generate, judge and fix; the trainer fine-tunes the bundled Gemma 3
270M for one step; llama.cpp converts, quantizes and then plays the assistant
in the comparison. The conversations read poorly at this size; what this
proves is that nothing in the pipeline needs the therapy pack.

One workspace walks through the steps, one test per step (module fixtures,
each step's command run once): a failure names the step, and no single test
holds the whole pipeline's time against its timeout.

Sized for a loaded two-core machine. The cost is the judge reading each
criterion's text (about 560 tokens each, a dozen criteria per transcript), so
the run makes the one transcript of one exchange the later steps need, and the
comparison is the fewest transcripts a comparison has (one pair). The export
skips its own load-and-reply check (`--no-verify`; test_train_e2e covers it)
because the comparison right after loads the same GGUF in llama.cpp with the
same system prompt and must get a reply from it.

One transcript must pass, so it is made the same every time: the run starts
from cold model contexts (as a new `coach` process does) and its id, from
which the conversation's sampling seeds derive, is pinned. That conversation
has its cut-off reply trimmed by curation and then passes the judge.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.pack.loader import DomainPack, load_pack
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


@dataclass
class Workspace:
    path: Path
    pack: DomainPack
    output: str = ""

    @property
    def store(self) -> Store:
        return Store.for_workspace(self.path)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, cold_models) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("support") / "ws", load_pack(SUPPORT))
    cold_models()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "secrets", SimpleNamespace(token_hex=lambda n: RUN_ID_SUFFIX[: 2 * n]))
        ws.output = coach(ws.path, "run", "--transcripts", "1", "--seed", SEED, "--lengths", LENGTHS,
                          "--max-tokens", "48", "--min-exchanges", "1")  # fmt: skip
    return ws


@pytest.fixture(scope="module")
def sliced(generated: Workspace) -> Path:
    data = generated.path / "training_data.jsonl"
    coach(generated.path, "slice", "--out", str(data), "--max-tokens", "2048")
    return data


@pytest.fixture(scope="module")
def trained(generated: Workspace, sliced: Path) -> str:
    return coach(generated.path, "train", "--data", str(sliced), "--preset", "tiny", "--steps", "1",
                 "--save-steps", "1")  # fmt: skip


@pytest.fixture(scope="module")
def exported(generated: Workspace, trained: str) -> tuple[str, Path]:
    out = coach(generated.path, "export-model", "--no-verify")  # the comparison is the llama.cpp check
    return out, next((generated.path / "train").rglob("*.Q4_K_M.gguf"))


def test_run_generates_curates_and_judges_with_the_packs_rubric(generated: Workspace):
    pack, store = generated.pack, generated.store
    assert "finished" in generated.output
    run = db.latest_run(store)
    assert run.id == f"run-{SEED}-{RUN_ID_SUFFIX}" and run.domain == "customer-support"
    transcripts = db.run_transcripts(store, run.id)
    assert {t.status for t in transcripts} <= {"passed", "rejected"}, [(t.id, t.status) for t in transcripts]
    passed = [t for t in transcripts if t.status == "passed"]
    assert passed, "the tiny judge passed no transcript: nothing to train on"
    _, rows = db.latest_assessment(store, passed[0].id)
    judged = {r.criterion for r in rows}  # this pack's rubric: every criterion its min_turns allows
    assert judged <= set(pack.rubric.ids) and set(pack.rubric.safety_gates) <= judged

    assert "fixups:" in coach(generated.path, "report", "curation")  # curation: what was fixed, cut or rejected


def test_slices_carry_the_packs_system_prompt(generated: Workspace, sliced: Path):
    examples = [json.loads(line) for line in sliced.read_text().splitlines()]
    assert examples
    system = examples[0]["messages"][0]
    assert system["role"] == "system" and system["content"] == generated.pack.system_prompt
    assert not THERAPY_WORDS.findall(sliced.read_text())


def test_tiny_training_finishes(trained: str):
    assert "finished at step 1/1" in trained


def test_export_is_named_after_the_pack(generated: Workspace, exported: tuple[str, Path]):
    out, gguf = exported
    assert "verified:" not in out  # skipped: see the module docstring
    modelfile = next((generated.path / "train").rglob("Modelfile")).read_text()
    pack = generated.pack
    assert f'SYSTEM """{pack.system_prompt}"""' in modelfile and "ollama create customer-support" in modelfile
    assert gguf.name.startswith("customer-support-tiny-")


def test_eval_compare_of_bundled_base_and_exported_fine_tune(generated: Workspace, exported: tuple[str, Path]):
    _, gguf = exported
    pack, store = generated.pack, generated.store
    out = coach(generated.path, "eval", "compare", "--base", "gemma3-270m", "--candidate", str(gguf),
                "--personas", "1", "--runs", "1", "--exchanges", "1", "--max-tokens", "16", "--seed", "4242")  # fmt: skip
    assert "verdict:" in out
    report_file = next((generated.path / "reports").rglob("comparison_report.json"))
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
