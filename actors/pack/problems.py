"""One problem found in a domain pack: where it is and what is wrong.

A person fixing a pack is told the file as they would type it (relative to
where they stand) and the field as they would find it (list items named by
their id), so every reader of a pack file reports problems through these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}" if self.field else f"{self.file}: {self.message}"


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def field_path(loc: tuple[Any, ...], data: Any) -> str:
    """`('criteria', 3, 'question')` -> `criteria[3] (CQ6).question`, naming list items by id."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                ident = node[item].get("id") or node[item].get("name")
                if ident:
                    label += f" ({ident})"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def validation_problems(err: ValidationError, data: Any, shown: str) -> list[Problem]:
    """One problem per pydantic error in the file `shown`, worded for the person editing it."""
    problems = []
    for e in err.errors():
        message = e["msg"]
        if e["type"] == "extra_forbidden":
            message = "unknown field (check its spelling)"
        elif e["type"] == "missing":
            message = "required field is missing"
        problems.append(Problem(shown, field_path(e["loc"], data), message))
    return problems
