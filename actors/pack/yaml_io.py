"""Reading YAML the strict way: syntax errors with line numbers, duplicate keys refused.

PyYAML keeps the last of two equal keys without a word; in a rubric that
silently drops a category or a criterion field, so duplicates are an error
here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlProblem(Exception):
    def __init__(self, line: int | None, column: int | None, message: str):
        self.line, self.column, self.message = line, column, message
        where = f"line {line}" + (f", column {column}" if column else "") if line else ""
        super().__init__(f"{where}: {message}" if where else message)


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise YamlProblem(
                line, key_node.start_mark.column + 1, f"duplicate key {key!r} (first at line {seen[key]})"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; raise YamlProblem (with a line number where known)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise YamlProblem(None, None, f"not UTF-8 text ({err.reason})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        reason = " ".join(p for p in (err.context, err.problem) if p) or "invalid YAML"
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise YamlProblem(line, col, f"YAML syntax error: {reason}") from None
    except yaml.YAMLError as err:
        raise YamlProblem(None, None, f"YAML error: {err}") from None
