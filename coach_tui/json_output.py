"""`--json`: one JSON document on stdout and nothing else, so a script can read a command's result.

Strict JSON: a number that is not finite (a p-value of NaN when no test was
possible) is written as null, since `NaN` is not JSON and most readers refuse it.
Paths and dates are written as their text.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click


def plain(value: Any) -> Any:
    """`value` as JSON's types: dataclasses and pydantic models as objects, tuples as lists, NaN as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="json"))
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(plain(value), ensure_ascii=False, indent=2, allow_nan=False, default=str))
