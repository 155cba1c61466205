"""The same migrations on a real PostgreSQL server: a throwaway cluster on a Unix socket, no TCP.

Skipped only where PostgreSQL's own programs (initdb, pg_ctl) are not
installed; as root the server runs as the `postgres` user, as it must.
"""

from __future__ import annotations

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
from tests.pg_support import create_database, pg_program, postgres_cluster
from tests.test_migrations import with_revision

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A URL prefix for a fresh PostgreSQL cluster in a temporary folder (databases are made per test)."""
    if not (pg_program("initdb") and pg_program("pg_ctl")):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e .[dev])")
    with postgres_cluster("coach-pg-", port=5439) as server:
        yield server


@pytest.fixture
def pg_url(pg_server: str) -> str:
    return create_database(pg_server, "coach_")


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
