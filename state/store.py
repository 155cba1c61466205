"""The store: one database per workspace, opened safely, upgraded safely.

SQLite in WAL mode by default (readers never block the writer, so the TUI
can draw while actors commit); any SQLAlchemy URL works for a shared run.

Opening does, in order, and stops at the first problem with one clear
message (a `CoachError`), before anything is written:

1. the file can be read and written (a read-only file or folder is named as such);
2. `PRAGMA quick_check` on a read-only connection: a damaged file is refused,
   never written into (`coach doctor` runs the full `integrity_check`);
3. the schema: `plan_schema` reads what the database holds and says what it
   needs. An up-to-date workspace costs two small queries and no Alembic. A
   fresh one gets `create_all` and is stamped at the head; one from the
   release before migrations (a `meta.schema_version` of 1 and no
   `alembic_version` table) is stamped at the baseline and upgraded; one
   behind is upgraded; one from a newer coach (a higher version or a
   revision this coach does not know) is refused untouched. The work runs
   under the write lock in one transaction (see `state.migrations.upgrade`).

Afterwards the store keeps raising the driver's own errors, so callers can
tell a busy database from a full one (`state.db_errors`); at the edge,
`database_problem` turns the ones a person can act on into one sentence.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel, create_engine, select

from . import migrations
from .errors import CoachError
from .migrations.upgrade import ForeignKeysBroken
from .models import Meta

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


@dataclass(frozen=True)
class SchemaPlan:
    """What a database needs before this coach may use it (see `plan_schema`)."""

    action: str  # ready | create | adopt (previous release) | upgrade | refuse
    current: frozenset[str] = frozenset()  # the revisions it is stamped with
    stored_version: int | None = None  # meta.schema_version
    reason: str = ""  # for refuse: the whole message


_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^@/?#]*@")


def shown_url(url: str) -> str:
    """A database URL as a message may show it: the password masked, even in one SQLAlchemy cannot parse."""
    return _PASSWORD.sub(r"\1***@", url)


def driver_url(url: str) -> str:
    """``postgresql://`` means psycopg 3, the driver coach ships (SQLAlchemy's default is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


