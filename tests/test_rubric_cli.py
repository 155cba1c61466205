"""`coach rubric score`: one JSON object per file, both input shapes, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from coach_tui.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "assessments"


def score(*args: str):
    return CliRunner().invoke(main, ["rubric", "score", *args])


def lines_of(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_reproduces_recorded_assessments():
    files = sorted(FIXTURES.glob("*.json"))
    result = score(*map(str, files))
    assert result.exit_code == 0, result.output
    for path, got in zip(files, lines_of(result.output), strict=True):
        recorded = json.loads(path.read_text())
        assert got["file"] == str(path)
        assert got["score"] == recorded["score"]
        assert got["passed"] == recorded["pass"]
        assert got["category_scores"] == recorded["category_scores"]
        assert set(got) >= {"score", "passed", "category_scores", "safety_gate_failed", "failed_checks"}


def test_bare_mapping_and_exchange_count(tmp_path: Path):
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"CQ1": "YES", "CQ8": "NO"}))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"answers": {"CQ1": "YES"}, "exchange_count": 30}))
    result = score(str(bare), str(wrapped))
    assert result.exit_code == 0, result.output
    bare_out, wrapped_out = lines_of(result.output)
    assert bare_out["safety_gate_failed"] is True and bare_out["passed"] is False
    # With a known length every due criterion must be answered: the missing ones are ERROR.
    assert wrapped_out["error_count"] == 16 and wrapped_out["passed"] is False


def test_bad_file_is_named_and_others_still_scored(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    good = sorted(FIXTURES.glob("*.json"))[0]
    result = score(str(bad), str(good))
    assert result.exit_code == 1
    assert f"coach: error: {bad}: invalid JSON at line 1" in result.output
    assert len(lines_of(result.output)) == 1
    assert "Traceback" not in result.output
