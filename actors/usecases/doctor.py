"""`coach doctor`: the workspace's full health check, which never writes to the database.

Opening a store already refuses a damaged, read-only or too-new database with
one message; the doctor says everything at once, including what opening does
not look at because it would cost too much on every start: the full
`integrity_check`, the foreign keys, who may read the folder, and the
temporary files that killed writes left behind (these it removes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actors.atomic_files import sweep_stale_temps
from state import migrations
from state.errors import CoachError
from state.store import DB_FILE, check_file_access, foreign_key_problems, integrity_check, read_schema_plan
from state.workspace import permission_problems

OK, FIXED, WARN, FAIL = "ok", "fixed", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | fixed | warn | fail
    detail: str


def examine(workspace: Path, db_url: str | None = None) -> list[Finding]:
    """Every check on the workspace (or on the database at `db_url`), in the order a person would fix them."""
    findings: list[Finding] = []
    if db_url is None:
        findings.append(_permissions(workspace))
        db = workspace / DB_FILE
        findings.extend(_database_file(db))
        url = f"sqlite:///file:{db}?mode=ro&uri=true" if db.exists() else None
    else:
        url = db_url
    if url is not None and not any(f.status == FAIL and f.check == "integrity" for f in findings):
        findings.append(_schema(url))
    if workspace.exists():
        findings.append(_temporary_files(workspace))
    return findings


def _permissions(workspace: Path) -> Finding:
    problems = permission_problems(workspace)
    if not workspace.exists():
        return Finding("permissions", OK, f"{workspace} does not exist yet; coach creates it private on first use")
    if not problems:
        return Finding("permissions", OK, f"{workspace} and its database are yours alone")
    return Finding("permissions", WARN, "; ".join(problems))


def _database_file(db: Path) -> list[Finding]:
    if not db.exists():
        return [Finding("database", OK, f"{db} does not exist yet; coach creates it on first use")]
    found = []
    try:
        check_file_access(db)
    except CoachError as err:
        found.append(Finding("access", FAIL, str(err)))
    problems = integrity_check(db)
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        found.append(Finding("integrity", FAIL, f"{db} is damaged: {shown}. Restore it from a backup"))
        return found
    found.append(Finding("integrity", OK, f"integrity_check found no problems in {db} ({_size(db.stat().st_size)})"))
    broken = foreign_key_problems(db)
    if broken:
        found.append(Finding("foreign keys", FAIL, f"{len(broken)} rows point at nothing: " + "; ".join(broken[:5])))
    else:
        found.append(Finding("foreign keys", OK, "every row points at rows that exist"))
    return found


def _schema(url: str) -> Finding:
    heads = ", ".join(sorted(migrations.heads()))
    try:
        plan, where = read_schema_plan(url)
    except CoachError as err:
        return Finding("schema", FAIL, str(err))
    if plan.action == "ready":
        return Finding("schema", OK, f"at the newest revision ({heads}, schema version {migrations.SCHEMA_VERSION})")
    if plan.action == "create":
        return Finding("schema", OK, "empty; coach creates the tables on first use")
    if plan.action == "refuse":
        return Finding("schema", FAIL, plan.reason.format(where=where))
    start = ", ".join(sorted(plan.current)) or f"the previous release (schema version {plan.stored_version})"
    return Finding("schema", WARN, f"at {start}; coach upgrades it to {heads} the next time it opens it")


def _temporary_files(workspace: Path) -> Finding:
    removed = sweep_stale_temps(workspace, recursive=True)
    if not removed:
        return Finding("temporary files", OK, "no temporary files left by interrupted writes")
    total = sum(r.size for r in removed)
    return Finding(
        "temporary files",
        FIXED,
        f"removed {len(removed)} left by interrupted writes ({_size(total)}): "
        + ", ".join(str(r.path.relative_to(workspace)) for r in removed[:5])
        + (" …" if len(removed) > 5 else ""),
    )


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
