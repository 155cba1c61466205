"""The same migrations on a real PostgreSQL server: a throwaway cluster on a Unix socket, no TCP.

Skipped only where PostgreSQL's own programs (initdb, pg_ctl) are not
installed; as root the server runs as the `postgres` user, as it must.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from state import migrations
from state.migrations.upgrade import upgrade_to_heads, write_locked
from state.models import SCHEMA_VERSION
from state.store import Store
from tests.test_migrations import with_revision

pytestmark = pytest.mark.slow


def _pg_program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A URL prefix for a fresh PostgreSQL cluster in a temporary folder (databases are made per test)."""
    initdb, pg_ctl = _pg_program("initdb"), _pg_program("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e .[dev])")
    root = Path(tempfile.mkdtemp(prefix="coach-pg-"))
    as_postgres = None
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)

        def as_postgres() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    def run(*args: str) -> None:
        subprocess.run(
            args,
            check=True,
            capture_output=True,
            preexec_fn=as_postgres,
            timeout=120,
            env={**os.environ, "LC_ALL": "C"},
        )

    data = root / "data"
    run(initdb, "-D", str(data), "-U", "coach", "--auth=trust", "--no-sync", "-E", "UTF8")
    options = f"-k {root} -c listen_addresses='' -p 5439 -F -c fsync=off"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://coach@/{{db}}?host={root}&port=5439"
    finally:
        subprocess.run(
            [pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            preexec_fn=as_postgres,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> str:
    name = f"coach_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_server.format(db="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return pg_server.format(db=name)


def previous_release_on(url: str) -> None:
    """What the previous release left on PostgreSQL: its tables (revision 0001's DDL), meta, no alembic_version."""
    engine = create_engine(url, poolclass=NullPool)
    with write_locked(engine) as conn:
        upgrade_to_heads(conn, target=migrations.BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(
            text(
                "INSERT INTO run (id, kind, status, domain, seed, config, created_at, updated_at) VALUES "
                "('run-old', 'generate', 'finished', 'therapy', 7, '{\"review\": true}', now(), now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO transcript (id, run_id, status, source, content_hash, meta, created_at, "
                "updated_at) VALUES ('t-old', 'run-old', 'passed', 'generated', 'abc', '{}', now(), now())"
            )
        )
        conn.execute(
            text(
                'INSERT INTO exchange (transcript_id, number, "user", assistant, created_at) VALUES '
                "('t-old', 1, 'I can''t sleep.', 'That sounds exhausting.', now())"
            )
        )
    engine.dispose()


def test_fresh_database_is_created_and_stamped(pg_url: str):
    store = Store(pg_url)
    assert store.schema_version == SCHEMA_VERSION
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= set(inspect(store.engine).get_table_names())
    store.close()
    Store(pg_url).close()  # the second open finds it ready


def test_previous_release_database_is_upgraded_with_its_rows(pg_url: str):
    previous_release_on(pg_url)
    store = Store(pg_url)
    with store.transaction() as conn:
        assert {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))} == set(migrations.heads())
        assert conn.execute(text('SELECT "user", assistant FROM exchange')).all() == [
            ("I can't sleep.", "That sounds exhausting.")
        ]
        assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == str(SCHEMA_VERSION)
    columns = {
        t: {c["name"] for c in inspect(store.engine).get_columns(t)} for t in inspect(store.engine).get_table_names()
    }
    for table in SQLModel.metadata.sorted_tables:
        assert {c.name for c in table.columns} <= columns.get(table.name, set()), table.name
    store.close()


def test_a_column_added_later_reaches_an_old_database(pg_url: str, tmp_path: Path):
    location = with_revision(
        tmp_path,
        "9001_test_transcript_note",
        (
            '    with op.batch_alter_table("transcript") as batch:\n'
            '        batch.add_column(sa.Column("note", sa.String(), nullable=False, server_default="none yet"))\n'
        ),
    )
    previous_release_on(pg_url)
    Store(pg_url, script_location=location).close()
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, note FROM transcript")).all() == [("t-old", "none yet")]
    engine.dispose()


def test_doctor_checks_the_schema_of_a_database_url(pg_url: str, tmp_path: Path):
    from click.testing import CliRunner

    from coach_tui.cli import main

    previous_release_on(pg_url)
    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "--db", pg_url, "doctor"])
    assert result.exit_code == 0, result.output
    assert "warn  schema: at the previous release (schema version 1); coach upgrades it to" in result.output
    Store(pg_url).close()
    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "--db", pg_url, "doctor"])
    assert "ok    schema: at the newest revision" in result.output