class Store:
    def __init__(self, url: str, *, private_file: Path | None = None, script_location: Path = migrations.HERE):
        url = driver_url(url)
        self.url = url
        self.script_location = script_location
        try:
            self.engine: Engine = create_engine(url, connect_args=self._connect_args(url))
        except ModuleNotFoundError as err:
            hint = " (pip install 'coach[postgres]')" if url.startswith("postgresql") else ""
            raise CoachError(
                f"cannot open database {shown_url(url)}: its driver {err.name!r} is not installed{hint}"
            ) from None
        except (SQLAlchemyError, ValueError) as err:
            raise CoachError(f"cannot open database {shown_url(url)}: {shown_url(str(err))}") from None
        self.file = self._sqlite_file()
        self.where = str(self.file) if self.file else self.engine.url.render_as_string(hide_password=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._prepare()
        except BaseException:
            self.engine.dispose()
            raise
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

    def _sqlite_file(self) -> Path | None:
        name = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
            return None
        return Path(name)

    # --- opening -------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self.file is not None:
            check_file_access(self.file)
            problems = quick_check(self.file)
            if problems:
                raise CoachError(
                    f"the workspace database {self.file} is damaged ({'; '.join(problems[:2])}); coach will not "
                    "write to it. "
                    "Restore it from a backup, or run `coach doctor` for the full report"
                )
        try:
            with self.engine.connect() as conn:
                plan = plan_schema(conn, self.script_location)
            if plan.action == "refuse":
                raise CoachError(plan.reason.format(where=self.where))
            if plan.action != "ready":
                self._migrate(plan)
        except DBAPIError as err:
            raise database_problem(err, self.where) or CoachError(
                f"cannot open database {self.where}: {err.__class__.__name__}: {err.orig}"
            ) from None
        except SQLAlchemyError as err:
            raise CoachError(f"cannot open database {self.where}: {err.__class__.__name__}: {err.args[0]}") from None
        except ForeignKeysBroken as err:
            raise CoachError(f"cannot upgrade {self.where}: {err}; nothing was changed") from None

    def _migrate(self, plan: SchemaPlan) -> None:
        """Do what `plan_schema` asks, under the write lock, re-planning there (another process may have done it).

        A revision that fails (say, a new unique key that old rows break) rolls
        the whole upgrade back and is reported as one message naming both ends.
        """
        try:
            self._migrate_locked()
        except (CoachError, ForeignKeysBroken):
            raise
        except DBAPIError as err:
            if database_problem(err, self.where) is not None:
                raise
            raise CoachError(self._upgrade_failed(plan, f"{err.__class__.__name__}: {err.orig}")) from None
        except Exception as err:  # noqa: BLE001 - a revision's own error, whatever it is
            raise CoachError(self._upgrade_failed(plan, f"{err.__class__.__name__}: {err}")) from None

    def _upgrade_failed(self, plan: SchemaPlan, cause: str) -> str:
        heads = ", ".join(sorted(migrations.heads(self.script_location / "versions")))
        start = ", ".join(sorted(plan.current)) or f"schema version {plan.stored_version}"
        return (
            f"cannot upgrade the workspace database {self.where} from {start} to {heads}: {cause}. "
            "Nothing was changed; this coach cannot use it until the cause is fixed"
        )

    def _migrate_locked(self) -> None:
        from .migrations import upgrade

        with upgrade.write_locked(self.engine) as conn:
            plan = plan_schema(conn, self.script_location)
            if plan.action == "refuse":
                raise CoachError(plan.reason.format(where=self.where))
            heads = migrations.heads(self.script_location / "versions")
            if plan.action == "create":
                SQLModel.metadata.create_all(conn)
                for head in sorted(heads):
                    upgrade.stamp(conn, head, script_location=self.script_location)
            else:
                if plan.action == "adopt":
                    upgrade.stamp(conn, migrations.BASELINE, script_location=self.script_location)
                if plan.action in {"adopt", "upgrade"}:
                    upgrade.upgrade_to_heads(conn, script_location=self.script_location)
            _record_version(conn, max(migrations.version_number(h) for h in heads))

    @property
    def schema_version(self) -> int:
        with Session(self.engine) as s:
            row = s.get(Meta, "schema_version")
            return int(row.value) if row else migrations.SCHEMA_VERSION

    # --- using ---------------------------------------------------------------------------

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


# --- the checks opening makes, usable on their own (coach doctor) --------------------------


def check_file_access(db: Path) -> None:
    """Refuse, with the reason, a database file or folder this process cannot write."""
    folder = db.parent
    if db.exists():
        if not _may(db, os.R_OK):
            raise CoachError(
                f"cannot read the workspace database {db}: permission denied (owner uid "
                f"{db.stat().st_uid}, mode {stat.filemode(db.stat().st_mode)})"
            )
        if not _may(db, os.W_OK):
            raise CoachError(
                f"the workspace database {db} is read-only (mode {stat.filemode(db.stat().st_mode)}); coach "
                f"writes to it on every run. Make it writable (chmod u+w {db}) or work on a copy"
            )
    if folder.exists() and not _may(folder, os.W_OK | os.X_OK):
        raise CoachError(
            f"the workspace folder {folder} is read-only; SQLite writes its journal (coach.db-wal) beside the "
            f"database. Make it writable (chmod u+w {folder}) or work on a copy"
        )


def _may(path: Path, mode: int) -> bool:
    """`os.access` as the running process is judged (its effective ids), which is how SQLite is judged."""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def quick_check(db: Path) -> list[str]:
    """SQLite's cheap structural check, on a read-only connection; [] when sound or not yet created."""
    return _sqlite_check(db, "PRAGMA quick_check")


def integrity_check(db: Path) -> list[str]:
    """The full check (indexes against tables too): slower, for `coach doctor`."""
    return _sqlite_check(db, "PRAGMA integrity_check")


def foreign_key_problems(db: Path) -> list[str]:
    """Rows that point at rows that are not there."""
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as err:
        return [str(err)]
    try:
        rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.DatabaseError as err:
        return [str(err)]
    finally:
        conn.close()
    return [f"{table} row {rowid} points at a missing {parent} row" for table, rowid, parent, _ in rows]


def _sqlite_check(db: Path, pragma: str) -> list[str]:
    if not db.exists() or db.stat().st_size == 0:
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as err:
        return [str(err)]
    try:
        rows = [row[0] for row in conn.execute(pragma).fetchall()]
    except sqlite3.DatabaseError as err:  # "database disk image is malformed", "file is not a database"
        return [str(err)]
    finally:
        conn.close()
    if rows == ["ok"]:
        return []
    # SQLite packs several findings into one row, one a line, under a "*** in database main ***" banner.
    lines = [ln.strip() for row in rows for ln in str(row).splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("***")]


def read_schema_plan(url: str) -> tuple[SchemaPlan, str]:
    """What the database at `url` needs, read on a connection of its own that writes nothing,
    and where it is, as a message may show it (no password).

    For `coach doctor`, which must look at a database that opening a store would refuse.
    Raises CoachError when the schema cannot be read at all.
    """
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            plan = plan_schema(conn)
    except SQLAlchemyError as err:
        raise CoachError(f"cannot read the schema: {err.__class__.__name__}: {err.args[0]}") from err
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True).removeprefix("sqlite:///file:").split("?")[0]
    return plan, where


