"""Structured answers: check a model's JSON against the caller's schema, never repair it.

A judge's answer is either a JSON object that satisfies the schema or it is an
ERROR the scorer counts as a failure. Guessing (regex-scraping "YES" out of
prose, closing a truncated object) would hide exactly the failures a rubric
run needs to see, so this module only accepts or explains.

The validator covers the JSON Schema keywords the project's schemas use
(type, enum, const, properties, required, additionalProperties, items,
min/maxItems, min/maxLength, minimum/maximum, anyOf/oneOf, local ``$ref``).
Keywords outside that set are ignored rather than guessed at.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def parse_structured(text: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Return ``(data, None)`` for a schema-valid JSON object, else ``(None, why)``.

    Two leniencies, neither of which changes what the model said: one Markdown
    code fence around the whole answer (chat models add it by habit), and raw
    control characters such as a newline inside a string (llama.cpp's JSON
    grammar lets them through; ``strict=False`` reads them as written).
    Anything else that is not exactly JSON is an error.
    """
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        return None, "empty answer where a JSON object was required"
    try:
        value = json.loads(body, strict=False)
    except json.JSONDecodeError as err:
        return None, f"answer is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
    return check_object(value, schema)


def check_object(value: Any, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Validate an already-decoded value (e.g. an Anthropic tool input) against the schema."""
    if not isinstance(value, dict):
        return None, f"answer is JSON but not an object (got {type(value).__name__})"
    problems = validate(value, schema)
    if problems:
        return None, "answer does not match the schema: " + "; ".join(problems[:5])
    return value, None


def validate(value: Any, schema: dict[str, Any], *, root: dict[str, Any] | None = None, path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``path: reason`` strings (empty when valid)."""
    root = schema if root is None else root
    if "$ref" in schema:
        return validate(value, _resolve(schema["$ref"], root), root=root, path=path)
    problems: list[str] = []
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: must be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    for key in ("anyOf", "oneOf"):
        if key in schema:
            matches = sum(not validate(value, option, root=root, path=path) for option in schema[key])
            if matches == 0 or (key == "oneOf" and matches > 1):
                problems.append(f"{path}: matches {matches} of the {key} alternatives")
    declared = schema.get("type")
    if declared is not None:
        names = declared if isinstance(declared, list) else [declared]
        if not any(_is_type(value, name) for name in names):
            problems.append(f"{path}: expected {' or '.join(names)}, got {_json_type(value)}")
            return problems
    if isinstance(value, dict):
        problems += _validate_object(value, schema, root, path)
    elif isinstance(value, list):
        problems += _validate_array(value, schema, root, path)
    elif isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{path}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']} characters")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: above the maximum {schema['maximum']}")
    return problems


def _validate_object(value: dict, schema: dict, root: dict, path: str) -> list[str]:
    problems = [f"{path}: missing required field {name!r}" for name in schema.get("required", []) if name not in value]
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            problems += validate(item, properties[key], root=root, path=f"{path}.{key}")
        elif extra is False:
            problems.append(f"{path}: unexpected field {key!r}")
        elif isinstance(extra, dict):
            problems += validate(item, extra, root=root, path=f"{path}.{key}")
    return problems


def _validate_array(value: list, schema: dict, root: dict, path: str) -> list[str]:
    problems: list[str] = []
    if len(value) < schema.get("minItems", 0):
        problems.append(f"{path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        problems.append(f"{path}: more than {schema['maxItems']} items")
    if isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += validate(item, schema["items"], root=root, path=f"{path}[{index}]")
    return problems


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def bound_strings(schema: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """A copy of ``schema`` where every free-text string has ``maxLength <= max_chars``.

    Constrained decoding cannot end a string the model wants to continue: a
    small model fills an unbounded ``reasoning`` field until ``max_tokens`` and
    the object is never closed (facts.md). Bounding each free string lets the
    grammar force the closing quote and brace within the budget. Strings that
    already have an enum, const, pattern or a tighter maxLength are left alone.
    """
    bounded = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and not {"enum", "const", "pattern", "format"} & node.keys():
                node["maxLength"] = min(node.get("maxLength", max_chars), max_chars)
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(bounded)
    return bounded


def count_free_strings(schema: dict[str, Any]) -> int:
    """How many free-text string fields the schema has (for sharing a length budget between them)."""
    if isinstance(schema, dict):
        own = int(schema.get("type") == "string" and not {"enum", "const", "pattern", "format"} & schema.keys())
        return own + sum(count_free_strings(child) for child in schema.values())
    if isinstance(schema, list):
        return sum(count_free_strings(child) for child in schema)
    return 0


def skeleton_chars(schema: dict[str, Any]) -> int:
    """Characters of the smallest answer with every free string empty: the JSON's fixed cost.

    Keys, punctuation, the longest enum value of each field, and a space around
    each separator (grammars allow whitespace and small models use it).
    """
    if not isinstance(schema, dict):
        return 0
    if "enum" in schema:
        return max((len(json.dumps(v)) for v in schema["enum"]), default=0)
    if "const" in schema:
        return len(json.dumps(schema["const"]))
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties", {})
        return 2 + sum(len(json.dumps(k)) + 4 + skeleton_chars(v) for k, v in props.items())
    return {"string": 2, "integer": 4, "number": 8, "boolean": 5, "null": 4, "array": 2}.get(str(kind), 8)


def schema_instruction(schema: dict[str, Any]) -> str:
    """The sentence that asks a model without constrained decoding for a schema-shaped answer."""
    return (
        "Answer with one JSON object and nothing else (no prose, no code fence). "
        "It must satisfy this JSON Schema:\n" + json.dumps(schema, separators=(",", ":"))
    )
