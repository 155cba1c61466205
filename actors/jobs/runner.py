"""The supervising process of one job: run its command, then write down how it ended.

`python -m actors.jobs.runner FOLDER LOCK_FD`, started detached by
`actors.usecases.jobs.start_job`. Why a process between the app and the
command: the command must outlive the app, and only a command's parent can
learn its exit code. This process is that parent; it lives in a session of its
own (no terminal hangs it up), holds the job's lock, and writes
`result.json` when the command ends, whoever is watching by then.

The command runs in a process group of its own, so a stop reaches it and
whatever it started (llama.cpp's converter, say) but not this process, which
stays to record the ending.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import records


def _signal_group(pgid: int, name: str) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # it ended meanwhile
        os.killpg(pgid, getattr(signal, name, signal.SIGTERM))


def supervise(folder: Path, lock_fd: int) -> int:
    spec = records.read_json(folder / records.JOB) or {}
    argv = [str(a) for a in spec.get("argv") or ()]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with open(folder / records.LOG, "ab", buffering=0) as log:
        shown = shlex.join(["coach", *argv[3:]] if argv[1:3] == ["-m", "coach_tui"] else argv)
        log.write(f"$ {shown}\n".encode())
        try:
            child = subprocess.Popen(
                argv,
                cwd=spec.get("cwd") or None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(lock_fd,),  # the lock stays held while the command lives, even if this process is killed
                env=env,
            )
        except (OSError, ValueError) as err:
            log.write(f"could not start the command: {err}\n".encode())
            records.write_json(
                folder / records.RESULT, {"exit_code": 127, "ended_at": records.now_iso(), "error": str(err)}
            )
            return 127
        records.write_json(
            folder / records.STARTED,
            {"runner_pid": os.getpid(), "pid": child.pid, "started_at": records.now_iso()},
        )
        stop = records.read_json(folder / records.STOP)
        if stop:  # asked to stop before the command's pid was on record: the asker could not signal it
            _signal_group(child.pid, str(stop.get("signal", "SIGTERM")))
        code = child.wait()
        log.write(f"— exit {records.exit_text(code)} after {time.monotonic() - started:.1f} s\n".encode())
    records.write_json(folder / records.RESULT, {"exit_code": code, "ended_at": records.now_iso()})
    return 0


def main(args: list[str]) -> int:
    if len(args) != 2:
        print("usage: python -m actors.jobs.runner FOLDER LOCK_FD", file=sys.stderr)
        return 2
    return supervise(Path(args[0]), int(args[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
