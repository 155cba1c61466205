"""Kill a real `coach run` (embedded model) with SIGKILL at several points, then resume it.

Proves the durability rule end to end: completed exchanges all survive,
none is duplicated, the database passes `PRAGMA integrity_check`, and the
resumed run finishes with every transcript assessed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUN_ARGS = ["--transcripts", "2", "--seed", "11", "--lengths", "short=2,medium=2,long=2,very_long=2",
            "--max-tokens", "24", "--in-flight", "2", "--min-exchanges", "1"]


def coach(ws: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "coach_tui", "-w", str(ws), "run", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def query(ws: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(ws / "coach.db", timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_for(ws: Path, sql: str, predicate, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run ended before the kill point: {proc.stdout.read()}")
        if (ws / "coach.db").exists():
            try:
                if predicate(query(ws, sql)):
                    return
            except sqlite3.OperationalError:
                pass  # tables not created yet
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"kill point not reached within {timeout}s: {sql}")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def completed_exchanges(ws: Path) -> set[tuple]:
    """Every completed exchange: in the transcript, or moved to a truncation record (keeping its user text)."""
    rows = {(t, n, u) for t, n, u in query(ws, "select transcript_id, number, user from exchange where assistant != ''")}
    for tid, detail in query(ws, "select transcript_id, detail from rejection where action = 'truncated'"):
        rows |= {(tid, e["number"], e["user"]) for e in json.loads(detail)}
    return rows


def check_integrity(ws: Path) -> None:
    assert query(ws, "pragma integrity_check") == [("ok",)]
    dupes = query(ws, "select transcript_id, number, count(*) from exchange group by 1, 2 having count(*) > 1")
    assert dupes == []


def test_sigkill_at_several_points_then_resume(tmp_path: Path):
    ws = tmp_path / "ws"
    kept: set[tuple] = set()

    # 1. Killed while personas are being enriched or the first messages written.
    proc = coach(ws, *RUN_ARGS)
    wait_for(ws, "select count(*) from event where kind = 'PersonaReady'", lambda r: r[0][0] >= 1, proc)
    kill(proc)
    check_integrity(ws)
    kept |= completed_exchanges(ws)

    # 2. Resumed, then killed mid-conversation.
    proc = coach(ws, "--resume", "latest")
    wait_for(ws, "select count(*) from exchange where assistant != ''", lambda r: r[0][0] >= 1, proc)
    kill(proc)
    check_integrity(ws)
    now = completed_exchanges(ws)
    assert kept <= now, "a completed exchange was lost or changed"
    kept = now

    # 3. Resumed, then killed while a finished conversation is being curated or assessed.
    proc = coach(ws, "--resume", "latest")
    wait_for(ws, "select count(*) from transcript where status in ('curating', 'assessing', 'fixing')",
             lambda r: r[0][0] >= 1, proc)
    kill(proc)
    check_integrity(ws)
    now = completed_exchanges(ws)
    assert kept <= now
    kept = now

    # 4. Resumed to the end.
    proc = coach(ws, "--resume", "latest")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    check_integrity(ws)
    final = completed_exchanges(ws)
    assert kept <= final
    assert len(final) == 4
    statuses = query(ws, "select status, count(*) from transcript group by 1")
    assert sum(n for s, n in statuses if s in ("passed", "rejected")) == 2, statuses
    # Each transcript was decided by the pipeline: assessed, or rejected during curation with a reason.
    decided = query(ws, "select count(distinct transcript_id) from (select transcript_id from assessment "
                        "union select transcript_id from rejection where action = 'rejected')")
    assert decided == [(2,)]
    assert "finished" in out
