"""Background jobs without the app: a real `coach` command detached, followed through its files, stopped.

The command is `coach rubric score` reading a named pipe: it is the real CLI
in a real process, cheap to start, and it waits on the pipe until the test
writes the answers, so "still running" and "stopped while running" are
certain rather than a race with a fast command.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from actors.jobs import records
from actors.jobs.records import job_state
from actors.usecases.jobs import (
    CompareJob,
    ExportJob,
    FieldProblem,
    JobPlan,
    SliceJob,
    TrainJob,
    exit_text,
    job,
    jobs,
    log_tail,
    plan_compare,
    plan_export,
    plan_slice,
    plan_train,
    start_job,
    stop_job,
)
from state.errors import CoachError

ANSWERS = {"CQ1": "YES", "CQ2": "NO"}


def score_plan(fifo: Path) -> JobPlan:
    """`coach rubric score FIFO`: blocks on the pipe until `feed` writes the answers."""
    return JobPlan("rubric", "score answers from a pipe", ("rubric", "score", str(fifo)))


def feed(fifo: Path, text: str, timeout: float = 30.0) -> None:
    """Write to the pipe once the command has opened it for reading (never blocks the test for good)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as err:
            if err.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        os.set_blocking(fd, True)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def wait_until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def kill_leftovers(workspace: Path) -> None:
    for j in jobs(workspace):
        if j.running and j.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(j.pid, signal.SIGKILL)


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    yield ws
    kill_leftovers(ws)


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "answers.json"
    os.mkfifo(path)
    return path


def test_a_job_runs_the_real_command_in_its_own_session_and_records_how_it_ended(workspace, fifo):
    started = start_job(workspace, score_plan(fifo))
    assert started.state == "running" and started.kind == "rubric"
    assert started.argv[:5] == (sys.executable, "-m", "coach_tui", "--workspace", str(workspace.resolve()))
    assert started.command == f"coach --workspace {workspace.resolve()} rubric score {fifo}"
    folder = workspace / "jobs" / started.id
    assert (folder / "job.json").is_file() and (folder / "log.txt").is_file()

    running = wait_until(lambda: (j := job(workspace, started.id)).pid and j)
    assert running.state == "running"
    assert os.getpgid(running.pid) == running.pid  # a process group of its own: a stop reaches all it starts
    assert os.getsid(running.pid) != os.getsid(0)  # and a session: closing our terminal does not reach it

    feed(fifo, json.dumps(ANSWERS))
    done = wait_until(lambda: (j := job(workspace, started.id)) and not j.running and j)
    assert (done.state, done.exit_code, done.note) == ("finished", 0, None)
    assert done.ended_at is not None and done.started_at is not None
    tail = log_tail(done.log, 10)
    assert tail[0] == f"$ {done.command}"
    scored = json.loads(next(line for line in tail if line.startswith("{")))
    assert scored["file"] == str(fifo) and "score" in scored
    assert tail[-1].startswith("— exit 0 after")
    assert [j.id for j in jobs(workspace)] == [started.id]


def test_stop_sends_sigterm_and_the_job_is_stopped(workspace, fifo):
    started = start_job(workspace, score_plan(fifo))
    with pytest.raises(CoachError, match="a rubric job is already running"):
        start_job(workspace, score_plan(fifo))  # one job of a kind at a time
    wait_until(lambda: job(workspace, started.id).pid)

    asked = stop_job(workspace, started.id)
    assert asked.stop_requests == 1 and asked.state in ("stopping", "stopped")
    assert json.loads((asked.folder / "stop.json").read_text())["signal"] == "SIGTERM"
    done = wait_until(lambda: (j := job(workspace, started.id)) and not j.running and j)
    assert done.state == "stopped" and done.exit_code == -signal.SIGTERM
    assert exit_text(done.exit_code) == "-15 (SIGTERM)"
    assert log_tail(done.log)[-1].startswith("— exit -15 (SIGTERM)")
    with pytest.raises(CoachError, match="is not running \\(stopped\\)"):
        stop_job(workspace, started.id)


