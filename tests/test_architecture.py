"""The import graph between our modules: arrows one way (UI → actors → state), and no circles.

Read from the source with `ast`, so an import inside a function counts as
much as one at the top (a lazy import hides a circle from Python, not from
a reader), and nothing is imported to check it. A circle means two modules
that cannot be understood, tested or moved apart: break it by moving the
shared type or function to the lower of the two, never by making an import
lazy.

One more rule rides on the same reading: no module outside `state/` opens a
database session or takes the session machinery from sqlmodel/sqlalchemy
(`session_uses` says what it can and cannot see).

Not seen: imports by string (`importlib.import_module(name)`). A package's
`__init__` is not counted as imported by its submodules: Python runs it
first, but a package gathering its own submodules is what packages are for.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("actors", "state", "coach_tui")
UI_TOOLKIT = "textual"

NEVER_IMPORTS = {
    "state": ("actors", "coach_tui", UI_TOOLKIT),
    "actors": ("coach_tui", UI_TOOLKIT),
}
"""package → what no module in it may import, at any depth: a layer never reaches up."""


@dataclass(frozen=True)
class Import:
    importer: str
    line: int
    target: str
    """The dotted name as written, made absolute; for `from m import n`, `m.n`."""

    def where(self) -> str:
        return f"{modules()[self.importer].relative_to(ROOT)}:{self.line}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of ours by dotted name (a package by its own name, for its `__init__`)."""
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports(module: str, path: Path) -> list[Import]:
    """Every import in the file, at any depth, relative ones made absolute."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [Import(module, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            out += [Import(module, node.lineno, f"{base}.{alias.name}" if base else alias.name) for alias in node.names]
    return out


def _ours(target: str, known: dict[str, Path]) -> str | None:
    """The module of ours that `target` names: itself, or the longest enclosing one (`m.name` → `m`)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> dict[str, dict[str, Import]]:
    """importer → {imported module of ours → its first import}, self-imports left out."""
    known = modules()
    graph: dict[str, dict[str, Import]] = {m: {} for m in known}
    for module, path in known.items():
        for imp in imports(module, path):
            target = _ours(imp.target, known)
            if target is not None and target != module:
                graph[module].setdefault(target, imp)
    return graph


def _shortest_circle(graph: dict[str, dict[str, Import]], start: str) -> list[Import] | None:
    """Breadth first from `start`'s imports back to `start`: the shortest circle through it, as its imports."""
    parent: dict[str, Import] = {}
    queue = deque([start])
    while queue and start not in parent:
        node = queue.popleft()
        for target, imp in sorted(graph[node].items()):
            if target not in parent:
                parent[target] = imp
                queue.append(target)
    if start not in parent:
        return None
    path = [parent[start]]
    while path[-1].importer != start:
        path.append(parent[path[-1].importer])
    return path[::-1]


def cycles(graph: dict[str, dict[str, Import]]) -> list[list[Import]]:
    """Circles, shortest first, until every module on one is on one reported."""
    circles = sorted(
        (c for m in graph if (c := _shortest_circle(graph, m))), key=lambda c: (len(c), [imp.importer for imp in c])
    )
    found: list[list[Import]] = []
    covered: set[str] = set()
    for circle in circles:
        members = {imp.importer for imp in circle}
        if not members <= covered:
            covered |= members
            found.append(circle)
    return found


def describe(path: list[Import]) -> str:
    hops = "\n".join(
        f"    {imp.importer} → {_ours(imp.target, modules()) or imp.target}   ({imp.where()})" for imp in path
    )
    return f"  {' → '.join([*(imp.importer for imp in path), path[0].importer])}\n{hops}"


def layer_violations(graph_imports: dict[str, list[Import]]) -> list[str]:
    out = []
    for module, found in sorted(graph_imports.items()):
        forbidden = NEVER_IMPORTS.get(module.split(".")[0], ())
        for imp in found:
            if imp.target.split(".")[0] in forbidden:
                out.append(f"{imp.where()}: {module} imports {imp.target}")
    return out


def all_imports() -> dict[str, list[Import]]:
    return {module: imports(module, path) for module, path in modules().items()}


