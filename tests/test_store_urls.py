"""A database URL given by a person: the right driver, one clear message, and never its password."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from coach_tui.cli import main
from state.errors import CoachError
from state.store import Store, driver_url, shown_url


def test_postgresql_urls_use_the_shipped_driver():
    assert driver_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_password_is_never_shown():
    assert shown_url("postgresql+psycopg://bob:s3cret@db:5432/coach") == "postgresql+psycopg://bob:***@db:5432/coach"
    with pytest.raises(CoachError) as caught:
        Store("mysql+pymysql://bob:hunter2@127.0.0.1/coach")
    assert "hunter2" not in str(caught.value)
    assert "driver 'pymysql' is not installed" in str(caught.value)


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path):
    result = CliRunner().invoke(
        main, ["-w", str(tmp_path / "ws"), "--db", "postgresql://bob:hunter2@127.0.0.1:1/coach", "review", "--list"]
    )
    assert result.exit_code != 0
    assert "hunter2" not in result.output and "Traceback" not in result.output
    assert result.output.strip(), result.output
