"""Schema migrations: a workspace from the previous release opens, upgraded, with its data intact.

The previous release's database is `fixtures/store/release-92f8823.sql`: a
dump of a workspace that release's own `Store` created (git 92f8823), with a
row in every table. Nothing here is mocked; each test runs SQLite and, where
it says so, Alembic.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

from state import migrations
from state.errors import CoachError
from state.migrations.upgrade import upgrade_to_heads, write_locked
from state.models import SCHEMA_VERSION
from state.store import Store

OLD_RELEASE = Path(__file__).parent / "fixtures" / "store" / "release-92f8823.sql"


def old_release_workspace(root: Path) -> Path:
    """A workspace folder whose coach.db is the previous release's, rows and all."""
    root.mkdir(parents=True)
    db = root / "coach.db"
    conn = sqlite3.connect(db)
    conn.executescript(OLD_RELEASE.read_text(encoding="utf-8"))
    conn.execute("PRAGMA journal_mode=WAL")  # as that release left it
    conn.close()
    return db


def rows(db: Path, table: str, columns: list[str]) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        quoted = ", ".join(f'"{c}"' for c in columns)
        return conn.execute(f'SELECT {quoted} FROM "{table}" ORDER BY 1').fetchall()
    finally:
        conn.close()


def columns_of(db: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    finally:
        conn.close()


def shape(db: Path) -> dict:
    """Everything SQLite knows about a schema that matters to a query: columns, indexes, keys."""
    conn = sqlite3.connect(db)
    try:
        out = {}
        for (table,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
        ):
            indexes = {}
            for _, name, unique, origin, _partial in conn.execute(f'PRAGMA index_list("{table}")'):
                cols = tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{name}")'))
                indexes[name if origin == "c" else (origin, cols)] = (bool(unique), cols)
            out[table] = {
                "columns": [tuple(c[1:]) for c in conn.execute(f'PRAGMA table_info("{table}")')],
                "indexes": indexes,
                "foreign_keys": sorted(tuple(f[2:5]) for f in conn.execute(f'PRAGMA foreign_key_list("{table}")')),
            }
        return out
    finally:
        conn.close()


# --- the revisions themselves ------------------------------------------------------------


def test_revision_files_are_named_for_their_ids():
    for revision in migrations.revisions().values():
        assert revision.id == revision.path.stem, f"{revision.path.name}: revision = {revision.id!r}"
        assert len(revision.id) <= 32, f"{revision.id}: alembic_version holds 32 characters"
        assert migrations.version_number(revision.id) >= 1


def test_catalogue_agrees_with_alembic():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations.HERE))
    assert set(ScriptDirectory.from_config(config).get_heads()) == set(migrations.heads())
    assert max(migrations.version_number(h) for h in migrations.heads()) == SCHEMA_VERSION


def test_history_is_one_line():
    """Two revisions written at once make two heads; the store copes, but a release needs one line."""
    assert len(migrations.heads()) == 1, f"linearise the heads: {sorted(migrations.heads())}"


def test_revisions_give_the_models_schema():
    """A fresh workspace is made by `create_all`, an old one by the revisions: they must agree."""
    from state.migrations.__main__ import schema_differences

    differences = schema_differences()
    assert differences == [], "state/models.py changed without a revision (python -m state.migrations new …)"


def test_baseline_is_the_previous_release_schema(tmp_path: Path):
    old = old_release_workspace(tmp_path / "old")
    engine = create_engine(f"sqlite:///{tmp_path / 'baseline.db'}")
    with write_locked(engine) as conn:
        upgrade_to_heads(conn, target=migrations.BASELINE)
    engine.dispose()
    assert shape(tmp_path / "baseline.db") == shape(old)


# --- a previous release's workspace ---------------------------------------------------------


