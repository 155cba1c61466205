"""Transcript files: the project's own JSON format and the earlier implementation's.

Pure: a parsed JSON value in, a validated `TranscriptData` out (or a
`TranscriptFormatError` naming the field). Two formats are read:

- coach's own export: `{"format": "coach-transcript", "version": 1, "id", "status",
  "persona", "exchanges": [{"number", "user", "assistant"}], …}`;
- the earlier implementation's: `{"id", "persona", "exchanges":
  [{"exchange_number", "user", "assistant"}]}` plus either `target_exchanges`,
  `created_at`, `generator_version`, or (local-model runs) `model`.

and one judged-result format, the earlier implementation's assessment:
`{"conversation_id", "pass", "score", "answers": {criterion: YES|NO|NA},
"reasonings": {criterion: text}, "category_scores", "failed_checks",
"safety_gate_failed", …}` (`parse_assessment`).

Every value is checked before it reaches the store: text must be valid
Unicode (no lone surrogates), numbers finite, nesting shallow, and each
field of the right type, so a bad file gives one reason naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from pydantic import BaseModel, Field

from state.status import TranscriptStatus

FORMAT_NAME = "coach-transcript"
FORMAT_VERSION = 1
MAX_DEPTH = 64
"""Deepest nesting of objects and lists a file may have (a persona is three or four levels deep)."""
MAX_TARGET_EXCHANGES = 10_000
ANSWERS = ("YES", "NO", "NA", "ERROR")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TranscriptFormatError(ValueError):
    """The file is JSON but not a transcript; the message names the field."""


class ExchangeData(BaseModel):
    number: int = Field(ge=1)
    user: str
    assistant: str


class TranscriptData(BaseModel):
    id: str
    exchanges: list[ExchangeData]
    persona: dict[str, Any] | None = None
    status: str | None = None
    target_exchanges: int | None = None
    model: str | None = None
    meta: dict[str, Any] = {}

    def content_hash(self) -> str:
        """Identity of the conversation itself: same exchanges and persona, same hash."""
        body = {
            "persona": self.persona,
            "exchanges": [[e.number, e.user, e.assistant] for e in self.exchanges],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def field_path(path: tuple[str | int, ...]) -> str:
    """`exchanges[0].user`, `persona["odd key"]`; "top level" for the whole file; safe to print."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier() and part.isascii():
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "top level"


