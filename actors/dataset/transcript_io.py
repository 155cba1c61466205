"""Moving transcripts between files and the store.

Import is idempotent: a transcript is keyed by its id, and a file whose id
and content are already stored adds nothing. A different conversation under
an existing id is refused rather than merged. One bad file never stops the
others: each is reported with its path and reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from state import whole_transcripts
from state.errors import CoachError
from state.status import TranscriptStatus, parse_status
from state.store import Store

from ..atomic_files import write_json_atomic
from .transcript_format import TranscriptData, TranscriptFormatError, export_transcript, parse_transcript

IMPORT_STATUSES = {"imported": TranscriptStatus.IMPORTED, "accepted": TranscriptStatus.PASSED}


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def ok(self) -> bool:
        return not self.failed


def _json_files(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.json") if p.is_file())
        else:
            yield path


def read_transcript_file(path: Path) -> TranscriptData:
    """Parse one file; every failure becomes a CoachError naming the path and reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CoachError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise CoachError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise CoachError(f"{path}: cannot read ({err.strerror})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise CoachError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    try:
        return parse_transcript(obj)
    except TranscriptFormatError as err:
        raise CoachError(f"{path}: {err}") from None


def _store_one(store: Store, data: TranscriptData, status: str) -> bool:
    """Add one transcript with its exchanges in one transaction; False if already there."""
    return whole_transcripts.add_transcript(
        store,
        transcript_id=data.id,
        content_hash=data.content_hash(),
        status=status,
        exchanges=((e.number, e.user, e.assistant) for e in data.exchanges),
        persona=data.persona,
        target_exchanges=data.target_exchanges,
        model=data.model,
        meta=data.meta,
    )


def import_transcripts(store: Store, paths: Iterable[Path], *, status: str = "imported") -> ImportReport:
    if status not in IMPORT_STATUSES:
        raise CoachError(f"--status must be one of {', '.join(IMPORT_STATUSES)}, not {status!r}")
    report = ImportReport()
    files = list(_json_files(Path(p) for p in paths))
    for path in files:
        try:
            data = read_transcript_file(path)
            added = _store_one(store, data, IMPORT_STATUSES[status])
        except CoachError as err:
            report.failed.append((str(path), str(err).removeprefix(f"{path}: ")))
            continue
        (report.added if added else report.unchanged).append(data.id)
    return report


def load_transcript(store: Store, transcript_id: str) -> TranscriptData:
    whole = whole_transcripts.whole_transcript(store, transcript_id)
    if whole is None:
        raise CoachError(f"no transcript {transcript_id!r} in the store")
    t = whole.transcript
    return TranscriptData(
        id=t.id,
        exchanges=[{"number": e.number, "user": e.user, "assistant": e.assistant} for e in whole.exchanges],
        persona=whole.persona,
        status=t.status,
        target_exchanges=t.target_exchanges,
        model=t.model,
        meta=t.meta,
    )


def _file_name(transcript_id: str) -> str:
    """A file name that cannot escape the output folder, whatever the id holds."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in transcript_id).lstrip(".")
    return f"{safe or 'transcript'}.json"


def export_transcripts(store: Store, out_dir: Path, *, status: str | None = None) -> list[Path]:
    if status:
        status = parse_status(status, where="--status")  # a misspelt status would silently export nothing
    written = []
    for tid in whole_transcripts.transcript_ids(store, status):
        path = out_dir / _file_name(tid)
        write_json_atomic(path, export_transcript(load_transcript(store, tid)))
        written.append(path)
    return written
