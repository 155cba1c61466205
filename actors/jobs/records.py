"""A background job's folder: what was started, how it is going, how it ended, read back by any process.

Why files and not the database: a job must outlive the app that started it,
be followed by the next app that opens the workspace, and record how its
command ended even when that command never opened the store (a bad option,
a missing extra). So each job is a folder under `WORKSPACE/jobs/ID` with one
writer per file, each written whole (`actors.atomic_files`):

- `job.json`: what to run, written once by the app that starts it;
- `started.json`: the supervising process and the command's pid, written once by `runner`;
- `result.json`: the exit code, written once by `runner` when the command ends;
- `stop.json`: a person asked to stop it (how often, with which signal), written by an app;
- `log.txt`: everything the command printed;
- `lock`: held (flock) from the moment the job is created until both the
  supervisor and the command are gone. A held lock says "running" without
  trusting a pid that the system may since have given to another process.

The state is derived from these alone (`job_state`), so two apps looking at one
workspace always agree.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actors.atomic_files import write_json_atomic

JOBS_DIR = "jobs"
JOB, STARTED, RESULT, STOP, LOG, LOCK = "job.json", "started.json", "result.json", "stop.json", "log.txt", "lock"

RUNNING, STOPPING, FINISHED, FAILED, STOPPED = "running", "stopping", "finished", "failed", "stopped"
STATES = (RUNNING, STOPPING, FINISHED, FAILED, STOPPED)
"""running → finished (exit 0) | failed (any other exit) | stopped (a person asked); stopping while it winds down."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def jobs_root(workspace: Path) -> Path:
    return Path(workspace) / JOBS_DIR


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None when it is missing or not (yet) a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_json_atomic(path, data)


def lock_held(folder: Path) -> bool:
    """Whether the job's supervisor or its command still lives (their lock is held)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def take_lock(folder: Path) -> int:
    """Create the job's lock file and hold it; the returned descriptor is handed on to the supervisor."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def job_state(result: dict[str, Any] | None, stop_requests: int, alive: bool) -> tuple[str, str | None]:
    """(state, note) from what the files say; the note explains an ending that left no exit code."""
    if result is not None:
        code = result.get("exit_code")
        if stop_requests:
            return STOPPED, None
        if code == 0:
            return FINISHED, None
        return FAILED, result.get("error")
    if alive:
        return (STOPPING if stop_requests else RUNNING), None
    if stop_requests:
        return STOPPED, "killed before it could record an exit code"
    return FAILED, "ended without recording an exit code (its supervising process was killed)"


def exit_text(code: int | None) -> str:
    """`0`, `1`, or `-15 (SIGTERM)` for a command ended by a signal; `?` when unknown."""
    if code is None:
        return "?"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"{code} ({signal.Signals(-code).name})"
    return str(code)


@dataclass(frozen=True)
class Job:
    """One job as its folder describes it now."""

    id: str
    kind: str
    title: str
    argv: tuple[str, ...]
    cwd: str
    created_at: datetime | None
    stop_signal: str
    state: str
    exit_code: int | None
    started_at: datetime | None
    ended_at: datetime | None
    pid: int | None
    """The command's process (its process group has the same id)."""
    stop_requests: int
    note: str | None
    folder: Path

    @property
    def log(self) -> Path:
        return self.folder / LOG

    @property
    def running(self) -> bool:
        return self.state in (RUNNING, STOPPING)

    @property
    def command(self) -> str:
        """The command as a person would type it: `coach slice --out …`."""
        import shlex

        args = list(self.argv)
        if args[1:3] == ["-m", "coach_tui"]:
            args = ["coach", *args[3:]]
        return shlex.join(args)


def read_job(folder: Path) -> Job | None:
    """The job in `folder`, or None when the folder holds no readable job.json."""
    spec = read_json(folder / JOB)
    if spec is None or not _ID.match(str(spec.get("id", ""))):
        return None
    started = read_json(folder / STARTED) or {}
    result = read_json(folder / RESULT)
    stop = read_json(folder / STOP) or {}
    stops = stop.get("count") if isinstance(stop.get("count"), int) else 0
    alive = result is None and lock_held(folder)
    if result is None and not alive:
        result = read_json(folder / RESULT)  # written between our two looks, just before the lock went
    state, note = job_state(result, stops, alive)
    code = (result or {}).get("exit_code")
    pid = started.get("pid")
    return Job(
        id=str(spec["id"]),
        kind=str(spec.get("kind", "?")),
        title=str(spec.get("title", "")),
        argv=tuple(str(a) for a in spec.get("argv") or ()),
        cwd=str(spec.get("cwd", "")),
        created_at=_when(spec.get("created_at")),
        stop_signal=str(spec.get("stop_signal", "SIGTERM")),
        state=state,
        exit_code=code if isinstance(code, int) else None,
        started_at=_when(started.get("started_at")),
        ended_at=_when((result or {}).get("ended_at")),
        pid=pid if isinstance(pid, int) else None,
        stop_requests=stops,
        note=note,
        folder=folder,
    )


def read_jobs(workspace: Path, limit: int = 50) -> list[Job]:
    """The workspace's jobs, newest first (by id, which starts with its start time)."""
    root = jobs_root(workspace)
    try:
        folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    except OSError:
        return []
    jobs = []
    for folder in folders:
        job = read_job(folder)
        if job is not None:
            jobs.append(job)
        if len(jobs) >= limit:
            break
    jobs.sort(key=lambda j: (j.created_at or datetime.min.replace(tzinfo=UTC), j.id), reverse=True)
    return jobs


def log_tail(path: Path, lines: int = 8, max_bytes: int = 16_384) -> list[str]:
    """The last `lines` lines the command printed; a line a progress bar rewrote (`\\r`) shows its last state."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = text.partition("\n")[2]  # the first line is cut
    out = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    return [line for line in out if line.strip()][-lines:]
