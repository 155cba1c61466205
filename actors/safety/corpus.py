"""Labelled messages for measuring and training the net: one JSON object per line.

Anyone may bring their own set (a clinician's, a user's), so the format is
small: ``text`` and ``category`` (a category id or ``none``) are required;
``language`` ("unknown" when absent), ``style`` and ``history`` (earlier user
messages, oldest first, for the context layer) are optional. A bad line stops
the read with one message naming the file and the line, before anything is
measured or trained.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from state.errors import CoachError

UNKNOWN_LANGUAGE = "unknown"


class CorpusError(CoachError):
    """A corpus file that cannot be read as labelled messages; exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class Labelled:
    text: str
    category: str
    language: str = UNKNOWN_LANGUAGE
    style: str = ""
    history: tuple[str, ...] = ()
    line: int = 0


def _field(obj: dict, name: str, where: str, *, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise CorpusError(f"{where}: missing field {name!r}")
        return None
    if not isinstance(value, str):
        raise CorpusError(f"{where}: field {name!r} must be a string, not {type(value).__name__}")
    return value


def parse_line(line: str, source: str, number: int, categories: Iterable[str] | None = None) -> Labelled | None:
    """One labelled message, or None for a blank line; `CorpusError` naming file and line otherwise."""
    where = f"{source}: line {number}"
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise CorpusError(f"{where}: not a JSON object ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: expected a JSON object with 'text' and 'category'")
    text = _field(obj, "text", where, required=True)
    category = _field(obj, "category", where, required=True).strip()
    if categories is not None:
        allowed = ["none", *categories]
        if category not in allowed:
            raise CorpusError(f"{where}: unknown category {category!r} (expected one of: {', '.join(allowed)})")
    language = (_field(obj, "language", where, required=False) or UNKNOWN_LANGUAGE).strip().lower()
    style = _field(obj, "style", where, required=False) or ""
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
        raise CorpusError(f"{where}: field 'history' must be a list of strings")
    return Labelled(text, category, language or UNKNOWN_LANGUAGE, style, tuple(history), number)


def read_corpus(path: Path, categories: Iterable[str] | None = None) -> list[Labelled]:
    """Every labelled message in ``path``; `CorpusError` names the file and line of the first bad one."""
    known = list(categories) if categories is not None else None
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a folder, not a JSONL file") from None
    except OSError as err:
        raise CorpusError(f"{path}: cannot be read ({err.strerror})") from None
    out: list[Labelled] = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            line = chunk.decode("utf-8")
        except UnicodeDecodeError:
            raise CorpusError(f"{path}: line {number}: not UTF-8 text") from None
        item = parse_line(line, str(path), number, known)
        if item is not None:
            out.append(item)
    if not out:
        raise CorpusError(f"{path}: no labelled messages (expected one JSON object per line)")
    return out
