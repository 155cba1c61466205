"""Background jobs: start a long `coach` command from the app, follow it, stop it — from any later app too.

The app's forms (slice, train, export-model, eval compare) hand a checked
`JobPlan` to `start_job`, which runs the real command line
(`python -m coach_tui -w WORKSPACE …`) under a detached supervisor
(`actors.jobs.runner`), with everything it prints going to the job's log.
Closing the app does not end the job; the next app reads the same folder
(`jobs`, `job`) and sees it running, or how it ended.

The commands record their own runs in the store as they do from a shell, so
the Train and Eval screens follow a job's training or evaluation exactly as
they follow one started in a terminal.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from actors.jobs import records
from actors.jobs.commands import (
    LOSSES,
    METHODS,
    OVER_LENGTH,
    OVER_LIMIT,
    QUANTS,
    CompareJob,
    ExportJob,
    FieldProblem,
    JobPlan,
    SliceJob,
    TrainJob,
    plan_compare,
    plan_export,
    plan_slice,
    plan_train,
    preset_names,
)
from actors.jobs.records import FAILED, FINISHED, RUNNING, STOPPED, STOPPING, Job, exit_text, log_tail
from state import training_records
from state.errors import CoachError
from state.store import Store

__all__ = [
    "FAILED",
    "FINISHED",
    "LOSSES",
    "METHODS",
    "OVER_LENGTH",
    "OVER_LIMIT",
    "QUANTS",
    "RUNNING",
    "STOPPED",
    "STOPPING",
    "CompareJob",
    "ExportJob",
    "FieldProblem",
    "Job",
    "JobPlan",
    "SliceJob",
    "TrainJob",
    "compare_defaults",
    "default_preference_pairs",
    "default_training_data",
    "exit_text",
    "exportable_runs",
    "job",
    "jobs",
    "log_tail",
    "plan_compare",
    "plan_export",
    "plan_slice",
    "plan_train",
    "preset_names",
    "start_job",
    "stop_job",
]

STOP_SIGNALS = {"train": "SIGINT", "eval": "SIGINT"}
"""The signal a first stop sends, by kind; SIGTERM for the others (slice and export write atomically).

`coach train` takes SIGINT as "finish this step, save a checkpoint and record
the run as interrupted", so a stopped training resumes with nothing lost;
`coach eval` takes it as Ctrl-C: it releases the run's lease and prints the
resume command into the log. SIGTERM would end either at once with its run
still marked running. A second stop sends SIGKILL.
"""

_spawned: dict[str, subprocess.Popen] = {}
"""Supervisors this process started, kept only to collect their exit (no zombie while the app stays open)."""


def _reap() -> None:
    for job_id, proc in list(_spawned.items()):
        if proc.poll() is not None:
            _spawned.pop(job_id, None)


def jobs(workspace: Path, limit: int = 50) -> list[Job]:
    """The workspace's jobs, newest first."""
    _reap()
    return records.read_jobs(workspace, limit)


def job(workspace: Path, job_id: str) -> Job | None:
    _reap()
    return records.read_job(records.jobs_root(workspace) / job_id)


def _new_id(kind: str) -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{kind}-{secrets.token_hex(2)}"


def command_line(plan: JobPlan, workspace: Path, *, domain: str | None = None, python: str | None = None) -> list[str]:
    """The full argv: this Python, the `coach` command, the workspace (and pack), then the plan's arguments."""
    argv = [python or sys.executable, "-m", "coach_tui", "--workspace", str(Path(workspace).resolve())]
    if domain:
        argv += ["--domain", str(Path(domain).expanduser().resolve())]
    return [*argv, *plan.args]


