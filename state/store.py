"""The store: one database per workspace, opened safely.

SQLite in WAL mode by default (readers never block the writer, so the TUI
can draw while actors commit); any SQLAlchemy URL works for a shared run.
Opening checks the schema version first: a newer workspace is refused with a
clear message instead of being written to, and tables are only ever added,
never dropped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine, select

from .errors import CoachError
from .models import SCHEMA_VERSION, Meta

DB_FILE = "coach.db"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _private_dir(path: Path) -> None:
    """Create `path` readable only by its owner: it will hold the user's conversations."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, stat.S_IRWXU)


class Store:
    def __init__(self, url: str, *, private_file: Path | None = None):
        self.url = url
        try:
            self.engine: Engine = create_engine(url, connect_args=self._connect_args(url))
        except (SQLAlchemyError, ValueError) as err:
            raise CoachError(f"cannot open database {url!r}: {err}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._prepare()
        if private_file is not None:
            for suffix in ("", "-wal", "-shm"):
                candidate = Path(f"{private_file}{suffix}")
                if candidate.exists():
                    os.chmod(candidate, stat.S_IRUSR | stat.S_IWUSR)

    @staticmethod
    def _connect_args(url: str) -> dict:
        return {"check_same_thread": False, "timeout": 30} if url.startswith("sqlite") else {}

    @classmethod
    def for_workspace(cls, workspace: Path | str) -> Store:
        root = Path(workspace).expanduser()
        try:
            _private_dir(root)
        except OSError as err:
            raise CoachError(f"cannot create workspace {root}: {err.strerror}") from None
        db = root / DB_FILE
        return cls(f"sqlite:///{db}", private_file=db)

    def _prepare(self) -> None:
        try:
            existing = set(inspect(self.engine).get_table_names())
            found = self._stored_version() if "meta" in existing else None
            if found is not None and found > SCHEMA_VERSION:
                raise CoachError(
                    f"the workspace database {self.url} uses schema version {found}, "
                    f"newer than this coach understands ({SCHEMA_VERSION}); upgrade coach to open it"
                )
            if existing - {"meta"} and found is None:
                raise CoachError(
                    f"{self.url} holds tables but no coach schema version: it is not a coach workspace "
                    "(or was damaged); point --workspace at another folder"
                )
            # create_all only adds missing tables; existing data is never dropped.
            SQLModel.metadata.create_all(self.engine)
            if found is None:
                with Session(self.engine) as s:
                    s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                    s.commit()
        except SQLAlchemyError as err:
            raise CoachError(f"cannot open database {self.url}: {err.__class__.__name__}: {err.args[0]}") from None

    def _stored_version(self) -> int | None:
        with Session(self.engine) as s:
            row = s.get(Meta, "schema_version")
            return int(row.value) if row else None

    @property
    def schema_version(self) -> int:
        return self._stored_version() or SCHEMA_VERSION

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A bare connection in one transaction, for the hot path's Core statements.

        Same commit-or-roll-back guarantee as `session`, without the ORM's
        unit of work, which costs more than the rows a generation step writes.
        """
        with self.engine.begin() as conn:
            yield conn

    def count(self, model: type[SQLModel]) -> int:
        from sqlalchemy import func

        with Session(self.engine) as s:
            return s.exec(select(func.count()).select_from(model)).one()

    def close(self) -> None:
        self.engine.dispose()
