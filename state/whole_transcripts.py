"""A transcript as one unit — its row, its persona and its exchanges — written or read in one transaction.

Why a module of its own: the pipeline (`state.pipeline`) builds a transcript
step by step, each step with its event row; importing and exporting move a
finished conversation between files and the store all at once, outside any
run. A half-imported transcript must never be seen, so the row, the persona
and every exchange commit together, and a read for export sees one
consistent version. The file formats and the import's report stay in
`actors.dataset`; these functions take and give plain values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from .errors import CoachError
from .models import Exchange, Persona, Transcript
from .store import Store


@dataclass(frozen=True)
class WholeTranscript:
    transcript: Transcript
    exchanges: list[Exchange]
    """In exchange order."""
    persona: dict[str, Any] | None
    """The persona's data, when the transcript has one."""


def add_transcript(
    store: Store,
    *,
    transcript_id: str,
    content_hash: str,
    status: str,
    exchanges: Iterable[tuple[int, str, str]],
    persona: dict[str, Any] | None = None,
    target_exchanges: int | None = None,
    model: str | None = None,
    meta: dict[str, Any] | None = None,
) -> bool:
    """Add an imported transcript with its persona and (number, user, assistant) exchanges, in one transaction.

    False, adding nothing, when the same conversation (same `content_hash`)
    is already stored under this id; CoachError when a different one is.
    """
    with store.session() as s:
        existing = s.get(Transcript, transcript_id)
        if existing is not None:
            if existing.content_hash == content_hash:
                return False
            raise CoachError(f"a different transcript with id {transcript_id!r} is already in the store; not replaced")
        persona_id = None
        if persona:
            persona_id = f"{transcript_id}:persona"
            s.add(Persona(id=persona_id, purpose="imported", seed=persona.get("seed"), data=persona))
        s.add(
            Transcript(
                id=transcript_id,
                persona_id=persona_id,
                status=status,
                source="imported",
                target_exchanges=target_exchanges,
                model=model,
                content_hash=content_hash,
                meta=meta or {},
            )
        )
        s.flush()
        s.add_all(
            Exchange(transcript_id=transcript_id, number=number, user=user, assistant=assistant)
            for number, user, assistant in exchanges
        )
    return True


def whole_transcript(store: Store, transcript_id: str) -> WholeTranscript | None:
    """The transcript with its exchanges and persona, read together; None when there is no such transcript."""
    with store.session() as s:
        t = s.get(Transcript, transcript_id)
        if t is None:
            return None
        exchanges = list(s.exec(select(Exchange).where(Exchange.transcript_id == t.id).order_by(Exchange.number)).all())
        persona = s.get(Persona, t.persona_id).data if t.persona_id else None
    return WholeTranscript(transcript=t, exchanges=exchanges, persona=persona)


def transcript_ids(store: Store, status: str | None = None) -> list[str]:
    """Every transcript's id in id order; with `status`, only those in it."""
    with store.session() as s:
        query = select(Transcript.id).order_by(Transcript.id)
        if status:
            query = query.where(Transcript.status == status)
        return list(s.exec(query).all())
