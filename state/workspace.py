"""Where a workspace lives: `--workspace`, then `COACH_WORKSPACE`, then `./workspace`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .store import Store

ENV_WORKSPACE = "COACH_WORKSPACE"
ENV_DB_URL = "COACH_DB_URL"


def resolve_workspace(option: str | Path | None = None) -> Path:
    raw = option or os.environ.get(ENV_WORKSPACE) or "workspace"
    return Path(raw).expanduser().resolve()


def open_store(workspace: Path, db_url: str | None = None) -> Store:
    """The workspace's SQLite database, or any SQLAlchemy URL given by option or `COACH_DB_URL`."""
    url = db_url or os.environ.get(ENV_DB_URL)
    return Store(url) if url else Store.for_workspace(workspace)


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