# --- the rules ------------------------------------------------------------------------------------


def test_no_module_of_ours_imports_itself_in_a_circle():
    found = cycles(import_graph())
    assert not found, f"{len(found)} import circle(s); move the shared piece into the lower module:\n" + "\n".join(
        describe(c) for c in found
    )


def test_state_and_actors_never_import_the_layers_above_them():
    found = layer_violations(all_imports())
    assert not found, "a layer reaches up (UI → actors → state, one way):\n  " + "\n  ".join(found)


SQL_PACKAGES = ("sqlmodel", "sqlalchemy")
SESSION_CALLS = {"session", "transaction"}
"""A call by either name, on anything (`store.session()`, `self.app.store.transaction()`), opens a database session."""
SESSION_NAMES = {
    *("Session", "AsyncSession", "sessionmaker", "async_sessionmaker", "scoped_session"),
    *("select", "insert", "update", "delete", "text", "func"),
}
"""Names that open a session, or build the statements only a session runs, when taken from sqlmodel/sqlalchemy."""
SESSION_MODULES = ("sqlmodel", "sqlalchemy", "sqlalchemy.orm", "sqlalchemy.ext.asyncio")
"""Modules whose every name is session machinery (the ORM), or that reach all of it as one name (`import sqlmodel`)."""


def session_uses(module: str, path: Path) -> list[str]:
    """Where a module opens a database session or takes what it needs to, each as `file:line: what`.

    Seen: calls named `session`/`transaction` on any object, with any
    arguments; `Session` imported from anywhere (a re-export is still one);
    the names above from sqlmodel/sqlalchemy, relative imports made
    absolute. Not seen: a session reached by a name made at runtime
    (`getattr(store, "session")`), a state function that hands an open
    session or query back to its caller, and a bare engine connection
    (`create_engine(...).connect()`, as the doctor's schema probe does):
    review watches for those.
    """
    where = path.relative_to(ROOT)
    found = []
    for imp in imports(module, path):
        top, _, _ = imp.target.partition(".")
        name = imp.target.rpartition(".")[2]
        in_orm = imp.target in SESSION_MODULES or imp.target.startswith(tuple(f"{m}." for m in SESSION_MODULES[2:]))
        if name in {"Session", "AsyncSession"} or (top in SQL_PACKAGES and (in_orm or name in SESSION_NAMES)):
            found.append(f"{where}:{imp.line}: imports {imp.target}")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SESSION_CALLS:
            found.append(f"{where}:{node.lineno}: calls .{node.func.attr}()")
    return sorted(found, key=lambda f: int(f.split(":")[1]))


def test_no_database_session_outside_state():
    found = [
        use
        for module, path in sorted(modules().items())
        if module.split(".")[0] != "state"
        for use in session_uses(module, path)
    ]
    assert not found, "a database session outside state/ (move the query into a state/ function and call it):\n  " + (
        "\n  ".join(found)
    )


def test_the_scan_covers_every_package():
    names = modules()
    assert {"actors.pack.loader", "actors.assessment.calibration", "state.store", "coach_tui.cli"} <= names.keys()
    assert all(name.split(".")[0] in PACKAGES for name in names)


ACTOR_HOMES = {
    "simulator": "actors/generation/conversation.py",
    "assistant": "actors/generation/conversation.py",
    "personas": "actors/generation/personas.py",
    "fixup (the curator)": "actors/curation/curator.py",
    "artifacts": "actors/curation/artifacts.py",
    "review": "actors/curation/review.py",
    "assessor": "actors/assessment/assessor.py",
    "scoring": "actors/assessment/scoring.py",
    "calibration": "actors/assessment/calibration.py",
    "evaluator": "actors/evaluation/evaluator.py",
    "statistics": "actors/evaluation/stats.py",
    "agreement": "actors/evaluation/agreement.py",
    "reports": "actors/evaluation/reports.py",
    "slicing": "actors/dataset/slicing.py",
    "token counting": "actors/dataset/tokens.py",
    "transcript formats": "actors/dataset/transcript_format.py",
    "chat engine": "actors/chat/engine.py",
    "crisis net": "actors/safety/detector.py",
}
"""Each of the product's actors → the module it lives in, one room (package) per stage."""


