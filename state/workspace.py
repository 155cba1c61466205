"""Where a workspace lives: `--workspace`, then `COACH_WORKSPACE`, then `./workspace`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import CoachError
from .store import DB_FILE, Store

ENV_WORKSPACE = "COACH_WORKSPACE"
ENV_DB_URL = "COACH_DB_URL"


class NoWorkspace(CoachError):
    """A command that only reads or builds on a workspace was pointed at a folder that holds none.

    Only the commands that create data (`coach run`, `coach import`, and the
    app) may create a workspace: a mistyped `-w` anywhere else would otherwise
    leave an empty workspace behind and report that it holds nothing.
    """

    exit_code = 2

    def __init__(self, workspace: Path) -> None:
        super().__init__(
            f"no workspace at {workspace} (coach run or coach import creates one; check --workspace or $COACH_WORKSPACE)"
        )
        self.workspace = workspace


def resolve_workspace(option: str | Path | None = None) -> Path:
    raw = option or os.environ.get(ENV_WORKSPACE) or "workspace"
    return Path(raw).expanduser().resolve()


def workspace_exists(workspace: Path) -> bool:
    """Whether `workspace` holds a coach database; a folder we may not look into counts as one.

    An unreadable folder is left to `Store.for_workspace`, whose message names the permission problem.
    """
    root = Path(workspace).expanduser()
    if not root.is_dir():
        return False
    if not os.access(root, os.R_OK | os.X_OK):
        return True
    return (root / DB_FILE).exists()


def open_store(workspace: Path, db_url: str | None = None, *, create: bool = True) -> Store:
    """The workspace's SQLite database, or any SQLAlchemy URL given by option or `COACH_DB_URL`.

    `create=False`: a workspace that does not exist yet is a `NoWorkspace` error, not a new empty one.
    A database URL is taken as it is: it names its own database, wherever the workspace folder is.
    """
    url = db_url or os.environ.get(ENV_DB_URL)
    if url:
        return Store(url)
    if not create and not workspace_exists(workspace):
        raise NoWorkspace(Path(workspace))
    return Store.for_workspace(workspace)


def permission_problems(root: Path, db_file: str = "coach.db") -> list[str]:
    """Who else may read the workspace, or why we may not write it; [] when it is as `Store` leaves it.

    The folder holds a person's conversations: it should be the owner's alone
    (0700, files 0600), as `Store.for_workspace` makes it.
    """
    if not root.exists():
        return []  # nothing to protect yet; `Store.for_workspace` creates it private
    problems = []
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    for path, wanted in [(root, 0o700)] + [(root / f"{db_file}{s}", 0o600) for s in ("", "-wal", "-shm")]:
        if not path.exists():
            continue
        info = path.stat()
        mode = stat.S_IMODE(info.st_mode)
        if uid is not None and info.st_uid != uid:
            problems.append(f"{path} belongs to uid {info.st_uid}, not to you (uid {uid})")
        if mode & 0o077:
            problems.append(f"{path} is open to others (mode {stat.filemode(info.st_mode)}): chmod {wanted:o} {path}")
        if not os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids):
            problems.append(f"{path} is read-only for you (mode {stat.filemode(info.st_mode)}): chmod u+w {path}")
    return problems
