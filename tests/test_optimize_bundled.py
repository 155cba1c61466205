"""`coach optimize` offline on the bundled model: a budget small enough for CI, every part real.

SmolLM2 plays every role (persona, user, assistant, judge, reflector) through
llama.cpp, on the small pack `coach init-domain` writes (four criteria, so few
judge calls). What is checked is the plumbing — estimate, rollouts judged and
stored, the result and its front — not that a 135M model writes better prompts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from coach_tui.cli import main
from state import optimization_records as records
from state.store import Store

pytestmark = pytest.mark.slow


def test_optimize_runs_offline_on_the_bundled_model(tmp_path: Path):
    pack = tmp_path / "pack"
    subprocess.run(
        [sys.executable, "-m", "coach_tui", "init-domain", "tiny", "--path", str(pack)], check=True, capture_output=True
    )
    ws = tmp_path / "ws"
    result = CliRunner().invoke(
        main,
        ["--domain", str(pack), "-w", str(ws), "optimize", "--personas", "2", "--validation", "1", "--exchanges", "1",
         "--max-tokens", "16", "--max-calls", "2", "--minibatch", "1", "--yes"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "budget: 2 conversations judged" in result.output and "model calls" in result.output
    run = records.get_run(Store.for_workspace(ws))
    assert run.status == "finished"
    rollouts = records.events(Store.for_workspace(ws), run.id, "OptimizeRollout")
    assert rollouts and all(r["turns"] and r["answers"] for r in rollouts)
    assert "candidate 0: validation score" in result.output
