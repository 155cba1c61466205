"""The schema's history: Alembic revisions, one file each, in `versions/`.

A revision's id is its file's stem (`0002_runs_lease`), and its leading
number is the schema version that `meta.schema_version` records and that
`SCHEMA_VERSION` names: the highest number among the heads. The catalogue
here reads the revision files with `ast` instead of importing them, so
opening an up-to-date workspace never pays for importing Alembic; the
upgrade itself (`state.migrations.upgrade`) does.

How to add a revision: see README.md beside this file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
VERSIONS = HERE / "versions"
BASELINE = "0001_store_baseline"  # the schema of the release before migrations (meta.schema_version 1)


@dataclass(frozen=True)
class Revision:
    id: str
    down: tuple[str, ...]
    path: Path


def version_number(revision: str) -> int:
    """`0003_steps_keys` -> 3."""
    return int(revision.split("_", 1)[0])


@cache
def revisions(folder: Path = VERSIONS) -> dict[str, Revision]:
    """Every revision file in `folder`, by id."""
    found: dict[str, Revision] = {}
    for path in sorted(folder.glob("[0-9]*.py")):
        values = _assignments(path)
        down = values.get("down_revision")
        downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
        found[values["revision"]] = Revision(values["revision"], downs, path)
    return found


def heads(folder: Path = VERSIONS) -> frozenset[str]:
    """The revisions nothing comes after: what an up-to-date database is stamped with."""
    known = revisions(folder)
    below = {d for r in known.values() for d in r.down}
    return frozenset(set(known) - below)


def _assignments(path: Path) -> dict:
    values = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        )
        if isinstance(target, ast.Name) and target.id in {"revision", "down_revision"} and node.value is not None:
            values[target.id] = ast.literal_eval(node.value)
    if "revision" not in values:
        raise ValueError(f"{path}: no `revision = ...` line")
    return values


SCHEMA_VERSION = max(version_number(h) for h in heads())