def test_a_command_that_fails_is_failed_with_its_exit_code_and_message(workspace):
    started = start_job(workspace, JobPlan("rubric", "a mistyped command", ("rubric", "scrore")))
    done = wait_until(lambda: (j := job(workspace, started.id)) and not j.running and j)
    assert (done.state, done.exit_code) == ("failed", 2)  # click's usage error
    assert any("No such command 'scrore'" in line for line in log_tail(done.log))


def test_state_comes_from_the_files_alone():
    assert job_state(None, 0, alive=True) == ("running", None)
    assert job_state(None, 1, alive=True) == ("stopping", None)
    assert job_state({"exit_code": 0}, 0, alive=False) == ("finished", None)
    assert job_state({"exit_code": 3}, 0, alive=False) == ("failed", None)
    assert job_state({"exit_code": -15}, 1, alive=False) == ("stopped", None)
    assert job_state(None, 0, alive=False)[0] == "failed"  # its supervisor was killed: no exit code, not running
    assert job_state(None, 2, alive=False)[0] == "stopped"


def test_a_job_whose_supervisor_is_gone_is_not_shown_running(workspace):
    """No lock held and no result: the job ended without a word (kill -9), whatever pid it had."""
    folder = workspace / "jobs" / "20250101-000000-train-abcd"
    folder.mkdir(parents=True)
    records.write_json(folder / "job.json", {"id": folder.name, "kind": "train", "title": "t", "argv": []})
    records.write_json(folder / "started.json", {"pid": os.getpid(), "started_at": records.now_iso()})  # alive pid
    (folder / "lock").touch()
    found = job(workspace, folder.name)
    assert found.state == "failed" and not found.running and "without recording an exit code" in found.note
    with pytest.raises(CoachError, match="not running"):
        stop_job(workspace, folder.name)


# --- the forms' checks -------------------------------------------------------------------------------------


def field_of(call) -> tuple[str, str]:
    with pytest.raises(FieldProblem) as caught:
        call()
    return caught.value.field, caught.value.message


def test_train_checks_name_the_field(tmp_path):
    missing = tmp_path / "nope.jsonl"
    field, message = field_of(lambda: plan_train(TrainJob(data=missing)))
    assert field == "Data" and str(missing) in message and "no such file" in message
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    assert field_of(lambda: plan_train(TrainJob(data=empty))) == ("Data", f"{empty} is empty")
    data = tmp_path / "training_data.jsonl"
    data.write_text('{"messages": []}\n')
    field, message = field_of(lambda: plan_train(TrainJob(data=data, preset="huge")))
    assert field == "Preset" and "tiny" in message
    assert field_of(lambda: plan_train(TrainJob(data=data, val_fraction=1.0)))[0] == "Validation"
    assert field_of(lambda: plan_train(TrainJob(data=data, steps=0))) == ("Steps", "at least 1, not 0")

    plan = plan_train(TrainJob(data=data, steps=3, val_fraction=0.2, over_length="drop", resume=True))
    assert plan.kind == "train"
    assert plan.args == (
        *("train", "--data", str(data.resolve()), "--preset", "tiny", "--loss", "all-assistant"),
        *("--steps", "3", "--val-fraction", "0.2", "--over-length", "drop", "--resume"),
    )


def test_train_method_reads_the_data_it_trains_on_and_only_dpo_or_grpo_continue_an_adapter(tmp_path):
    examples = tmp_path / "training_data.jsonl"
    examples.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    pairs = tmp_path / "preference_pairs.jsonl"
    pairs.write_text('\n{"prompt": [{"role": "user", "content": "hi"}], "chosen": "a", "rejected": "b"}\n')
    missing = tmp_path / "preference_pairs.jsonl.missing"
    assert field_of(lambda: plan_train(TrainJob(data=missing, method="dpo")))[1].endswith(
        "(slice with a Pairs file first: s on this screen)"
    )
    field, message = field_of(lambda: plan_train(TrainJob(data=examples, method="dpo")))
    assert field == "Data" and "SFT examples" in message and "Pairs" in message
    field, message = field_of(lambda: plan_train(TrainJob(data=pairs)))
    assert field == "Data" and "preference pairs" in message
    assert field_of(lambda: plan_train(TrainJob(data=pairs, method="ppo")))[0] == "Method"
    field, message = field_of(lambda: plan_train(TrainJob(data=examples, from_adapter="train-1")))
    assert field == "From adapter" and "only dpo and grpo" in message

    plan = plan_train(TrainJob(data=pairs, method="dpo", from_adapter="train-1", steps=2))
    assert plan.args == (
        *("train", "--data", str(pairs.resolve()), "--preset", "tiny", "--method", "dpo"),
        *("--from-adapter", "train-1", "--steps", "2"),
    )
    assert "(dpo)" in plan.title
    # grpo takes the prompts of either file; a file that is not JSON is left to the command to explain
    assert plan_train(TrainJob(data=examples, method="grpo")).args[-2:] == ("--method", "grpo")
    odd = tmp_path / "odd.jsonl"
    odd.write_text("not json\n")
    assert plan_train(TrainJob(data=odd, method="dpo")).kind == "train"


