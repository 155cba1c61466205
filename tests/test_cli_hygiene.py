"""The command line's manners: mistakes told before any model loads, no stray workspaces, `--json`, progress.

Issue 15, part 7. Every mistake here must be told before anything heavy
starts, which the `no_model_loads` fixture proves: each way a command could
load a model (llama.cpp, the slicing tokenizer, the training stack, a
backend router, the export) raises instead, so a check that came too late
fails the test with `ModelLoadAttempted` rather than passing slowly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from actors.backends.router import ModelRouter
from actors.events import ExchangeAdded, RunStarted, TrainingBegan, TrainingProgress, TranscriptFinished
from actors.run_config import RunConfig
from actors.training.recipe import plan_training
from actors.training.trainer import TrainResult
from actors.usecases.datasets import accepted_transcripts, import_transcripts
from actors.usecases.run_numbers import MAX_EXCHANGES
from actors.usecases.training import Training
from coach_tui.cli import main
from coach_tui.context import may_create_workspace
from coach_tui.progress import HeadlessProgress, ProgressOutput
from state import pipeline as db
from state.store import Store
from tests.scripted import ScriptedBackend

FIXTURES = Path(__file__).parent / "fixtures"
TRANSCRIPTS = sorted((FIXTURES / "transcripts").glob("*.json"))
GOOD_LINE = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


class ModelLoadAttempted(AssertionError):
    """A command reached a model (or the work that loads one) before telling the user's mistake."""


