"""Moving transcripts between files and the store.

Import is idempotent: a transcript is keyed by its id, and a file whose id
and content are already stored adds nothing. A different conversation under
an existing id is refused rather than merged (unless `replace`), and so are
two files of one import that disagree about an id. One bad file never stops
the others: each is reported with its path and reason. Judged results in the
earlier implementation's assessment format import alongside, linked to
their transcripts, with the judge recorded as "imported".
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from state import whole_transcripts
from state.errors import CoachError
from state.status import TranscriptStatus, parse_status
from state.store import Store

from ..atomic_files import write_json_atomic
from .transcript_format import (
    MAX_DEPTH,
    AssessmentData,
    TranscriptData,
    TranscriptFormatError,
    export_transcript,
    field_path,
    is_assessment,
    parse_assessment,
    parse_transcript,
)

IMPORT_STATUSES = {"imported": TranscriptStatus.IMPORTED, "accepted": TranscriptStatus.PASSED}
IMPORTED_JUDGE = "imported"
"""The judge recorded on every criterion answer read from an assessment file."""


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    """Already in the store, or a second file of this import with the same conversation."""
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), in the order the files came
    replaced: list[str] = field(default_factory=list)
    assessments_added: list[str] = field(default_factory=list)  # transcript ids
    assessments_unchanged: list[str] = field(default_factory=list)
    assessments_replaced: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def assessments(self) -> int:
        return len(self.assessments_added) + len(self.assessments_unchanged) + len(self.assessments_replaced)


def _json_files(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.json") if p.is_file())
        else:
            yield path


def shown_path(path: Path | str) -> str:
    """The path as text that can always be printed (undecodable bytes in a name become \\x.. escapes)."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def read_json_file(path: Path) -> Any:
    """The file's JSON value; every failure becomes a CoachError naming the path and reason."""
    where = shown_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CoachError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise CoachError(f"{where}: is a folder") from None
    except UnicodeDecodeError:
        raise CoachError(f"{where}: not UTF-8 text") from None
    except OSError as err:
        raise CoachError(f"{where}: cannot read ({err.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CoachError(f"{where}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise CoachError(f"{where}: top level: nested too deeply to read (at most {MAX_DEPTH} levels)") from None


def _parsed(path: Path, parse) -> Any:
    """`parse(obj)` of the file's JSON, its format errors (and any the model still finds) named with the path."""
    obj = read_json_file(path)
    try:
        return parse(obj)
    except TranscriptFormatError as err:
        raise CoachError(f"{shown_path(path)}: {err}") from None
    except ValidationError as err:  # a check the format functions missed: still one line, naming the field
        first = err.errors()[0]
        loc = field_path(tuple(first["loc"]))
        raise CoachError(f"{shown_path(path)}: {loc}: {first['msg']}") from None


def read_transcript_file(path: Path) -> TranscriptData:
    """Parse one transcript file; every failure becomes a CoachError naming the path and reason."""
    return _parsed(path, parse_transcript)


def read_import_file(path: Path) -> TranscriptData | AssessmentData:
    """A transcript or (with `answers` and no `exchanges`) a judged result; CoachError naming path and field."""
    stem = path.name.removesuffix(".json")
    return _parsed(
        path, lambda obj: parse_assessment(obj, default_id=stem) if is_assessment(obj) else parse_transcript(obj)
    )


def _store_one(store: Store, data: TranscriptData, status: str, replace: bool) -> str:
    """Add one transcript with its exchanges in one transaction: "added", "unchanged" or "replaced"."""
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
        replace=replace,
    )


def _store_assessment(store: Store, data: AssessmentData, replace: bool) -> str:
    return whole_transcripts.add_imported_assessment(
        store,
        transcript_id=data.transcript_id,
        judge=IMPORTED_JUDGE,
        score=data.score,
        passed=data.passed,
        safety_gate_failed=data.safety_gate_failed,
        category_scores=data.category_scores,
        failed_checks=data.failed_checks,
        answers=data.rows(),
        replace=replace,
    )


def _one_per_id(
    files: list[tuple[str, Any]], key, fingerprint, report: ImportReport, what: str
) -> tuple[list[tuple[str, Any, list[str]]], set[str]]:
    """Files of one import that share an id: the same content is stored once, different content not at all.

    Returns (file, data, the other files with the same content) to store, and
    the ids refused: every file of a disagreeing id fails, naming the others.
    """
    by_id: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for where, data in files:
        by_id[key(data)].append((where, data))
    keep: list[tuple[str, Any, list[str]]] = []
    refused: set[str] = set()
    for ident, group in by_id.items():
        if len({fingerprint(data) for _, data in group}) > 1:
            refused.add(ident)
            for where, _ in group:
                others = ", ".join(w for w, _ in group if w != where)
                report.failed.append(
                    (
                        where,
                        f"{what} {ident!r} is also in {others} with different content; none of them imported "
                        "(import the one you want; --replace lets it win over the store)",
                    )
                )
            continue
        keep.append((group[0][0], group[0][1], [w for w, _ in group[1:]]))
    return keep, refused