def plan_schema(conn: Connection, script_location: Path = migrations.HERE) -> SchemaPlan:
    """Read what the database holds and say what it needs; `{where}` in a refusal names the database."""
    known = migrations.revisions(script_location / "versions")
    heads = migrations.heads(script_location / "versions")
    newest = max(migrations.version_number(h) for h in heads)
    tables = set(inspect(conn).get_table_names())
    stored = _stored_version(conn) if "meta" in tables else None
    if isinstance(stored, str):
        return SchemaPlan(
            "refuse",
            reason=(
                f"the workspace database {{where}} has a bad schema version (meta.schema_version = {stored!r}, "
                "expected a whole number): it was damaged or edited by hand; restore it from a backup"
            ),
        )
    if stored is not None and stored > newest:
        return SchemaPlan(
            "refuse",
            stored_version=stored,
            reason=(
                f"the workspace database {{where}} uses schema version {stored}, newer than this coach "
                f"understands ({newest}); upgrade coach to open it"
            ),
        )
    if "alembic_version" in tables:
        current = frozenset(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version")))
        unknown = sorted(current - set(known))
        if unknown:
            return SchemaPlan(
                "refuse",
                current,
                stored,
                reason=(
                    f"the workspace database {{where}} is at schema revision {unknown[0]}, which this coach does not "
                    f"know (it knows up to {', '.join(sorted(heads))}): a newer coach wrote it; "
                    "upgrade coach to open it"
                ),
            )
        if current == heads and stored == newest:
            return SchemaPlan("ready", current, stored)
        return SchemaPlan("upgrade", current, stored)
    if not tables - {"meta"}:
        return SchemaPlan("create", stored_version=stored)
    if stored is None:
        return SchemaPlan(
            "refuse",
            reason=(
                "{where} holds tables but no coach schema version: it is not a coach workspace "
                "(or was damaged); point --workspace at another folder"
            ),
        )
    return SchemaPlan("adopt", stored_version=stored)


def _stored_version(conn: Connection) -> int | str | None:
    """meta.schema_version as a number; the raw text when it is not one."""
    row = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
    if row is None:
        return None
    try:
        return int(row[0])
    except (TypeError, ValueError):
        return str(row[0])


def _record_version(conn: Connection, version: int) -> None:
    updated = conn.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(version)})
    if updated.rowcount == 0:
        conn.execute(text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"), {"v": str(version)})


# --- errors a person can act on ------------------------------------------------------------

_READ_ONLY_WORDS = ("attempt to write a readonly database", "read-only", "readonly")
_DAMAGED_WORDS = ("database disk image is malformed", "file is not a database")


def database_problem(err: BaseException, where: str = "the workspace database") -> CoachError | None:
    """One sentence for a database error a person can fix (full, read-only, damaged); None for the rest.

    The faces call this where they catch an error (the CLI prints it as its one
    line); the store itself keeps raising the driver's error so that the run's
    error handling can tell a full disk from a busy database.
    """
    from .db_errors import is_full

    words = str(getattr(err, "orig", None) or err).lower()
    if is_full(err) and not isinstance(err, DBAPIError):
        return CoachError(f"the disk is full ({err}): free some space and run the command again")
    if is_full(err):
        return CoachError(
            f"the disk holding {where} is full ({words}): free some space and run the command "
            "again; the step that failed was rolled back, nothing was half-written"
        )
    if not isinstance(err, DBAPIError):
        return None
    if any(w in words for w in _READ_ONLY_WORDS):
        return CoachError(f"{where} is read-only ({words}): make the file and its folder writable, or work on a copy")
    if any(w in words for w in _DAMAGED_WORDS):
        return CoachError(
            f"{where} is damaged ({words}); restore it from a backup, or run `coach doctor` for the full report"
        )
    return None