def coach(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def no_model_loads(monkeypatch, clean_env):
    """Every way a command could start loading a model raises `ModelLoadAttempted`."""
    import llama_cpp

    import actors.dataset.tokens
    import actors.training.export
    import actors.training.models
    import actors.training.trainer
    import coach_tui.commands.train

    def refuse(what: str):
        def loading(*args, **kwargs):
            raise ModelLoadAttempted(f"{what} was called before the mistake was told")

        return loading

    monkeypatch.setattr(llama_cpp, "Llama", refuse("llama_cpp.Llama"))
    monkeypatch.setattr(actors.dataset.tokens, "gemma3_counter", refuse("gemma3_counter (the slicing tokenizer)"))
    monkeypatch.setattr(actors.training.models, "resolve_model", refuse("resolve_model"))
    monkeypatch.setattr(actors.training.trainer, "resolve_model", refuse("resolve_model"))
    monkeypatch.setattr(actors.training.trainer, "train_blocking", refuse("train_blocking"))
    monkeypatch.setattr(coach_tui.commands.train, "plan_training_run", refuse("plan_training_run (imports torch)"))
    monkeypatch.setattr(actors.training.export, "export_model", refuse("the export"))
    monkeypatch.setattr(ModelRouter, "from_config", staticmethod(refuse("ModelRouter.from_config")))


def told(result, *words: str) -> str:
    """The command's error output, asserting it failed without a traceback and said `words`."""
    assert not isinstance(result.exception, ModelLoadAttempted), result.exception
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output
    return result.output


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace holding the three fixture transcripts, accepted."""
    ws = tmp_path / "ws"
    store = Store.for_workspace(ws)
    assert import_transcripts(store, TRANSCRIPTS, status="accepted").ok
    store.close()
    return ws


# --- 2. a workspace is created only by the commands that create data --------------------------------


READERS = {"review", "report", "slice", "train", "eval", "export", "export-model", "calibrate", "doctor", "models"}
"""Commands that read or build on a workspace's data: none of them may create one."""


def test_only_commands_that_create_data_may_create_a_workspace():
    creating = {name for name, command in main.commands.items() if may_create_workspace(command)}
    assert {"run", "import"} <= creating
    assert not creating & READERS


READING_COMMANDS = [
    ["review", "--list"],
    ["review", "--show", "1"],
    ["review", "--list", "--json"],
    ["report", "curation"],
    ["report", "curation", "--json"],
    ["slice", "--out", "{tmp}/data.jsonl"],
    ["train", "--data", "{tmp}/good.jsonl"],
    ["train", "--data", "{tmp}/good.jsonl", "--json"],
    ["eval", "base", "--model", "smollm2-135m-instruct"],
    ["eval", "compare", "--base", "smollm2-135m-instruct", "--candidate", "gemma3-270m", "--json"],
    ["eval", "report", "--base", "a*", "--candidate", "b*"],
    ["export", "transcripts", "{tmp}/out"],
    ["export-model"],
    ["export-model", "train-1", "--quant", "Q8_0"],
    ["calibrate", "--quick"],
]


@pytest.mark.parametrize("args", READING_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_workspace_is_one_line_and_is_not_created(tmp_path, no_model_loads, args):
    (tmp_path / "good.jsonl").write_text(GOOD_LINE)
    ws = tmp_path / "typo"
    result = coach("-w", str(ws), *(a.format(tmp=tmp_path) for a in args))
    assert result.exit_code == 2, result.output
    told(result)
    assert result.stderr.splitlines() == [
        f"coach: error: no workspace at {ws} (coach run or coach import creates one; check --workspace or "
        "$COACH_WORKSPACE)"
    ]
    assert result.stdout == ""
    assert not ws.exists()


def test_a_folder_without_a_database_is_no_workspace_either(tmp_path, no_model_loads):
    (tmp_path / "Documents").mkdir()
    result = coach("-w", str(tmp_path / "Documents"), "review", "--list")
    assert result.exit_code == 2 and "no workspace at" in told(result)
    assert list((tmp_path / "Documents").iterdir()) == []


def test_import_creates_the_workspace_it_fills(tmp_path):
    ws = tmp_path / "new"
    result = coach("-w", str(ws), "import", *map(str, TRANSCRIPTS))
    assert result.exit_code == 0, result.output
    assert (ws / "coach.db").is_file()
    assert coach("-w", str(ws), "review", "--list").exit_code == 0  # and now it exists for the others


def test_a_database_url_names_its_own_database_wherever_the_workspace_is(tmp_path, no_model_loads):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    Store(url).close()
    result = coach("-w", str(tmp_path / "unused"), "--db", url, "review", "--list")
    assert result.exit_code == 0, result.output
    assert "no fixups waiting" in result.output


# --- 3. bad numbers: one message each, naming the option, before anything starts --------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--mix", "short=nan", "short=nan: a share must be a finite number"),
        ("--mix", "short=inf", "short=inf: a share must be a finite number"),
        ("--mix", "short=0", "every share is 0, so the run would plan no transcript"),
        ("--mix", "short=0,long=0", "every share is 0, so"),
        ("--mix", "short=-1", "short=-1: a share cannot be negative"),
        ("--mix", "short=lots", "short=lots is not a number"),
        ("--mix", "tiny=1", "tiny has no length"),
        ("--mix", "short=1,short=2", "short is given twice"),
        ("--lengths", "short=100000", f"short=100000 is more than {MAX_EXCHANGES} exchanges"),
        ("--lengths", f"very_long={MAX_EXCHANGES + 1}", f"very_long={MAX_EXCHANGES + 1} is more than"),
        ("--lengths", "short=0", "short=0: a conversation needs at least 1 exchange"),
        ("--lengths", "short=-3", "short=-3: a conversation needs at least 1 exchange"),
        ("--lengths", "short=2.5", "short=2.5 is not a whole number of exchanges"),
        ("--lengths", "shrot=3", "shrot is not a length class"),
        ("--lengths", "short", "expected CLASS=NUMBER pairs"),
    ],
)
def test_bad_run_numbers_are_one_clear_message_before_anything_starts(tmp_path, no_model_loads, option, value, message):
    ws = tmp_path / "ws"
    result = coach("-w", str(ws), "run", option, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': {message}" in told(result)
    assert len([line for line in result.output.splitlines() if line.startswith("Error:")]) == 1
    assert not ws.exists()  # nothing was started, not even the workspace


def test_good_numbers_pass_the_checks_and_reach_the_run(tmp_path, no_model_loads):
    """The same checks let a real plan through: a custom class with its share, zero for another."""
    result = coach(
        "-w",
        str(tmp_path / "ws"),
        "run",
        "--lengths",
        f"short=3,tiny=1,long={MAX_EXCHANGES}",
        "--mix",
        "short=0,tiny=1",
    )
    # The run got past every check and started its work, which is where the guard stops it.
    assert isinstance(result.exception, ModelLoadAttempted), result.output
    assert (tmp_path / "ws" / "coach.db").is_file()  # `coach run` creates its workspace


# --- 1. every argument is checked before any model loads --------------------------------------------


def test_train_on_a_missing_file_is_told_at_once(tmp_path, workspace, no_model_loads):
    result = coach("-w", str(workspace), "train", "--data", "/missing.jsonl")
    assert result.exit_code == 2
    assert "Invalid value for '--data': File '/missing.jsonl' does not exist" in told(result)


def test_train_reads_every_line_of_the_data_before_loading(tmp_path, workspace, no_model_loads):
    data = tmp_path / "bad.jsonl"
    data.write_text(GOOD_LINE + "not json\n" + '{"messages": [{"role": "user", "content": "hi"}]}\n')
    result = coach("-w", str(workspace), "train", "--data", str(data))
    assert result.exit_code == 1
    told(result, "2 unusable line(s)", "line 2: not JSON", "line 3: no assistant turn to learn from")


def test_train_data_is_checked_before_the_workspace_and_out_must_be_a_folder(tmp_path, workspace, no_model_loads):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n")
    result = coach("-w", str(tmp_path / "typo"), "train", "--data", str(data))
    assert result.exit_code == 1 and "no training examples" in told(result)
    good = tmp_path / "good.jsonl"
    good.write_text(GOOD_LINE)
    result = coach("-w", str(workspace), "train", "--data", str(good), "--out", str(good))
    assert result.exit_code == 2 and "Invalid value for '--out'" in told(result)
    result = coach("-w", str(workspace), "train", "--data", str(good), "--presets", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "Invalid value for '--presets'" in told(result)


def test_export_model_checks_quantization_run_and_out_before_loading(tmp_path, workspace, no_model_loads):
    result = coach("-w", str(workspace), "export-model", "--quant", "Q9_NOPE")
    assert result.exit_code == 1 and "unknown quantization 'Q9_NOPE'" in told(result)
    result = coach("-w", str(workspace), "export-model", "train-404")
    assert result.exit_code == 1 and "no training run 'train-404' in this workspace" in told(result)
    result = coach("-w", str(workspace), "export-model")
    assert result.exit_code == 1 and "no training run in this workspace yet" in told(result)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = coach("-w", str(workspace), "export-model", "--out", str(blocker))
    assert result.exit_code == 2 and "Invalid value for '--out'" in told(result)


def test_slice_checks_its_out_before_the_tokenizer_loads(tmp_path, workspace, no_model_loads):
    result = coach("-w", str(workspace), "slice", "--out", str(tmp_path))
    assert result.exit_code == 2 and "Invalid value for '--out'" in told(result)


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "base", "--model", "smollm2-135m-instruct"],
        ["eval", "compare", "--base", "smollm2-135m-instruct", "--candidate", "gemma3-270m"],
        ["calibrate", "--quick"],
        ["run"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_missing_run_config_is_told_before_the_workspace_is_touched(tmp_path, no_model_loads, command):
    ws = tmp_path / "typo"
    result = coach("-w", str(ws), *command, "--config", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    told(result, "nope.yaml", "no such file")
    assert not ws.exists()


# --- 4. --json: one JSON document on stdout, nothing else -------------------------------------------


def stdout_json(result) -> dict:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return json.loads(result.stdout)


def test_models_json_lists_backends_and_bundled_models(no_model_loads, monkeypatch):
    monkeypatch.setattr(  # `--no-check` never contacts a backend: the real router, nothing loaded
        ModelRouter,
        "from_config",
        staticmethod(lambda config=None: ModelRouter(config or RunConfig(), {"embedded": ScriptedBackend("embedded")})),
    )
    result = coach("models", "--json", "--no-check")
    assert result.exit_code == 0, result.output
    doc = stdout_json(result)
    assert doc["checked"] is False and doc["config"] is None
    (embedded,) = doc["backends"]
    assert embedded["name"] == "embedded" and embedded["reachable"] is None and "judge" in embedded["roles"]
    assert {m["name"] for m in doc["bundled"]} == {"smollm2-135m-instruct", "gemma3-270m"}


def test_models_json_says_which_backends_answered(clean_env, monkeypatch):
    monkeypatch.setattr(
        ModelRouter,
        "from_config",
        staticmethod(lambda config=None: ModelRouter(config or RunConfig(), {"embedded": ScriptedBackend("embedded")})),
    )
    doc = stdout_json(coach("models", "--json"))
    (embedded,) = doc["backends"]
    assert doc["checked"] is True and embedded["reachable"] is True and embedded["error"] is None


def test_review_list_and_report_curation_json(workspace, no_model_loads):
    store = Store.for_workspace(workspace)
    first, second = (t.id for t in accepted_transcripts(store).transcripts[:2])
    fixup_id = db.save_fixup(
        store,
        None,
        first,
        exchange_number=1,
        reason_kind="criterion",
        reason="CQ8",
        reasoning="It names a diagnosis.",
        original="You have depression.",
        proposed="That sounds heavy.",
        entailment_ok=True,
        entailment_reasoning="The next message still follows.",
        decision="pending",
    )
    db.record_rejection(
        store, None, second, stage="assessment", action="truncated", reason_kind="criterion", reason="MT1,CQ2",
        kept_exchanges=10,
    )  # fmt: skip
    store.close()

    listed = coach("-w", str(workspace), "review", "--list", "--json")
    assert listed.exit_code == 0, listed.output
    (fixup,) = stdout_json(listed)["fixups"]
    assert (fixup["id"], fixup["transcript_id"], fixup["reason"], fixup["continuity"]) == (
        fixup_id,
        first,
        "CQ8",
        "follows",
    )
    assert fixup["proposed"] == "That sounds heavy." and fixup["decision"] == "pending"

    shown = stdout_json(coach("-w", str(workspace), "review", "--show", str(fixup_id), "--json"))
    assert shown["fixup"]["id"] == fixup_id and "transcript_status" in shown

    report = coach("-w", str(workspace), "report", "curation", "--json")
    assert report.exit_code == 0, report.output
    doc = stdout_json(report)
    assert doc["rejections"] == [
        {"action": "truncated", "stage": "assessment", "kind": "criterion", "reason": "MT1,CQ2", "count": 1}
    ]
    assert doc["fixups"] == [{"kind": "criterion", "decision": "pending", "count": 1}]
    assert {c["criterion"] for c in doc["failing_criteria"]} == {"MT1", "CQ2"}
    refused = coach("-w", str(workspace), "review", "--accept", str(fixup_id), "--json")
    assert refused.exit_code == 2 and "--json goes with --list or --show" in refused.output


def test_train_json_is_the_result_alone_on_stdout(tmp_path, workspace, monkeypatch, clean_env):
    """The face around a training run: the plan and progress on stderr, the result as JSON on stdout."""
    import coach_tui.commands.train as train_command

    data = tmp_path / "good.jsonl"
    data.write_text(GOOD_LINE)
    monkeypatch.setattr(train_command, "plan_training_run", lambda request: plan_training(request, cuda=False))

    async def run(self: Training) -> TrainResult:  # what the trainer reports, without training
        self.on_event(TrainingBegan(step=0, max_steps=2))
        self.on_event(TrainingProgress(step=2, max_steps=2, loss=1.25, lr=1e-4, eta_s=0.0))
        return TrainResult("train-7", "finished", tmp_path / "run", tmp_path / "run" / "adapter", {"last_loss": 1.25})

    monkeypatch.setattr(Training, "run", run)
    result = coach("-w", str(workspace), "train", "--data", str(data), "--json")
    assert result.exit_code == 0, result.output
    doc = stdout_json(result)
    assert doc["run_id"] == "train-7" and doc["status"] == "finished"
    assert doc["adapter_dir"] == str(tmp_path / "run" / "adapter") and doc["metrics"] == {"last_loss": 1.25}
    assert doc["next"] == "coach export-model train-7"
    assert "preset tiny:" in result.stderr and "step 2/2  loss 1.2500" in result.stderr


@pytest.fixture
def evaluation(monkeypatch, tmp_path):
    """`coach eval`'s use case replaced by what it reports: its events, then real reports of known scores.

    The evaluation itself (and the same CLI end to end on scripted models) is
    tested in test_eval_statistics.py and test_judge_trust.py; here it is the face.
    """
    import coach_tui.commands.eval as eval_command
    from actors.evaluation.protocol import base_report, compare, comparison_report
    from actors.usecases.evaluations import EvalOutcome, EvaluationOpened, ModelTurn
    from tests.test_eval_statistics import results_of

    results = results_of([[0.5], [0.55], [0.6]], [[0.75], [0.7], [0.8]])

    async def evaluate(store, pack, workspace, request, on_event=None):
        labels = tuple(m or "smollm2-135m-instruct" for m in request.models)
        on_event(EvaluationOpened("ev-1", request.kind, labels, 3, 1, 1, False))
        for label in labels:
            on_event(ModelTurn(label))
            on_event(RunStarted(run_id="ev-1", transcripts=3))
            for i in range(3):
                on_event(TranscriptFinished(run_id="ev-1", transcript_id=f"ev-1-{label}-p{i:02d}", status="passed"))
        if request.kind == "compare":
            report = comparison_report(compare(results, "base", "cand"), results)
        else:
            report = base_report([r for r in results if r.model == "base"], "base")
        path = tmp_path / "report"
        return EvalOutcome("ev-1", request.kind, labels, report, path.with_suffix(".json"), path.with_suffix(".md"))

    monkeypatch.setattr(eval_command, "evaluate", evaluate)


def test_eval_base_and_compare_json_with_progress_on_stderr(workspace, evaluation, clean_env):
    base = coach("-w", str(workspace), "eval", "base", "--json")
    assert base.exit_code == 0, base.output
    doc = stdout_json(base)
    assert (doc["run_id"], doc["kind"], doc["models"]) == ("ev-1", "base", ["smollm2-135m-instruct"])
    assert doc["report"]["model"] == "base" and "decision" in doc["report"] and doc["report_md"].endswith(".md")
    assert "evaluation run ev-1: 3 persona(s)" in base.stderr and "3/3 done" in base.stderr

    args = ["eval", "compare", "--base", "base", "--candidate", "cand", "--json"]
    compare = coach("-w", str(workspace), *args)
    doc = stdout_json(compare)
    assert doc["kind"] == "compare" and doc["report"]["paired"]["n_pairs"] == 3
    assert "— cand as eval_target" in compare.stderr
    # The exit status still follows the verdict, so a pipeline can gate on it.
    assert compare.exit_code == (0 if doc["report"]["verdict"]["outcome"] == "PASS" else 1)


def test_eval_report_json_from_stored_verdicts(tmp_path, no_model_loads):
    ws = str(tmp_path / "ws")
    assert coach("-w", ws, "import", str(FIXTURES / "earlier_eval")).exit_code == 0
    result = coach("-w", ws, "eval", "report", "--base", "base_*", "--candidate", "therapy-tiny-ft", "--json")
    doc = stdout_json(result)
    assert doc["kind"] == "stored" and doc["base"] == "base_*" and doc["base_transcripts"] >= 1
    assert doc["report"]["paired"]["n_pairs"] >= 1 and Path(doc["report_md"]).is_file()
    assert result.exit_code == (0 if doc["report"]["verdict"]["outcome"] == "PASS" else 1)


def test_json_is_strict_even_for_numbers_json_cannot_hold():
    from coach_tui.json_output import plain

    assert json.dumps(plain({"p": float("nan"), "d": float("inf"), "x": (1, Path("/a"))}), allow_nan=False) == (
        '{"p": null, "d": null, "x": [1, "/a"]}'
    )


# --- 5. progress: plain lines off a terminal, bars on one --------------------------------------------


class WordCounter:
    """A cheap stand-in for the Gemma 3 tokenizer: 4 tokens a turn plus its words."""

    name = "test-words"

    def count_messages(self, messages) -> int:
        return 1 + sum(4 + len(m["content"].split()) for m in messages)

    def segment_counts(self, messages) -> list[int]:
        counts = [4 + len(m["content"].split()) for m in messages]
        counts[0] += 1
        return counts


def test_slice_prints_plain_progress_lines_when_not_on_a_terminal(tmp_path, workspace, no_model_loads, monkeypatch):
    import actors.dataset.tokens

    monkeypatch.setattr(actors.dataset.tokens, "gemma3_counter", lambda: WordCounter())
    result = coach("-w", str(workspace), "slice", "--out", str(tmp_path / "data.jsonl"))
    assert result.exit_code == 0, result.output
    examples = len((tmp_path / "data.jsonl").read_text().splitlines())
    lines = result.stdout.splitlines()
    progress = [line for line in lines if re.match(r"\[ *\d+\.\ds\] ", line)]
    stages = [line.split("] ", 1)[1] for line in progress]
    assert "reading transcripts: 3/3" in stages and "loading the tokenizer: 1/1" in stages
    assert "slicing: 3/3" in stages and f"writing examples: {examples}/{examples}" in stages
    assert len(progress) <= 4 * 11  # a few per stage, never one per item
    assert "\x1b[" not in result.stdout and "━" not in result.stdout  # no bars, no terminal codes


def test_plain_progress_speaks_a_few_times_per_stage(capsys):
    out = ProgressOutput(tty=False)
    task = out.task("writing examples", 1000)
    for done in range(1, 1001):
        out.update(task, completed=done)
    quiet = out.task("training steps", 10, plain=False)
    out.update(quiet, completed=5)
    said = [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert said[0] == "writing examples: 0/1000" and said[-1] == "writing examples: 1000/1000"
    assert len(said) == 11  # the start and each tenth
    assert not any("training steps" in line for line in said)  # a bar-only task stays off the log


def terminal() -> tuple[Console, object]:
    import io

    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=120, color_system=None), buffer


def test_on_a_terminal_the_run_view_draws_bars_with_its_lines_above():
    console, buffer = terminal()
    with ProgressOutput(tty=True, console=console) as out:
        view = HeadlessProgress(output=out)
        view.render(RunStarted(run_id="r", transcripts=2))
        for tid in ("t1", "t2"):
            view.render(ExchangeAdded(run_id="r", transcript_id=tid, number=1, target=1))
            view.render(TranscriptFinished(run_id="r", transcript_id=tid, status="passed"))
    text = buffer.getvalue()
    assert "2 transcript(s) to work on" in text and "t2: passed — 2/2 done, 2 exchanges" in text
    assert "transcripts" in text and "2/2" in text and "━" in text  # the bar, drawn


def test_on_a_terminal_a_stage_without_a_total_shows_its_count_not_a_question_mark():
    console, buffer = terminal()
    with ProgressOutput(tty=True, console=console) as out:
        task = out.task("merging the adapter", None)
        out.update(task, description="quantizing to model.Q4_K_M.gguf")
    text = buffer.getvalue()
    assert "quantizing to model.Q4_K_M.gguf" in text and "0/?" not in text and " 0 " not in text
