"""The faces only parse input and draw: no SQL anywhere in coach_tui/, no orchestration in the commands.

Read from the source with `ast`, so an import inside a function counts as
much as one at the top, and nothing is imported to check it. A rule broken
here means the CLI and the app are about to rebuild the same work twice
again: move the query into a `state/` function and the work into an
`actors.usecases` module, and let the face call it.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "coach_tui"
COMMANDS = FACES / "commands"

SQL_PACKAGES = ("sqlmodel", "sqlalchemy")
SESSION_OPENERS = {"session", "transaction"}
"""`Store.session()` and `Store.transaction()`: only `state/` opens them."""

COMMAND_MAY_IMPORT = {
    # The use cases: everything a command does goes through one of these.
    "actors.usecases": None,
    # Pure helpers and types: formatting, validation of the pack's files, config and message models.
    "actors.events": None,
    "actors.dataset.slicing": {"format_length_report"},
    "actors.assessment.scoring": {"compute_score"},
    "actors.pack.loader": {"check_pack", "load_pack"},
    "actors.pack.rubric_doc": {"render_rubric_doc"},
    "actors.atomic_files": {"write_text_atomic", "write_json_atomic"},
    "actors.run_config": None,
    "actors.backends.bundled": {"bundled_status"},
    "actors.backends": {"BackendError", "Message", "Reply"},
    "actors.backends.errors": None,
    "actors.backends.types": None,
    "actors.supervisor": {"RunSummary"},  # the type of a run's result, not the supervisor itself
    "state.errors": None,
    "state.status": None,
}
"""module → the names a command may take from it (None: any), besides constants (UPPER_CASE names), which
are data wherever they live. Anything else of ours is orchestration."""


@dataclass(frozen=True)
class Use:
    path: Path
    line: int
    module: str
    name: str | None  # None for `import module`

    def __str__(self) -> str:
        what = self.module if self.name is None else f"{self.module}.{self.name}"
        return f"{self.path.relative_to(ROOT)}:{self.line}: {what}"


def _package_of(path: Path) -> list[str]:
    return list(path.relative_to(ROOT).with_suffix("").parts[:-1])


def imports(path: Path) -> list[Use]:
    """Every import in the file, relative ones made absolute, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [Use(path, node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path)[: len(_package_of(path)) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out += [Use(path, node.lineno, module, alias.name) for alias in node.names]
    return out


def session_calls(path: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}: .{node.func.attr}()"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SESSION_OPENERS
        and not node.args
        and not node.keywords
    ]


def sql_uses(path: Path) -> list[str]:
    found = [str(u) for u in imports(path) if u.module.split(".")[0] in SQL_PACKAGES or u.name == "Session"]
    return found + session_calls(path)


def orchestration_uses(path: Path) -> list[str]:
    found = []
    for use in imports(path):
        if not use.module.startswith(("actors", "state")) or (use.name and use.name.isupper()):
            continue
        allowed = next(
            (
                names
                for module, names in COMMAND_MAY_IMPORT.items()
                if use.module == module or (names is None and use.module.startswith(module + "."))
            ),
            False,
        )
        if allowed is False or (allowed is not None and use.name not in allowed):
            found.append(str(use))
    return found


def _faces() -> list[Path]:
    return sorted(FACES.rglob("*.py"))


@pytest.mark.parametrize("path", _faces(), ids=lambda p: str(p.relative_to(FACES)))
def test_no_face_builds_sql_or_opens_a_session(path: Path):
    assert sql_uses(path) == [], "move the query into a function in state/ and call that"


NOT_YET_MOVED: dict[str, str] = {}
"""Command modules known to break the rule, each with why. Strict: once one is fixed, remove it here."""


def _commands() -> list:
    return [
        pytest.param(path, id=path.name, marks=pytest.mark.xfail(strict=True, reason=NOT_YET_MOVED[path.name]))
        if path.name in NOT_YET_MOVED
        else pytest.param(path, id=path.name)
        for path in sorted(COMMANDS.glob("*.py"))
    ]


@pytest.mark.parametrize("path", _commands())
def test_commands_only_call_use_cases(path: Path):
    assert orchestration_uses(path) == [], "commands call actors.usecases; pure helpers and types only besides"


def test_the_scan_sees_what_it_must(tmp_path: Path, monkeypatch):
    """The rules catch each form a violation takes, and let the allowed ones through."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    face = tmp_path / "coach_tui" / "commands" / "x.py"
    face.parent.mkdir(parents=True)
    face.write_text(
        "from sqlmodel import select\n"
        "import sqlalchemy.orm\n"
        "from state.store import Session\n"
        "def f(app):\n"
        "    from actors.supervisor import Supervisor\n"
        "    from ..context import pass_app\n"
        "    from actors.usecases.datasets import slice_dataset\n"
        "    from actors.dataset.slicing import slice_transcripts, format_length_report, DEFAULT_MAX_TOKENS\n"
        "    with app.store.session() as s:\n"
        "        pass\n"
        "    app.session(42)\n",
        encoding="utf-8",
    )
    assert [s.split(": ", 1)[1] for s in sql_uses(face)] == [
        "sqlmodel.select",
        "sqlalchemy.orm",
        "state.store.Session",
        ".session()",
    ]
    assert [s.split(": ", 1)[1] for s in orchestration_uses(face)] == [
        "state.store.Session",
        "actors.supervisor.Supervisor",
        "actors.dataset.slicing.slice_transcripts",
    ]
    assert Use(face, 6, "coach_tui.context", "pass_app") in imports(face)