def test_previous_release_workspace_opens_upgraded_with_its_data(tmp_path: Path):
    db = old_release_workspace(tmp_path / "ws")
    before = columns_of(db)
    snapshot = {t: rows(db, t, cols) for t, cols in before.items()}

    Store.for_workspace(tmp_path / "ws").close()

    after = columns_of(db)
    model_columns = {t.name: [c.name for c in t.columns] for t in SQLModel.metadata.sorted_tables}
    for table, cols in model_columns.items():
        assert set(cols) <= set(after.get(table, [])), f"{table} lacks {set(cols) - set(after.get(table, []))}"
    for table, cols in before.items():  # every old row, every old value
        assert rows(db, table, cols) == snapshot[table] or table == "meta", table
    conn = sqlite3.connect(db)
    assert {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")} == set(migrations.heads())
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_previous_release_data_reads_through_todays_code(tmp_path: Path):
    from actors.dataset.transcript_io import load_transcript

    old_release_workspace(tmp_path / "ws")
    store = Store.for_workspace(tmp_path / "ws")
    transcript = load_transcript(store, "t-old")
    assert [e.number for e in transcript.exchanges] == [1, 2, 3]
    assert transcript.exchanges[1].assistant == "Racing thoughts are common. Shall we try a wind-down routine?"
    assert transcript.persona["concern"] == "sleep — can’t switch off"
    store.close()


def with_revision(tmp_path: Path, name: str, body: str) -> Path:
    """A copy of the migrations with one more revision after today's head."""
    location = tmp_path / "migrations"
    shutil.copytree(migrations.HERE, location, ignore=shutil.ignore_patterns("__pycache__"))
    [head] = migrations.heads()
    (location / "versions" / f"{name}.py").write_text(
        f"import sqlalchemy as sa\nfrom alembic import op\n\nrevision = {name!r}\ndown_revision = {head!r}\n\n\n"
        f"def upgrade() -> None:\n{body}\n",
        encoding="utf-8",
    )
    return location


def test_a_column_added_later_reaches_an_old_workspace_with_its_rows(tmp_path: Path):
    """The mechanism every future column relies on: batch ALTER on SQLite, old rows kept, default filled in."""
    location = with_revision(
        tmp_path,
        "9001_test_transcript_note",
        (
            '    with op.batch_alter_table("transcript") as batch:\n'
            '        batch.add_column(sa.Column("note", sa.String(), nullable=False, server_default="none yet"))\n'
        ),
    )
    db = old_release_workspace(tmp_path / "ws")
    cols = columns_of(db)["transcript"]
    before = rows(db, "transcript", cols)
    exchanges = rows(db, "exchange", columns_of(db)["exchange"])

    Store(f"sqlite:///{db}", script_location=location).close()

    assert "note" in columns_of(db)["transcript"]
    assert rows(db, "transcript", cols) == before
    assert rows(db, "transcript", ["note"]) == [("none yet",)]
    assert rows(db, "exchange", columns_of(db)["exchange"]) == exchanges
    assert sqlite3.connect(db).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("9001",)


def test_a_failing_revision_changes_nothing(tmp_path: Path):
    """A new unique key that old rows break: one message, and the database exactly as it was."""
    location = with_revision(
        tmp_path,
        "9001_test_one_answer",
        (
            '    with op.batch_alter_table("transcript") as batch:\n'
            '        batch.add_column(sa.Column("note", sa.String(), nullable=False, server_default=""))\n'
            '    with op.batch_alter_table("criterionanswer") as batch:\n'
            '        batch.create_unique_constraint("uq_criterionanswer_assessment_id", ["assessment_id"])\n'
        ),
    )
    db = old_release_workspace(tmp_path / "ws")
    before = shape(db), {t: rows(db, t, c) for t, c in columns_of(db).items()}

    with pytest.raises(
        CoachError, match=r"cannot upgrade .* to 9001_test_one_answer: IntegrityError.*Nothing was changed"
    ):
        Store(f"sqlite:///{db}", script_location=location)

    assert (shape(db), {t: rows(db, t, c) for t, c in columns_of(db).items()}) == before


def test_two_processes_opening_an_old_workspace_upgrade_it_once(tmp_path: Path):
    old_release_workspace(tmp_path / "ws")
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Store.for_workspace(tmp_path / "ws").close()
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(tmp_path / "ws" / "coach.db")
    assert {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")} == set(migrations.heads())
    assert conn.execute("SELECT count(*) FROM exchange").fetchone() == (3,)


# --- what a newer or broken database gets ---------------------------------------------------


def test_unknown_revision_is_refused_untouched(tmp_path: Path):
    Store.for_workspace(tmp_path / "ws").close()
    db = tmp_path / "ws" / "coach.db"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE alembic_version SET version_num = '0999_from_a_newer_coach'")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(CoachError, match="revision 0999_from_a_newer_coach, which this coach does not know"):
        Store.for_workspace(tmp_path / "ws")
    assert db.read_bytes() == before


@pytest.mark.parametrize("value", ["banana", "", "2.5"])
def test_bad_schema_version_is_one_clear_message(tmp_path: Path, value: str):
    from click.testing import CliRunner

    from coach_tui.cli import main

    Store.for_workspace(tmp_path / "ws").close()
    conn = sqlite3.connect(tmp_path / "ws" / "coach.db")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    conn.commit()
    conn.close()
    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "export", "transcripts", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(result.exception, SystemExit)
    [line] = result.output.strip().splitlines()
    assert line.startswith("coach: error: the workspace database ")
    assert f"bad schema version (meta.schema_version = {value!r}" in line


def test_fresh_workspace_is_stamped_at_the_head(tmp_path: Path):
    store = Store.for_workspace(tmp_path / "ws")
    assert store.schema_version == SCHEMA_VERSION
    tables = set(inspect(store.engine).get_table_names())
    assert {t.name for t in SQLModel.metadata.sorted_tables} | {"alembic_version"} == tables
    store.close()