def test_a_slice_may_also_write_pairs_to_a_file_of_their_own(tmp_path):
    out = tmp_path / "a.jsonl"
    assert field_of(lambda: plan_slice(SliceJob(out=out, max_tokens=10, pairs=out), passed_transcripts=1)) == (
        "Pairs",
        "the pairs need a file of their own, not the examples' file",
    )
    assert field_of(lambda: plan_slice(SliceJob(out=out, max_tokens=10, pairs=tmp_path), passed_transcripts=1))[0] == (
        "Pairs"
    )
    missing = tmp_path / "no" / "p.jsonl"
    assert field_of(lambda: plan_slice(SliceJob(out=out, max_tokens=10, pairs=missing), passed_transcripts=1))[0] == (
        "Pairs"
    )
    plan = plan_slice(SliceJob(out=out, max_tokens=10, pairs=tmp_path / "p.jsonl"), passed_transcripts=1)
    assert plan.args[-2:] == ("--pairs", str(tmp_path / "p.jsonl")) and "pairs → p.jsonl" in plan.title


def test_slice_export_and_compare_checks_name_the_field(tmp_path):
    assert field_of(lambda: plan_slice(SliceJob(out=tmp_path, max_tokens=10), passed_transcripts=3))[0] == "Out"
    field, message = field_of(
        lambda: plan_slice(SliceJob(out=tmp_path / "a.jsonl", max_tokens=10), passed_transcripts=0)
    )
    assert field == "Out" and "no passed transcripts" in message
    plan = plan_slice(SliceJob(out=tmp_path / "a.jsonl", max_tokens=500, seed=4), passed_transcripts=2)
    assert plan.args[:3] == ("slice", "--out", str(tmp_path / "a.jsonl")) and plan.args[-2:] == ("--seed", "4")

    assert field_of(lambda: plan_export(ExportJob(run="train-x"), finished_runs={})) == (
        "Run",
        "train-x is not a finished training run of this workspace",
    )
    gone = tmp_path / "adapter"
    assert "no longer on disk" in field_of(lambda: plan_export(ExportJob(run="r"), finished_runs={"r": str(gone)}))[1]
    assert plan_export(ExportJob(run="r", quant="Q8_0", verify=False), finished_runs={"r": ""}).args == (
        *("export-model", "r", "--quant", "Q8_0", "--no-verify"),
    )

    same = CompareJob(base="gemma3-270m", candidate="gemma3-270m")
    assert field_of(lambda: plan_compare(same))[0] == "Candidate"
    missing = CompareJob(base="gemma3-270m", candidate=str(tmp_path / "fine.gguf"))
    assert field_of(lambda: plan_compare(missing)) == ("Candidate", f"no such GGUF file: {tmp_path / 'fine.gguf'}")
    assert field_of(lambda: plan_compare(CompareJob(base="gpt-9", candidate="gemma3-270m")))[0] == "Base"
    gguf = tmp_path / "fine.gguf"
    gguf.write_bytes(b"GGUF")
    plan = plan_compare(CompareJob(base="gemma3-270m", candidate=str(gguf), personas=2, exchanges=4))
    assert plan.kind == "eval" and plan.args[:6] == (
        "eval",
        "compare",
        "--base",
        "gemma3-270m",
        "--candidate",
        str(gguf),
    )
    assert "2×1×4" in plan.title
