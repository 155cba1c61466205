"""The store and `coach import` / `coach export`: durable, idempotent, private, clear about bad files."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from actors.dataset.transcript_format import TranscriptFormatError, parse_transcript
from actors.dataset.transcript_io import export_transcripts, import_transcripts, load_transcript
from coach_tui.cli import main
from state.errors import CoachError
from state.models import SCHEMA_VERSION, Exchange, Meta, Persona, Transcript
from state.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
GOOD = sorted(FIXTURES.glob("*.json"))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.for_workspace(tmp_path / "ws")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


# --- store ------------------------------------------------------------------------


def test_workspace_is_sqlite_in_wal_mode_and_private(tmp_path: Path):
    ws = tmp_path / "ws"
    Store.for_workspace(ws).close()
    db = ws / "coach.db"
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE(ws.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_reopening_keeps_data_and_version(store: Store, tmp_path: Path):
    import_transcripts(store, GOOD)
    store.close()
    again = Store.for_workspace(tmp_path / "ws")
    assert again.count(Transcript) == 3
    assert again.schema_version == SCHEMA_VERSION


def test_newer_schema_is_refused_not_touched(store: Store, tmp_path: Path):
    with store.session() as s:
        s.get(Meta, "schema_version").value = str(SCHEMA_VERSION + 1)
    store.close()
    with pytest.raises(CoachError, match="newer than this coach"):
        Store.for_workspace(tmp_path / "ws")


def test_foreign_database_is_refused(tmp_path: Path):
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("create table notes (x text)")
    conn.commit()
    conn.close()
    with pytest.raises(CoachError, match="not a coach workspace"):
        Store(f"sqlite:///{db}")


def test_any_sqlalchemy_url(tmp_path: Path):
    result = run("--db", f"sqlite:///{tmp_path / 'elsewhere.db'}", "import", *map(str, GOOD))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere.db").exists()


def test_session_rolls_back_on_error(store: Store):
    with pytest.raises(RuntimeError), store.session() as s:
        s.add(Transcript(id="half"))
        s.flush()
        raise RuntimeError("crash mid-step")
    assert store.count(Transcript) == 0


# --- formats ----------------------------------------------------------------------


def test_parses_both_earlier_variants_and_our_own():
    parsed = {p.name: parse_transcript(json.loads(p.read_text())) for p in GOOD}
    gen = parsed["earlier_generated.json"]
    assert gen.target_exchanges == 12 and gen.meta["generator_version"] == "1.0.0" and len(gen.exchanges) == 12
    local = parsed["earlier_local_model.json"]
    assert local.model == "gemma-3-12b-it-q4_0" and local.target_exchanges is None
    own = parsed["coach_export.json"]
    assert own.status == "passed" and [e.number for e in own.exchanges] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "top level"),
        ({"exchanges": []}, "id: missing"),
        ({"id": "x"}, "exchanges: missing"),
        ({"id": "x", "exchanges": []}, "exchanges: empty"),
        ({"id": "x", "exchanges": [{"user": "hi"}]}, r"exchanges\[0\]\.assistant: missing"),
        ({"id": "x", "exchanges": [{"user": "hi", "assistant": "   "}]}, r"exchanges\[0\]\.assistant: empty"),
        ({"id": "x", "exchanges": [{"exchange_number": 2, "user": "a", "assistant": "b"}]}, "numbers must run"),
        ({"id": "x", "format": "other", "exchanges": []}, "unknown transcript format"),
        ({"id": "x", "persona": "Dana", "exchanges": []}, "persona: must be an object"),
    ],
)
def test_format_errors_name_the_field(obj, message):
    with pytest.raises(TranscriptFormatError, match=message):
        parse_transcript(obj)


# --- import / export ----------------------------------------------------------------


def test_import_twice_adds_nothing(store: Store):
    first = import_transcripts(store, GOOD)
    assert len(first.added) == 3 and first.ok
    second = import_transcripts(store, GOOD)
    assert second.added == [] and len(second.unchanged) == 3
    assert store.count(Transcript) == 3
    assert store.count(Exchange) == 12 + 3 + 4


def test_bad_files_are_reported_and_the_rest_import(store: Store, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in GOOD:
        shutil.copy(p, folder / p.name)
    shutil.copy(FIXTURES / "broken_syntax.json.txt", folder / "broken.json")
    shutil.copy(FIXTURES / "missing_field.json.txt", folder / "missing.json")
    (folder / "latin1.json").write_bytes(b'{"id": "caf\xe9"}')
    report = import_transcripts(store, [folder, tmp_path / "nope.json"])
    assert len(report.added) == 3
    reasons = dict(report.failed)
    assert "invalid JSON at line 2" in reasons[str(folder / "broken.json")]
    assert "exchanges[0].assistant: missing" in reasons[str(folder / "missing.json")]
    assert "not UTF-8" in reasons[str(folder / "latin1.json")]
    assert "no such file" in reasons[str(tmp_path / "nope.json")]


def test_same_id_different_content_is_refused(store: Store, tmp_path: Path):
    import_transcripts(store, GOOD)
    obj = json.loads((FIXTURES / "coach_export.json").read_text())
    obj["exchanges"][0]["assistant"] = "Something else entirely."
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(obj))
    report = import_transcripts(store, [changed])
    assert report.added == [] and "already in the store" in report.failed[0][1]
    assert load_transcript(store, "coach-run1-0003").exchanges[0].assistant != "Something else entirely."


def test_accepted_status_marks_passed(store: Store):
    import_transcripts(store, GOOD[:1], status="accepted")
    with store.session() as s:
        assert s.exec(select(Transcript.status)).one() == "passed"


def test_persona_is_kept(store: Store):
    import_transcripts(store, [FIXTURES / "earlier_generated.json"])
    with store.session() as s:
        persona = s.exec(select(Persona)).one()
    assert persona.data["name"] == "Dana" and persona.seed == 9100


def test_export_round_trips(store: Store, tmp_path: Path):
    import_transcripts(store, GOOD)
    written = export_transcripts(store, tmp_path / "out")
    assert len(written) == 3
    other = Store.for_workspace(tmp_path / "ws2")
    report = import_transcripts(other, written)
    assert len(report.added) == 3
    for p in written:
        tid = json.loads(p.read_text())["id"]
        a, b = load_transcript(store, tid), load_transcript(other, tid)
        assert a.exchanges == b.exchanges and a.persona == b.persona and a.content_hash() == b.content_hash()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_cli_import_twice_and_export(tmp_path: Path):
    ws = str(tmp_path / "ws")
    first = run("-w", ws, "import", str(FIXTURES))
    assert first.exit_code == 0, first.output
    assert "3 added, 0 already present, 0 failed" in first.output
    second = run("-w", ws, "import", *map(str, GOOD))
    assert "0 added, 3 already present" in second.output
    out = run("-w", ws, "export", "transcripts", str(tmp_path / "out"))
    assert out.exit_code == 0 and "wrote 3 transcripts" in out.output


def test_cli_import_bad_file_exits_one_without_traceback(tmp_path: Path):
    bad = tmp_path / "bad.json"
    shutil.copy(FIXTURES / "broken_syntax.json.txt", bad)
    result = run("-w", str(tmp_path / "ws"), "import", str(bad), str(GOOD[0]))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"coach: error: {bad}: invalid JSON at line 2" in result.output
    assert "1 added" in result.output


def test_workspace_from_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("COACH_WORKSPACE", str(tmp_path / "env-ws"))
    assert run("import", str(GOOD[0])).exit_code == 0
    assert (tmp_path / "env-ws" / "coach.db").exists()