def test_every_actor_lives_in_its_stage_room():
    missing = {actor: path for actor, path in ACTOR_HOMES.items() if not (ROOT / path).is_file()}
    assert not missing, "an actor left its room (move it back, or update the README's Layout and this map):\n  " + (
        "\n  ".join(f"{actor}: {path}" for actor, path in missing.items())
    )


# --- the scan itself ------------------------------------------------------------------------------


def test_the_scan_sees_what_it_must(tmp_path: Path, monkeypatch):
    """Lazy, relative and package imports are followed; circles and upward imports are caught and named."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    files = {
        "actors/__init__.py": "",
        "actors/pack/__init__.py": "from .loader import load\n",
        "actors/pack/loader.py": "def check():\n    from actors.judge import judge\n",
        "actors/pack/types.py": "import textual.widget\n",
        "actors/judge.py": "from .pack import loader\nfrom . import plain\n",
        "actors/plain.py": "from state.store import Store\nimport actors.plain\n",
        "state/__init__.py": "",
        "state/store.py": "def f():\n    from ..actors.plain import x\n",
        "coach_tui/__init__.py": "",
        "coach_tui/app.py": "from actors.pack.types import T\nfrom textual.app import App\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")

    graph = import_graph()
    assert graph["actors.judge"].keys() == {"actors.pack.loader", "actors.plain"}  # `from . import x`: a module
    assert graph["actors.pack"].keys() == {"actors.pack.loader"}
    assert graph["actors.plain"].keys() == {"state.store"}  # itself left out
    assert graph["state.store"].keys() == {"actors.plain"}  # relative, above the package, inside a function
    assert graph["coach_tui.app"].keys() == {"actors.pack.types"}  # a name from a module: the module

    found = cycles(graph)
    assert sorted(sorted(imp.importer for imp in c) for c in found) == [
        ["actors.judge", "actors.pack.loader"],
        ["actors.plain", "state.store"],
    ]
    text = describe(next(c for c in found if c[0].importer == "actors.judge"))
    assert "actors.judge → actors.pack.loader → actors.judge" in text
    assert "actors/pack/loader.py:2" in text  # the lazy import, by file and line

    assert layer_violations(all_imports()) == [
        "actors/pack/types.py:1: actors.pack.types imports textual.widget",
        "state/store.py:2: state.store imports actors.plain.x",
    ]


def test_the_session_scan_sees_what_it_must(tmp_path: Path, monkeypatch):
    """Sessions opened or imported outside state/ are caught in each form; errors and engines for a probe pass."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    files = {
        "actors/__init__.py": "",
        "actors/a.py": (
            "from sqlmodel import select\n"
            "import sqlalchemy.orm\n"
            "from sqlalchemy.exc import SQLAlchemyError\n"
            "from sqlalchemy import create_engine, func\n"
            "def f(store):\n"
            "    from ..state.store import Session\n"
            "    with store.session() as s:\n"
            "        pass\n"
            "    store.transaction()\n"
            "    store.sessions()\n"
        ),
        "coach_tui/__init__.py": "",
        "coach_tui/b.py": "import sqlmodel\nfrom sqlalchemy import orm\ndef g(app):\n    app.store.session(42)\n",
        "state/__init__.py": "",
        "state/store.py": "from sqlmodel import Session, select\ndef q(self):\n    return self.session()\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")

    found = {m: [u.split(": ", 1)[1] for u in session_uses(m, p)] for m, p in modules().items()}
    assert found["actors.a"] == [
        "imports sqlmodel.select",
        "imports sqlalchemy.orm",
        "imports sqlalchemy.func",
        "imports state.store.Session",
        "calls .session()",
        "calls .transaction()",
    ]
    assert found["coach_tui.b"] == ["imports sqlmodel", "imports sqlalchemy.orm", "calls .session()"]
    assert found["state.store"]  # seen there too: the rule, not the scan, lets state/ open sessions
