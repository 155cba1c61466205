"""The shipped customer-support pack through the pipeline on the bundled in-process models, offline:
run → curate → slice → train (tiny) → export, and the exported fine-tune answering in llama.cpp.

Every step is the real command a user types, on real models: the bundled tiny
models generate, judge and fix; the trainer fine-tunes the bundled Gemma 3
270M for one step; llama.cpp converts and quantizes, and the export's own
check loads the GGUF and reads its reply under the pack's system prompt (a
one-step fine-tune repeats that prompt, and the check says so). The
conversations read poorly at this size; what this proves is that nothing in
the pipeline needs the therapy pack. The comparison of two models on this
pack is test_pack_eval_compare.py: it needs no fine-tune, so it runs beside
this chain instead of after it.

One workspace walks through the steps, one test per step (module fixtures,
each step's command run once): a failure names the step, and no single test
holds the whole pipeline's time against its timeout.

Sized for a loaded two-core machine. The cost is the judge reading each
criterion's text (about 560 tokens each, a dozen criteria per transcript), so
the run makes the one transcript of one exchange the later steps need, and a
run config points the judge at the bundled Gemma 3 270M, which reads a prompt
in about half SmolLM2's time on a CPU (test_pack_eval_compare.judge_on_gemma);
SmolLM2, the default, still generates and fixes.

One transcript must pass, so it is made the same every time: the run starts
from cold model contexts (as a new `coach` process does) and its id, from
which the conversation's sampling seeds derive, is pinned. That conversation
has its cut-off reply trimmed by curation and then passes the judge (both
SmolLM2 and Gemma pass it).
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
from actors.usecases.curation import curation_report
from coach_tui.cli import main
from state import pipeline as db
from state.store import Store
from tests.test_domain_packs import SUPPORT, THERAPY_WORDS
from tests.test_pack_eval_compare import judge_on_gemma

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
    config = judge_on_gemma(ws.path.parent)
    cold_models()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "secrets", SimpleNamespace(token_hex=lambda n: RUN_ID_SUFFIX[: 2 * n]))
        ws.output = coach(ws.path, "run", "--transcripts", "1", "--seed", SEED, "--lengths", LENGTHS,
                          "--max-tokens", "48", "--min-exchanges", "1", "--config", str(config))  # fmt: skip
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
    result = CliRunner().invoke(main, ["--domain", str(SUPPORT), "-w", str(generated.path), "export-model"])
    # One step of LoRA does not make a model that answers: under the pack's system prompt it repeats
    # that prompt, and the export says so after writing its files (exit 1; see test_train_e2e).
    assert result.exit_code == 1 and "failed verification: the reply" in result.output, result.output
    return result.output, next((generated.path / "train").rglob("*.Q4_K_M.gguf"))


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

    # Curation: what was fixed, cut or rejected. Whether the tiny judge failed anything is the model's
    # business; the report must say what the store holds either way.
    curated = curation_report(store, run.id)
    report = coach(generated.path, "report", "curation", "--run", run.id)
    assert ("nothing curated yet" in report) == curated.empty, report
    assert curated.empty or "fixups:" in report


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
    assert "system prompt" in out  # it loaded in llama.cpp and replied, by repeating the pack's system prompt
    modelfile = next((generated.path / "train").rglob("Modelfile")).read_text()
    pack = generated.pack
    assert f'SYSTEM """{pack.system_prompt}"""' in modelfile and "ollama create customer-support" in modelfile
    assert gguf.name.startswith("customer-support-tiny-")