def start_job(
    workspace: Path,
    plan: JobPlan,
    *,
    domain: str | None = None,
    db_url: str | None = None,
    one_per_kind: bool = True,
) -> Job:
    """Start the plan's command in the background and return the job, already running.

    `one_per_kind`: refuse while a job of the same kind still runs (two trainings would share
    one machine; two slices would write one file). `db_url` reaches the command through
    `COACH_DB_URL`, never its command line, where any user of the machine could read a password.
    """
    if one_per_kind:
        busy = [j for j in jobs(workspace) if j.kind == plan.kind and j.running]
        if busy:
            raise CoachError(f"a {plan.kind} job is already running ({busy[0].id}): stop it first, or wait")
    root = records.jobs_root(workspace)
    job_id = _new_id(plan.kind)
    folder = root / job_id
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
        lock_fd = records.take_lock(folder)
    except OSError as err:
        raise CoachError(f"cannot create the job folder {folder}: {err.strerror or err}") from None
    try:
        records.write_json(
            folder / records.JOB,
            {
                "id": job_id,
                "kind": plan.kind,
                "title": plan.title,
                "argv": command_line(plan, workspace, domain=domain),
                "cwd": str(Path.cwd()),
                "created_at": records.now_iso(),
                "stop_signal": STOP_SIGNALS.get(plan.kind, "SIGTERM"),
            },
        )
        log_fd = os.open(folder / records.LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        env = {**os.environ, **({"COACH_DB_URL": db_url} if db_url else {})}
        try:
            _spawned[job_id] = subprocess.Popen(
                [sys.executable, "-m", "actors.jobs.runner", str(folder), str(lock_fd)],
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,  # its own session: closing the app or its terminal does not reach it
                pass_fds=(lock_fd,),
                cwd=Path(__file__).resolve().parents[2],  # where `actors` is importable from, installed or not
                env=env,
            )
        finally:
            os.close(log_fd)
    except OSError as err:
        raise CoachError(f"cannot start the job {job_id}: {err.strerror or err}") from None
    finally:
        os.close(lock_fd)  # the supervisor holds the lock from here on
    found = job(workspace, job_id)
    assert found is not None  # we just wrote it
    return found


def stop_job(workspace: Path, job_id: str) -> Job:
    """Ask a running job to stop (its kind's signal); asked again, it is killed (SIGKILL).

    The request is written first, so a supervisor that has not yet started the command
    sends the signal itself as soon as it has.
    """
    found = job(workspace, job_id)
    if found is None:
        raise CoachError(f"no job {job_id} in {records.jobs_root(workspace)}")
    if not found.running:
        raise CoachError(f"job {job_id} is not running ({found.state})")
    count = found.stop_requests + 1
    name = found.stop_signal if count == 1 else "SIGKILL"
    records.write_json(found.folder / records.STOP, {"count": count, "signal": name, "requested_at": records.now_iso()})
    if found.pid is not None and records.lock_held(found.folder):
        with contextlib.suppress(ProcessLookupError, PermissionError):  # it ended meanwhile: its supervisor says
            os.killpg(found.pid, getattr(signal, name))
    stopped = job(workspace, job_id)
    assert stopped is not None
    return stopped


# --- what the forms start from ----------------------------------------------------------------------


def default_training_data(workspace: Path) -> Path:
    """Where the slice form writes and the train form reads, unless a person types another file."""
    return Path(workspace) / "training_data.jsonl"


def default_preference_pairs(workspace: Path) -> Path:
    """Where the slice form offers to write DPO pairs, and the train form reads them for dpo."""
    return Path(workspace) / "preference_pairs.jsonl"


def exportable_runs(store: Store) -> dict[str, str]:
    """Finished training runs, newest first: id → its adapter folder ("" when the record names none)."""
    out = {}
    for run in training_records.training_runs(store):
        if run.status == "finished":
            paths = (run.config or {}).get("paths") if isinstance(run.config, dict) else None
            out[run.id] = str((paths or {}).get("adapter") or "")
    return out


def compare_defaults(store: Store) -> tuple[str, str]:
    """(base, candidate) for the compare form: the newest exported GGUF and the bundled model it was trained from."""
    from actors.training.records import exported_models

    for export in exported_models(store):
        run = next((r for r in training_records.training_runs(store) if r.id == export["run_id"]), None)
        cfg = run.config if run is not None and isinstance(run.config, dict) else {}
        reference = str((cfg.get("base_model") or {}).get("reference") or (cfg.get("recipe") or {}).get("model") or "")
        base = reference.removeprefix("bundled:") if reference.startswith("bundled:") else "gemma3-270m"
        return base, str(export["gguf"])
    return "gemma3-270m", ""