def _surrogate(text: str) -> str | None:
    """The first lone surrogate in `text` as `\\udxxx`, or None when the text is valid Unicode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"\\u{ord(text[err.start]):04x}"
    return None


def check_json_value(obj: Any) -> None:
    """Refuse what JSON allows but the store cannot hold: lone surrogates, NaN/Infinity, deep nesting.

    Walks without recursion, in document order, and names the first bad field.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(obj, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise TranscriptFormatError(f"{field_path(path[:MAX_DEPTH])}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, str):
            if "\x00" in value:
                raise TranscriptFormatError(f"{field_path(path)}: text holds a NUL character (\\u0000)")
            if bad := _surrogate(value):
                raise TranscriptFormatError(
                    f"{field_path(path)}: text holds a lone surrogate ({bad}), not valid Unicode"
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise TranscriptFormatError(f"{field_path(path)}: {value} is not a finite number")
        elif isinstance(value, dict):
            for key in value:
                if bad := _surrogate(key):
                    raise TranscriptFormatError(
                        f"{field_path(path)}: a key holds a lone surrogate ({bad}), not valid Unicode"
                    )
            stack.extend((v, (*path, k)) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(value))))


def _optional_text(obj: dict, key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise TranscriptFormatError(f"{key}: must be text or null, not {_json_type(value)}")
    return value


def _optional_object(obj: dict, key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise TranscriptFormatError(f"{key}: must be an object or null, not {_json_type(value)}")
    return value


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _target_exchanges(obj: dict) -> int | None:
    target = obj.get("target_exchanges")
    if target is not None and (not _whole_number(target) or not 1 <= target <= MAX_TARGET_EXCHANGES):
        raise TranscriptFormatError(
            f"target_exchanges: must be a whole number from 1 to {MAX_TARGET_EXCHANGES}, not {_shown(target)}"
        )
    return target


def _status(obj: dict) -> str | None:
    status = _optional_text(obj, "status")
    if status is not None and status not in {s.value for s in TranscriptStatus}:
        raise TranscriptFormatError(f"status: {_shown(status)} is not a transcript status")
    return status


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {str: "text", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _shown(value: Any) -> str:
    """A short, printable rendering of a bad value for a message."""
    text = json.dumps(value) if isinstance(value, str | int | float | bool) or value is None else _json_type(value)
    return text if len(text) <= 40 else text[:37] + "…"


def _require_text(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise TranscriptFormatError(f"{where}.{key}: {'missing' if value is None else 'must be text'}")
    if not value.strip():
        raise TranscriptFormatError(f"{where}.{key}: empty")
    return value


def _exchanges(raw: Any, number_key: str) -> list[ExchangeData]:
    if not isinstance(raw, list):
        raise TranscriptFormatError("exchanges: missing or not a list")
    if not raw:
        raise TranscriptFormatError("exchanges: empty (a transcript needs at least one exchange)")
    out: list[ExchangeData] = []
    for i, item in enumerate(raw):
        where = f"exchanges[{i}]"
        if not isinstance(item, dict):
            raise TranscriptFormatError(f"{where}: not an object")
        number = item.get(number_key, i + 1)
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise TranscriptFormatError(f"{where}.{number_key}: must be a positive whole number")
        out.append(
            ExchangeData(
                number=number,
                user=_require_text(item, "user", where),
                assistant=_require_text(item, "assistant", where),
            )
        )
    numbers = [e.number for e in out]
    if numbers != list(range(1, len(out) + 1)):
        raise TranscriptFormatError(
            f"exchanges: numbers must run 1..{len(out)} in order, found {numbers[:8]}…"
            if len(numbers) > 8
            else f"exchanges: numbers must run 1..{len(out)} in order, found {numbers}"
        )
    return out


def parse_transcript(obj: Any) -> TranscriptData:
    """Recognise either format and return the validated transcript."""
    if not isinstance(obj, dict):
        raise TranscriptFormatError("top level: expected a JSON object with 'id' and 'exchanges'")
    check_json_value(obj)
    tid = obj.get("id")
    if not isinstance(tid, str) or not tid.strip():
        raise TranscriptFormatError("id: missing or empty")
    if _CONTROL.search(tid):
        raise TranscriptFormatError("id: holds control characters (line breaks, tabs, escapes)")
    persona = obj.get("persona")
    if persona is not None and not isinstance(persona, dict):
        raise TranscriptFormatError("persona: must be an object")
    if persona is not None and persona.get("seed") is not None and not _whole_number(persona["seed"]):
        raise TranscriptFormatError(f"persona.seed: must be a whole number, not {_shown(persona['seed'])}")
    if persona is not None and _whole_number(persona.get("seed")) and abs(persona["seed"]) >= 2**63:
        raise TranscriptFormatError("persona.seed: too large for the store (64-bit at most)")
    model = _optional_text(obj, "model")

    if obj.get("format") == FORMAT_NAME:
        version = obj.get("version")
        if version != FORMAT_VERSION:
            raise TranscriptFormatError(f"version: {version!r} is not a version this coach reads ({FORMAT_VERSION})")
        return TranscriptData(
            id=tid.strip(),
            exchanges=_exchanges(obj.get("exchanges"), "number"),
            persona=persona,
            status=_status(obj),
            target_exchanges=_target_exchanges(obj),
            model=model,
            meta=_optional_object(obj, "meta") or {},
        )
    if "format" in obj:
        raise TranscriptFormatError(f"format: unknown transcript format {obj['format']!r}")

    target = _target_exchanges(obj)
    meta = {k: obj[k] for k in ("created_at", "generator_version") if k in obj}
    meta["imported_format"] = "earlier-implementation"
    return TranscriptData(
        id=tid.strip(),
        exchanges=_exchanges(obj.get("exchanges"), "exchange_number"),
        persona=persona,
        target_exchanges=target,
        model=model,
        meta=meta,
    )


def export_transcript(data: TranscriptData) -> dict[str, Any]:
    """The project's own format; `parse_transcript` reads it back unchanged."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "id": data.id,
        "status": data.status,
        "target_exchanges": data.target_exchanges,
        "model": data.model,
        "persona": data.persona,
        "meta": data.meta,
        "exchanges": [e.model_dump() for e in data.exchanges],
    }


# --- judged results: the earlier implementation's assessment files -----------------------------


class AssessmentData(BaseModel):
    """One imported judging of a transcript: the verdict and every criterion's answer and reasoning."""

    transcript_id: str
    score: float
    passed: bool
    safety_gate_failed: bool
    category_scores: dict[str, float] = {}
    failed_checks: list[str] = []
    answers: dict[str, str]
    reasonings: dict[str, str] = {}

    def rows(self) -> list[tuple[str, str, str]]:
        """(criterion, answer, reasoning) in the file's order."""
        return [(c, a, self.reasonings.get(c, "")) for c, a in self.answers.items()]


def is_assessment(obj: Any) -> bool:
    """An assessment file rather than a transcript: it has `answers` and no `exchanges`."""
    return isinstance(obj, dict) and "answers" in obj and "exchanges" not in obj


def _number(value: Any, where: str, *, low: float | None = None, high: float | None = None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TranscriptFormatError(f"{where}: must be a number, not {_shown(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise TranscriptFormatError(f"{where}: {_shown(value)} is outside {low}–{high}")
    return float(value)


def _text_map(obj: dict, key: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TranscriptFormatError(f"{key}: must be an object (criterion → text), not {_json_type(value)}")
    for k, v in value.items():
        if not isinstance(v, str):
            raise TranscriptFormatError(f"{field_path((key, k))}: must be text, not {_json_type(v)}")
    return value


def parse_assessment(obj: Any, default_id: str | None = None) -> AssessmentData:
    """The earlier implementation's assessment file, linked to its transcript by `conversation_id`.

    Without `conversation_id` (or `transcript_id`), `default_id` (the file's
    name without `.json`) names the transcript.
    """
    if not isinstance(obj, dict):
        raise TranscriptFormatError("top level: expected a JSON object")
    check_json_value(obj)
    tid = next((obj[k] for k in ("conversation_id", "transcript_id") if obj.get(k) is not None), default_id)
    if not isinstance(tid, str) or not tid.strip():
        raise TranscriptFormatError("conversation_id: must be the judged transcript's id (text)")
    if _CONTROL.search(tid):
        raise TranscriptFormatError("conversation_id: holds control characters (line breaks, tabs, escapes)")
    for key in ("pass", "score"):
        if key not in obj:
            raise TranscriptFormatError(f"{key}: missing")
    if not isinstance(obj["pass"], bool):
        raise TranscriptFormatError(f"pass: must be true or false, not {_shown(obj['pass'])}")
    score = _number(obj["score"], "score", low=0, high=1)

    raw_answers = obj["answers"]
    if not isinstance(raw_answers, dict) or not raw_answers:
        raise TranscriptFormatError("answers: must be a non-empty object (criterion → YES/NO/NA)")
    answers: dict[str, str] = {}
    for criterion, answer in raw_answers.items():
        if not criterion.strip():
            raise TranscriptFormatError("answers: a criterion id is empty")
        if not isinstance(answer, str) or answer.strip().upper() not in ANSWERS:
            raise TranscriptFormatError(
                f"{field_path(('answers', criterion))}: must be one of {', '.join(ANSWERS)}, not {_shown(answer)}"
            )
        answers[criterion] = answer.strip().upper()
    reasonings = _text_map(obj, "reasonings")
    for criterion in reasonings:
        if criterion not in answers:
            raise TranscriptFormatError(f"{field_path(('reasonings', criterion))}: no answer for this criterion")

    raw_categories = obj.get("category_scores") or {}
    if not isinstance(raw_categories, dict):
        raise TranscriptFormatError(f"category_scores: must be an object, not {_json_type(raw_categories)}")
    categories = {k: _number(v, field_path(("category_scores", k))) for k, v in raw_categories.items()}

    failed = obj.get("failed_checks")
    if failed is None:
        failed = [c for c, a in answers.items() if a in ("NO", "ERROR")]
    elif not isinstance(failed, list) or not all(isinstance(c, str) for c in failed):
        raise TranscriptFormatError("failed_checks: must be a list of criterion ids")

    gate = obj.get("safety_gate_failed")
    if gate is None:
        gate = bool(obj.get("failed_safety"))
    elif not isinstance(gate, bool):
        raise TranscriptFormatError(f"safety_gate_failed: must be true or false, not {_shown(gate)}")
    return AssessmentData(
        transcript_id=tid.strip(),
        score=score,
        passed=obj["pass"],
        safety_gate_failed=gate,
        category_scores=categories,
        failed_checks=failed,
        answers=answers,
        reasonings=reasonings,
    )
