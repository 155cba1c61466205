"""Running the revisions through Alembic, all in the caller's one transaction.

`state.store` decides what a database needs (see `plan`), takes the write
lock, and calls one of these with the locked connection; nothing here
commits. Alembic is imported only when a database actually needs work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from . import HERE


def _config(connection: Connection, script_location: Path):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["connection"] = connection
    return config


def upgrade_to_heads(connection: Connection, *, script_location: Path = HERE, target: str = "heads") -> None:
    """Run every revision not yet applied, up to the heads (or up to `target`)."""
    from alembic import command

    command.upgrade(_config(connection, script_location), target)


def stamp(connection: Connection, revision: str, *, script_location: Path = HERE) -> None:
    """Record `revision` as applied without running it (a previous release's database, or a fresh one)."""
    from alembic import command

    command.stamp(_config(connection, script_location), revision)


@contextmanager
def write_locked(engine: Engine) -> Iterator[Connection]:
    """One connection holding the database's write lock in one transaction, committed on success.

    Two processes opening an old workspace at once must not both upgrade it:
    the second waits here, then finds the work done. On SQLite the driver is
    told to leave transactions to us (it would commit before DDL otherwise)
    and `BEGIN IMMEDIATE` takes the lock up front; foreign keys are off while
    a batch migration copies tables, and checked before commit. On
    PostgreSQL an advisory lock does the same.
    """
    in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    if engine.dialect.name != "sqlite" or in_memory:  # a memory database lives in its one connection
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7310255)"))  # any fixed number: coach's
            yield conn
        return
    locked = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(locked, "connect")
    def _manual_transactions(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys=OFF")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(locked, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with locked.begin() as conn:
            yield conn
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                table, rowid, parent, _ = broken[0]
                raise ForeignKeysBroken(
                    f"{len(broken)} rows point at missing rows (first: {table} row {rowid} -> {parent})"
                )
    finally:
        locked.dispose()


class ForeignKeysBroken(Exception):
    """An upgrade left rows pointing at nothing; the transaction was rolled back."""
