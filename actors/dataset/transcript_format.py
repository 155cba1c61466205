"""Transcript files: the project's own JSON format and the earlier implementation's.

Pure: a parsed JSON value in, a validated `TranscriptData` out (or a
`TranscriptFormatError` naming the field). Two formats are read:

- coach's own export: `{"format": "coach-transcript", "version": 1, "id", "status",
  "persona", "exchanges": [{"number", "user", "assistant"}], …}`;
- the earlier implementation's: `{"id", "persona", "exchanges":
  [{"exchange_number", "user", "assistant"}]}` plus either `target_exchanges`,
  `created_at`, `generator_version`, or (local-model runs) `model`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

FORMAT_NAME = "coach-transcript"
FORMAT_VERSION = 1


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
    tid = obj.get("id")
    if not isinstance(tid, str) or not tid.strip():
        raise TranscriptFormatError("id: missing or empty")
    persona = obj.get("persona")
    if persona is not None and not isinstance(persona, dict):
        raise TranscriptFormatError("persona: must be an object")

    if obj.get("format") == FORMAT_NAME:
        version = obj.get("version")
        if version != FORMAT_VERSION:
            raise TranscriptFormatError(f"version: {version!r} is not a version this coach reads ({FORMAT_VERSION})")
        return TranscriptData(
            id=tid.strip(),
            exchanges=_exchanges(obj.get("exchanges"), "number"),
            persona=persona,
            status=obj.get("status"),
            target_exchanges=obj.get("target_exchanges"),
            model=obj.get("model"),
            meta=obj.get("meta") or {},
        )
    if "format" in obj:
        raise TranscriptFormatError(f"format: unknown transcript format {obj['format']!r}")

    target = obj.get("target_exchanges")
    if target is not None and (not isinstance(target, int) or target < 1):
        raise TranscriptFormatError("target_exchanges: must be a positive whole number")
    meta = {k: obj[k] for k in ("created_at", "generator_version") if k in obj}
    meta["imported_format"] = "earlier-implementation"
    return TranscriptData(
        id=tid.strip(),
        exchanges=_exchanges(obj.get("exchanges"), "exchange_number"),
        persona=persona,
        target_exchanges=target,
        model=obj.get("model"),
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
