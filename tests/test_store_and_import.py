"""The store and `coach import` / `coach export`: durable, idempotent, private, clear about bad files."""

from __future__ import annotations

import json
import re
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
from state import whole_transcripts
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


# --- bad files: one reason each, never a traceback -------------------------------------------------

OWN = {"format": "coach-transcript", "version": 1, "exchanges": [{"number": 1, "user": "hi", "assistant": "hello"}]}
EARLIER = {"exchanges": [{"exchange_number": 1, "user": "hi", "assistant": "hello"}]}


def _text(obj: dict, tid: str) -> str:
    return json.dumps({"id": tid, **obj})


BAD_FILES = {
    "target_text": (
        _text({**OWN, "target_exchanges": "x"}, "a"),
        'target_exchanges: must be a whole number .* not "x"',
    ),
    "target_huge_float": (_text({**OWN, "target_exchanges": 1e20}, "b"), "target_exchanges: must be a whole number"),
    "target_huge_int": (_text({**EARLIER, "target_exchanges": 10**20}, "c"), "target_exchanges: must be a whole"),
    "lone_surrogate": (
        _text(OWN, "d").replace('"hello"', '"hel\\ud800lo"'),
        r"exchanges\[0\]\.assistant: text holds a lone surrogate \(\\ud800\)",
    ),
    "surrogate_key": (_text({**OWN, "meta": {"\ud800": 1}}, "e"), "meta: a key holds a lone surrogate"),
    "deep_nesting": ('{"id": "f", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    "nesting_past_limit": (_text({**OWN, "meta": {"x": json.loads("[" * 70 + "]" * 70)}}, "g"), "nested more than"),
    "model_number": (_text({**OWN, "model": 5}, "h"), "model: must be text or null, not a number"),
    "model_list_earlier": (_text({**EARLIER, "model": ["m"]}, "i"), "model: must be text or null, not a list"),
    "meta_list": (_text({**OWN, "meta": ["x"]}, "j"), "meta: must be an object or null, not a list"),
    "meta_text": (_text({**OWN, "meta": "x"}, "k"), "meta: must be an object or null, not text"),
    "status_number": (_text({**OWN, "status": 7}, "l"), "status: must be text or null, not a number"),
    "status_unknown": (_text({**OWN, "status": "great"}, "m"), 'status: "great" is not a transcript status'),
    "not_a_number": ('{"id": "n", "persona": {"x": NaN}, ' + json.dumps(EARLIER)[1:], "persona.x: nan is not a finite"),
    "persona_seed_text": (_text({**EARLIER, "persona": {"seed": "abc"}}, "o"), "persona.seed: must be a whole number"),
    "id_control_chars": (_text(OWN, "p\n\x1b[2J"), "id: holds control characters"),
    "nul_character": (_text(OWN, "q").replace('"hi"', '"h\\u0000i"'), r"exchanges\[0\]\.user: text holds a NUL"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_each_bad_kind_gives_one_reason_naming_file_and_field(kind: str, tmp_path: Path):
    text, reason = BAD_FILES[kind]
    bad = tmp_path / f"{kind}.json"
    bad.write_text(text, encoding="utf-8")
    result = run("-w", str(tmp_path / "ws"), "import", str(bad))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("coach: error:")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith(f"coach: error: {bad}: ")
    assert re.search(reason, errors[0]), errors[0]


def test_folder_import_tries_every_file_and_reports_every_failure(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in GOOD:
        shutil.copy(p, folder / p.name)
    for kind, (text, _) in BAD_FILES.items():
        (folder / f"bad_{kind}.json").write_text(text, encoding="utf-8")
    ws = str(tmp_path / "ws")
    result = run("-w", ws, "import", str(folder))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    failed = {line.split(": ")[2] for line in result.output.splitlines() if line.startswith("coach: error:")}
    assert failed == {str(folder / f"bad_{kind}.json") for kind in BAD_FILES}
    assert f"3 added, 0 already present, {len(BAD_FILES)} failed" in result.output
    good_only = run("-w", ws, "import", *map(str, GOOD))
    assert good_only.exit_code == 0 and "0 added, 3 already present, 0 failed" in good_only.output


def test_a_row_the_database_refuses_is_one_reason_not_a_traceback(store: Store, tmp_path: Path):
    with store.session() as s:  # a persona row already holding the id the import would give its persona
        s.add(Persona(id="transcript_9100_20260101_120000:persona", purpose="train", data={}))
    report = import_transcripts(store, [FIXTURES / "earlier_generated.json", FIXTURES / "coach_export.json"])
    assert report.added == ["coach-run1-0003"]
    assert report.failed[0][1].startswith("the store refused transcript 'transcript_9100_20260101_120000': Integrity")


# --- one id, two contents ----------------------------------------------------------------------


def _variant(tmp_path: Path, name: str, assistant: str | None = None) -> Path:
    obj = json.loads((FIXTURES / "coach_export.json").read_text())
    if assistant is not None:
        obj["exchanges"][0]["assistant"] = assistant
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


def test_two_files_same_id_different_content_are_both_refused_naming_each_other(store: Store, tmp_path: Path):
    a = _variant(tmp_path, "a.json", "One reply.")
    b = _variant(tmp_path, "b.json", "Another reply.")
    report = import_transcripts(store, [a, b, FIXTURES / "earlier_generated.json"])
    reasons = dict(report.failed)
    assert str(b) in reasons[str(a)] and str(a) in reasons[str(b)]
    assert "different content" in reasons[str(a)]
    assert report.added == ["transcript_9100_20260101_120000"]
    assert whole_transcripts.whole_transcript(store, "coach-run1-0003") is None


def test_two_files_same_id_same_content_import_once(store: Store, tmp_path: Path):
    copy = _variant(tmp_path, "copy.json")
    report = import_transcripts(store, [FIXTURES / "coach_export.json", copy])
    assert report.ok and report.added == ["coach-run1-0003"] and report.unchanged == ["coach-run1-0003"]
    assert store.count(Transcript) == 1


def test_replace_lets_the_file_win_over_the_store(tmp_path: Path):
    ws = str(tmp_path / "ws")
    assert run("-w", ws, "import", str(FIXTURES / "coach_export.json")).exit_code == 0
    changed = _variant(tmp_path, "changed.json", "Something else entirely.")
    refused = run("-w", ws, "import", str(changed))
    assert refused.exit_code == 1 and "already in the store" in refused.output and "--replace" in refused.output
    replaced = run("-w", ws, "import", "--replace", str(changed))
    assert replaced.exit_code == 0, replaced.output
    assert "replaced   coach-run1-0003" in replaced.output and "1 replaced" in replaced.output
    store = Store.for_workspace(tmp_path / "ws")
    assert load_transcript(store, "coach-run1-0003").exchanges[0].assistant == "Something else entirely."
    assert store.count(Exchange) == 4 and store.count(Persona) == 1


def test_replace_never_touches_a_runs_transcript(store: Store, tmp_path: Path):
    import_transcripts(store, [FIXTURES / "coach_export.json"])
    with store.session() as s:
        s.get(Transcript, "coach-run1-0003").source = "generated"
    report = import_transcripts(store, [_variant(tmp_path, "x.json", "Other.")], replace=True)
    assert "replaces only imported transcripts" in report.failed[0][1]


# --- export names ------------------------------------------------------------------------------


def test_export_names_never_collide_and_the_count_is_the_files_written(tmp_path: Path):
    ws = tmp_path / "ws"
    ids = ["a/b", "a_b", "A_b", ".hidden", "a b", "x" * 300]
    for tid in ids:
        (tmp_path / "f.json").write_text(_text(OWN, tid))
        assert run("-w", str(ws), "import", str(tmp_path / "f.json")).exit_code == 0
    out = tmp_path / "out"
    result = run("-w", str(ws), "export", "transcripts", str(out))
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.json"))
    assert f"wrote {len(files)} transcripts" in result.output and len(files) == len(ids)
    assert {json.loads(p.read_text())["id"] for p in files} == set(ids)
    assert len({p.name.lower() for p in files}) == len(files)
    names = {json.loads(p.read_text())["id"]: p.name for p in files}
    assert names["A_b"] == "A_b.json"  # a plain id keeps its name; `a_b` would meet it on a case-insensitive disk
    assert names["a_b"].startswith("a_b~") and names["a/b"].startswith("a_b~") and names["a/b"] != names["a_b"]
    assert not names[".hidden"].startswith(".") and all(len(n) < 200 for n in names.values())