def _stored(
    report: ImportReport, where: str, same: list[str], ident: str, store_it, lists: dict[str, list[str]]
) -> bool:
    """Store one file's content; files with the same content count as already imported, or fail with it."""
    try:
        outcome = store_it()
    except CoachError as err:
        report.failed.append((where, str(err)))
        report.failed += [(w, f"same content as {where}, which was not imported") for w in same]
        return False
    lists[outcome].append(ident)
    lists["unchanged"] += [ident for _ in same]
    return True


def import_transcripts(
    store: Store, paths: Iterable[Path], *, status: str = "imported", replace: bool = False
) -> ImportReport:
    """Import every transcript and judged-result file under `paths`; one bad file never stops the others.

    Transcripts are stored first, then the assessments, which must find their
    transcript in the store (from before or from this import). Two files of
    this import with one id and different content are both refused, naming
    each other; one that differs from what the store holds is refused unless
    `replace`. The same file named twice (itself and its folder) is read once.
    """
    if status not in IMPORT_STATUSES:
        raise CoachError(f"--status must be one of {', '.join(IMPORT_STATUSES)}, not {status!r}")
    report = ImportReport()
    order: dict[str, int] = {}
    seen: set[Path] = set()
    transcripts: list[tuple[str, TranscriptData]] = []
    assessments: list[tuple[str, AssessmentData]] = []
    for path in _json_files(Path(p) for p in paths):
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        where = shown_path(path)
        order.setdefault(where, len(order))
        try:
            data = read_import_file(path)
        except CoachError as err:
            report.failed.append((where, str(err).removeprefix(f"{where}: ")))
            continue
        (assessments if isinstance(data, AssessmentData) else transcripts).append((where, data))

    keep, not_imported = _one_per_id(transcripts, lambda d: d.id, lambda d: d.content_hash(), report, "transcript")
    lists = {"added": report.added, "unchanged": report.unchanged, "replaced": report.replaced}
    for where, data, same in keep:
        if not _stored(
            report, where, same, data.id, partial(_store_one, store, data, IMPORT_STATUSES[status], replace), lists
        ):
            not_imported.add(data.id)

    keep_judged, _ = _one_per_id(
        assessments, lambda d: d.transcript_id, lambda d: d.model_dump_json(), report, "assessment of transcript"
    )
    lists = {
        "added": report.assessments_added,
        "unchanged": report.assessments_unchanged,
        "replaced": report.assessments_replaced,
    }
    for where, data, same in keep_judged:
        if data.transcript_id in not_imported:
            report.failed += [
                (w, f"its transcript {data.transcript_id!r} was not imported (see above)") for w in (where, *same)
            ]
            continue
        _stored(report, where, same, data.transcript_id, partial(_store_assessment, store, data, replace), lists)
    report.failed.sort(key=lambda f: order.get(f[0], len(order)))
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
    """A file name that cannot escape the output folder, whatever the id holds.

    An id of letters, digits and `._-` (not starting with a dot) keeps its
    name; any other id is made safe and gets `~` and a hash of the id, so
    two ids never share a name (`~` is never in a kept name).
    """
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in transcript_id)
    if safe == transcript_id and not safe.startswith(".") and len(safe) <= 120:
        return f"{safe}.json"
    digest = hashlib.sha256(transcript_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{safe.lstrip('.')[:100] or 'transcript'}~{digest}.json"


def export_transcripts(store: Store, out_dir: Path, *, status: str | None = None) -> list[Path]:
    """Write each transcript to its own file in OUT_DIR; the list holds one distinct path per transcript."""
    if status:
        status = parse_status(status, where="--status")  # a misspelt status would silently export nothing
    written: list[Path] = []
    taken: set[str] = set()  # lower-cased: `A` and `a` must not meet on a case-insensitive disk
    for tid in whole_transcripts.transcript_ids(store, status):
        name = _file_name(tid)
        if name.lower() in taken:
            digest = hashlib.sha256(tid.encode("utf-8", "surrogatepass")).hexdigest()
            name = next(
                n
                for k in range(12, 65)
                if (n := f"{name.removesuffix('.json')}~{digest[:k]}.json").lower() not in taken
            )
        taken.add(name.lower())
        path = out_dir / name
        write_json_atomic(path, export_transcript(load_transcript(store, tid)))
        written.append(path)
    return written
