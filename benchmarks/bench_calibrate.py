"""`coach calibrate --quick` on the embedded default judge takes a few minutes.

Runs the real command (`.venv/bin/coach`, or `coach` on PATH) in a fresh
temporary workspace on the embedded default model — the bundled SmolLM2 read
by llama.cpp in-process — and prints the wall-clock minutes, the CPU minutes
the command used (on a busy machine wall time grows, CPU time much less), the
load average, and OK/MISSED against the target of 5 minutes. The quick
calibration judges 6 cases, each on its own criterion and only in the window
holding its edit (`actors.assessment.calibration.quick_cases`).

Run: `.venv/bin/python benchmarks/bench_calibrate.py` (`--full` times the
whole calibration instead, with no target; `--target MIN` changes the target).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def coach_command() -> list[str]:
    local = ROOT / ".venv" / "bin" / "coach"
    if local.exists():
        return [str(local)]
    found = shutil.which("coach")
    if found:
        return [found]
    return [sys.executable, "-m", "coach_tui.cli"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="time the whole calibration (no target)")
    parser.add_argument("--target", type=float, default=5.0, help="target in minutes for --quick (default 5)")
    args = parser.parse_args()

    from state.workspace import open_store

    with tempfile.TemporaryDirectory(prefix="bench-calibrate-") as tmp:
        workspace = Path(tmp) / "ws"
        open_store(workspace, create=True).close()  # calibrate judges into an existing workspace
        command = [*coach_command(), "-w", str(workspace), "calibrate", *([] if args.full else ["--quick"])]
        print("$ " + " ".join(command), flush=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=tmp, check=False)  # noqa: S603 - our own CLI, no shell
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = max(load, os.getloadavg()[0])
    what = "calibrate" if args.full else "calibrate --quick"
    print(
        f"\n{what}: {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU; "
        f"{os.cpu_count()} CPUs, load average up to {load:.1f}; exit code {done.returncode}"
    )
    if done.returncode != 0:
        print("FAILED: the command did not finish cleanly")
        return 1
    if args.full:
        return 0
    ok = wall / 60 <= args.target
    print(f"calibrate --quick: {wall / 60:.1f} min  (target <= {args.target:g} min)  {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
