"""What slicing reads from the store and what it writes back: the accepted transcripts and the example rows.

Slicing takes only transcripts that curation let through, so the questions
here are the store's half of that rule: which transcripts passed (never an
evaluation's, and only the chosen domain's), which still wait for a person's
decision, and where a recorded truncation caps them. The example rows of one
tokenizer are replaced in one transaction that the caller keeps open while
it writes the file, so a failed write leaves the old rows and the old file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import bindparam, func, insert
from sqlmodel import delete, select

from .models import Fixup, Rejection, Run, TrainingExample, Transcript
from .status import TranscriptStatus
from .store import Store

PASSED = TranscriptStatus.PASSED

AddRows = Callable[[list[dict]], None]
"""Adds example rows (transcript_id, start_exchange, end_exchange, tokenizer, token_count, created_at)."""

_INSERT = insert(TrainingExample.__table__).values(
    transcript_id=bindparam("transcript_id"),
    start_exchange=bindparam("start_exchange"),
    end_exchange=bindparam("end_exchange"),
    tokenizer=bindparam("tokenizer"),
    token_count=bindparam("token_count"),
    created_at=bindparam("created_at"),
)


def passed_training_transcript_ids(store: Store, domain: str | None = None) -> list[str]:
    """Passed transcripts in id order, evaluation conversations left out; with `domain`, only that pack's.

    Imported transcripts belong to no run and so to every domain.
    """
    with store.session() as s:
        query = (
            select(Transcript.id)
            .outerjoin(Run, Run.id == Transcript.run_id)
            .where(Transcript.status == PASSED)
            .where((Transcript.run_id.is_(None)) | (Run.kind != "eval"))
        )
        if domain is not None:
            query = query.where((Transcript.run_id.is_(None)) | (Run.domain == domain))
        return list(s.exec(query.order_by(Transcript.id)).all())


def transcripts_awaiting_review(store: Store) -> set[str]:
    """Transcripts with a fixup still waiting for a person's decision."""
    with store.session() as s:
        return set(s.exec(select(Fixup.transcript_id).where(Fixup.decision == "pending")).all())


def truncation_caps(store: Store) -> dict[str, int]:
    """Per truncated transcript, the fewest exchanges any of its recorded truncations kept."""
    caps: dict[str, int] = {}
    with store.session() as s:
        for tid, kept in s.exec(
            select(Rejection.transcript_id, Rejection.kept_exchanges).where(Rejection.action == "truncated")
        ).all():
            if kept is not None:
                caps[tid] = min(kept, caps.get(tid, kept))
    return caps


def passed_transcript_count(store: Store) -> int:
    with store.session() as s:
        return s.exec(select(func.count()).select_from(Transcript).where(Transcript.status == PASSED)).one()


@contextmanager
def replacing_examples(store: Store, tokenizer: str) -> Iterator[AddRows]:
    """One transaction: this tokenizer's example rows are deleted, then the caller adds the new ones.

    Committed when the block ends, rolled back (old rows intact) when it raises.
    """
    with store.session() as s:
        s.exec(delete(TrainingExample).where(TrainingExample.tokenizer == tokenizer))

        def add(rows: list[dict]) -> None:
            if rows:
                s.execute(_INSERT, rows)

        yield add


def example_rows(store: Store) -> dict[str, list[tuple[str, int, datetime]]]:
    """The last slice's example rows per tokenizer: (transcript_id, token_count, created_at) each."""
    out: dict[str, list[tuple[str, int, datetime]]] = {}
    with store.session() as s:
        for tokenizer, tid, count, created in s.exec(
            select(
                TrainingExample.tokenizer,
                TrainingExample.transcript_id,
                TrainingExample.token_count,
                TrainingExample.created_at,
            )
        ).all():
            out.setdefault(tokenizer, []).append((tid, count, created))
    return out
