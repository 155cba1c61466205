"""Where a workspace lives: `--workspace`, then `COACH_WORKSPACE`, then `./workspace`."""

from __future__ import annotations

import os
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
