"""The store refuses what it must not touch, with one clear message, and `coach doctor` says it all.

Every failure here is real: a real SQLite file with garbage in it, a file the
running user cannot write (as root, the test acts as `nobody`), a database
that cannot grow (SQLite's own `max_page_count` gives the same "database or
disk is full" as a full disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import random
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert
from sqlmodel import select

import state.store
from coach_tui.cli import main
from state.errors import CoachError
from state.models import Exchange, Transcript, utcnow
from state.store import Store

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT / "tests" / "fixtures" / "transcripts"


def coach(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    [line] = [ln for ln in result.output.splitlines() if ln.startswith("coach: error:")]
    return line


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def workspace_with_rows(root: Path, exchanges: int = 1500) -> Path:
    """A closed workspace of some hundreds of KB, so its middle is real table pages."""
    store = Store.for_workspace(root)
    now = utcnow()
    with store.session() as s:
        s.add(Transcript(id="t1", status="passed", source="imported"))
    with store.transaction() as conn:
        conn.execute(
            insert(Exchange.__table__),
            [
                {
                    "transcript_id": "t1",
                    "number": n,
                    "user": f"question {n} " * 20,
                    "assistant": f"answer {n} " * 20,
                    "created_at": now,
                }
                for n in range(1, exchanges + 1)
            ],
        )
    store.close()  # the last connection checkpoints the WAL into coach.db
    db = root / "coach.db"
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    return db


# --- damaged ------------------------------------------------------------------------------


def test_garbage_in_the_middle_is_detected_on_open_and_not_written_into(tmp_path: Path):
    db = workspace_with_rows(tmp_path / "ws")
    size = db.stat().st_size
    assert size > 256 * 1024
    with open(db, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(random.Random(14).randbytes(8192))
    before = digest(db)

    with pytest.raises(CoachError, match=r"coach\.db is damaged \(.*\); coach will not write to it"):
        Store.for_workspace(tmp_path / "ws")
    line = one_error_line(coach("-w", str(tmp_path / "ws"), "import", str(TRANSCRIPTS)))
    assert "is damaged" in line and "coach doctor" in line

    assert digest(db) == before


def test_doctor_reports_the_damage_in_full_and_exits_1(tmp_path: Path):
    db = workspace_with_rows(tmp_path / "ws")
    with open(db, "r+b") as fh:
        fh.seek(db.stat().st_size // 2)
        fh.write(random.Random(15).randbytes(8192))
    before = digest(db)
    result = coach("-w", str(tmp_path / "ws"), "doctor")
    assert result.exit_code == 1
    assert any(line.startswith("FAIL  integrity:") and "is damaged" in line for line in result.output.splitlines())
    assert digest(db) == before


# --- read-only ----------------------------------------------------------------------------


@contextlib.contextmanager
def as_user_who_cannot_write(path: Path) -> Iterator[None]:
    """Judge file access as an ordinary user would be judged: root writes through any file mode.

    As root, the process takes `nobody`'s effective ids for the block (and
    `path`, a fresh folder, is handed to `nobody`); otherwise nothing changes.
    """
    if os.geteuid() != 0:
        yield
        return
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root with no `nobody` user to act as")
    for p in [path, *path.rglob("*")]:
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    os.setegid(nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_read_only_database_is_one_clear_message():
    # Not under tmp_path: pytest's folders are root's alone, and `nobody` must reach this one.
    home = Path(tempfile.mkdtemp(prefix="coach-read-only-"))
    try:
        os.chmod(home, 0o755)
        ws = home / "ws"
        Store.for_workspace(ws).close()
        db = ws / "coach.db"
        os.chmod(db, 0o400)
        before = digest(db)
        with as_user_who_cannot_write(home):
            with pytest.raises(CoachError, match=r"coach\.db is read-only \(mode -r--------\)"):
                Store.for_workspace(ws)
            line = one_error_line(coach("-w", str(ws), "import", str(TRANSCRIPTS)))
        assert line.startswith(f"coach: error: the workspace database {db} is read-only (mode -r--------)")
        assert "chmod u+w" in line
        assert digest(db) == before and stat.S_IMODE(db.stat().st_mode) == 0o400
    finally:
        shutil.rmtree(home)


# --- full disk ----------------------------------------------------------------------------


def test_full_disk_is_one_clear_message_and_nothing_half_written(tmp_path: Path, monkeypatch):
    ws = tmp_path / "ws"
    Store.for_workspace(ws).close()
    pages = sqlite3.connect(ws / "coach.db").execute("PRAGMA page_count").fetchone()[0]
    real = state.store._sqlite_pragmas

    def no_room_to_grow(dbapi_conn, record) -> None:
        real(dbapi_conn, record)
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk

    monkeypatch.setattr(state.store, "_sqlite_pragmas", no_room_to_grow)
    line = one_error_line(coach("-w", str(ws), "import", str(TRANSCRIPTS)))
    assert f"the disk holding {ws / 'coach.db'} is full (database or disk is full)" in line
    assert "free some space" in line

    monkeypatch.setattr(state.store, "_sqlite_pragmas", real)
    store = Store.for_workspace(ws)  # what was committed before the disk filled is whole, the rest absent
    expected = {d["id"]: len(d["exchanges"]) for d in (json.loads(p.read_text()) for p in TRANSCRIPTS.glob("*.json"))}
    with store.session() as s:
        stored = s.exec(select(Transcript.id)).all()
        held = {tid: len(s.exec(select(Exchange).where(Exchange.transcript_id == tid)).all()) for tid in stored}
    assert len(held) < len(expected)
    assert all(held[tid] == expected[tid] for tid in held)
    store.close()


# --- coach doctor -------------------------------------------------------------------------


def test_doctor_on_a_healthy_workspace(tmp_path: Path):
    ws = tmp_path / "ws"
    assert coach("-w", str(ws), "import", str(TRANSCRIPTS)).exit_code == 0
    before = digest(ws / "coach.db")
    result = coach("-w", str(ws), "doctor")
    assert result.exit_code == 0, result.output
    checks = {line.split(":")[0] for line in result.output.splitlines()}
    assert checks == {
        "ok    permissions",
        "ok    integrity",
        "ok    foreign keys",
        "ok    schema",
        "ok    temporary files",
    }
    assert digest(ws / "coach.db") == before


def test_doctor_removes_what_killed_writes_left_and_warns_about_open_permissions(tmp_path: Path):
    ws = tmp_path / "ws"
    Store.for_workspace(ws).close()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    exports = ws / "exports"
    exports.mkdir()
    left = exports / f".training_data.jsonl.coach-{child.pid}-0a1b2c3d.tmp"
    left.write_bytes(b"x" * 300_000)
    live = exports / f".report.md.coach-{os.getpid()}-0a1b2c3d.tmp"
    live.write_text("being written")
    os.chmod(ws, 0o755)

    result = coach("-w", str(ws), "doctor")

    assert result.exit_code == 0, result.output  # warnings and fixes are not failures
    assert (
        "fixed temporary files: removed 1 left by interrupted writes (293.0 KB): exports/.training_data"
        in result.output
    )
    assert "warn  permissions:" in result.output and "chmod 700" in result.output
    assert not left.exists() and live.exists()


def test_doctor_says_an_old_workspace_will_be_upgraded_without_upgrading_it(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir(mode=0o700)
    conn = sqlite3.connect(ws / "coach.db")
    conn.executescript((ROOT / "tests" / "fixtures" / "store" / "release-92f8823.sql").read_text())
    conn.close()
    os.chmod(ws / "coach.db", 0o600)
    before = digest(ws / "coach.db")
    result = coach("-w", str(ws), "doctor")
    assert result.exit_code == 0, result.output
    assert "warn  schema: at the previous release (schema version 1); coach upgrades it to" in result.output
    assert digest(ws / "coach.db") == before
