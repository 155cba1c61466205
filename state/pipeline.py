"""The pipeline's writes and reads, one transaction per step.

Each function commits the step's data *and* its event row together, so the
event log never claims a step the data does not hold, and a kill between
two steps loses at most the model call in flight. The actors call these and
publish the in-memory event only after the commit returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from .models import (
    Assessment,
    CriterionAnswer,
    Event,
    Exchange,
    Fixup,
    Persona,
    Rejection,
    Run,
    Transcript,
    utcnow,
)
from .store import Store

TERMINAL = ("passed", "rejected")
"""Statuses a run never touches again. `failed` is not terminal: a resume retries it;
`review` waits for a person's decisions and then goes on."""


# The generation steps' statements, built once: every exchange runs them, and building and
# caching a statement per call cost more than executing it (benchmarks/bench_supervisor.py).
_INSERT_EVENT = insert(Event)
_INSERT_EXCHANGE = insert(Exchange)
_TOUCH_TRANSCRIPT = update(Transcript).where(Transcript.id == bindparam("tid")).values(updated_at=bindparam("at"))
_SET_REPLY = (update(Exchange)
              .where(Exchange.transcript_id == bindparam("tid"), Exchange.number == bindparam("num"))
              .values(assistant=bindparam("text")))


def _event(s: Session | Connection, run_id: str | None, kind: str, **payload) -> None:
    # A Core insert: events are written on every step, and the ORM's unit of work costs more than the row.
    s.execute(_INSERT_EVENT, {"run_id": run_id, "kind": kind, "payload": payload, "created_at": utcnow()})


def _touch(t: Transcript, status: str | None = None) -> None:
    if status:
        t.status = status
    t.updated_at = utcnow()


def create_run(
    store: Store,
    run_id: str,
    *,
    kind: str,
    domain: str,
    seed: int,
    config: dict,
    personas: Iterable[tuple[str, int, dict]],
    transcripts: Iterable[tuple[str, str, int] | tuple[str, str, int, dict]],
) -> None:
    """The whole plan of a run in one transaction: run row, persona seeds, planned transcripts.

    A transcript is (id, persona id, target exchanges) and optionally its meta.
    """
    with store.session() as s:
        s.add(Run(id=run_id, kind=kind, status="running", domain=domain, seed=seed, config=config))
        s.flush()
        for pid, pseed, data in personas:
            s.add(Persona(id=pid, run_id=run_id, seed=pseed, purpose="eval" if kind == "eval" else "train", data=data))
        s.flush()
        count = 0
        for tid, pid, target, *meta in transcripts:
            s.add(Transcript(id=tid, run_id=run_id, persona_id=pid, status="planned", target_exchanges=target,
                             meta=meta[0] if meta else {}))
            count += 1
        _event(s, run_id, "RunCreated", transcripts=count, seed=seed)


def set_run_status(store: Store, run_id: str, status: str, **summary) -> None:
    with store.session() as s:
        run = s.get(Run, run_id)
        run.status = status
        run.updated_at = utcnow()
        if summary:
            run.config = {**run.config, "summary": summary}
        _event(s, run_id, "RunStatus", status=status, **summary)


def get_run(store: Store, run_id: str) -> Run | None:
    with store.session() as s:
        return s.get(Run, run_id)


def latest_run(store: Store, kind: str = "generate") -> Run | None:
    with store.session() as s:
        return s.exec(select(Run).where(Run.kind == kind).order_by(Run.created_at.desc())).first()


def run_transcripts(store: Store, run_id: str) -> list[Transcript]:
    with store.session() as s:
        return list(s.exec(select(Transcript).where(Transcript.run_id == run_id).order_by(Transcript.id)).all())


def transcript(store: Store, transcript_id: str) -> Transcript:
    with store.session() as s:
        return s.get(Transcript, transcript_id)


def persona(store: Store, persona_id: str) -> Persona:
    with store.session() as s:
        return s.get(Persona, persona_id)


def personas_of_run(store: Store, run_id: str) -> list[Persona]:
    with store.session() as s:
        return list(s.exec(select(Persona).where(Persona.run_id == run_id).order_by(Persona.id)).all())


def personas_by_purpose(store: Store, purpose: str) -> list[Persona]:
    with store.session() as s:
        return list(s.exec(select(Persona).where(Persona.purpose == purpose)).all())


def update_persona(store: Store, persona_id: str, data: dict) -> None:
    with store.session() as s:
        p = s.get(Persona, persona_id)
        p.data = data
        _event(s, p.run_id, "PersonaReady", persona_id=persona_id)


def save_persona(store: Store, run_id: str, transcript_id: str, persona_id: str, data: dict) -> None:
    with store.session() as s:
        p = s.get(Persona, persona_id)
        p.data = data
        t = s.get(Transcript, transcript_id)
        _touch(t, "generating")
        _event(s, run_id, "PersonaReady", transcript_id=transcript_id, persona_id=persona_id)


def exchanges(store: Store, transcript_id: str) -> list[Exchange]:
    with store.session() as s:
        return list(
            s.exec(select(Exchange).where(Exchange.transcript_id == transcript_id).order_by(Exchange.number)).all()
        )


def exchanges_of(store: Store, transcript_ids: Iterable[str]) -> dict[str, list[Exchange]]:
    """The exchanges of many transcripts in one query, each list in order."""
    ids = list(transcript_ids)
    out: dict[str, list[Exchange]] = {tid: [] for tid in ids}
    with store.session() as s:
        for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            query = select(Exchange).where(Exchange.transcript_id.in_(chunk)).order_by(Exchange.number)
            for row in s.exec(query):
                out[row.transcript_id].append(row)
    return out


def personas_by_id(store: Store, persona_ids: Iterable[str]) -> dict[str, Persona]:
    ids = list(persona_ids)
    out: dict[str, Persona] = {}
    with store.session() as s:
        for start in range(0, len(ids), 500):
            out.update((p.id, p) for p in s.exec(select(Persona).where(Persona.id.in_(ids[start : start + 500]))))
    return out


def _touch_by_id(s: Session | Connection, transcript_id: str) -> None:
    s.execute(_TOUCH_TRANSCRIPT, {"tid": transcript_id, "at": utcnow()})


def add_user_message(store: Store, run_id: str, transcript_id: str, number: int, text: str) -> None:
    """The user half of an exchange; the reply is owed until `set_assistant_reply`."""
    with store.transaction() as s:
        s.execute(_INSERT_EXCHANGE, {"transcript_id": transcript_id, "number": number, "user": text,
                                     "assistant": "", "created_at": utcnow()})
        _touch_by_id(s, transcript_id)
        _event(s, run_id, "UserMessage", transcript_id=transcript_id, number=number, chars=len(text))


def set_assistant_reply(store: Store, run_id: str, transcript_id: str, number: int, text: str) -> None:
    with store.transaction() as s:
        done = s.execute(_SET_REPLY, {"tid": transcript_id, "num": number, "text": text})
        if done.rowcount != 1:
            raise LookupError(f"no pending exchange {number} in {transcript_id}")
        _touch_by_id(s, transcript_id)
        _event(s, run_id, "ExchangeAdded", transcript_id=transcript_id, number=number, chars=len(text))


def set_status(store: Store, run_id: str | None, transcript_id: str, status: str, **meta) -> None:
    with store.session() as s:
        t = s.get(Transcript, transcript_id)
        _touch(t, status)
        if meta:
            t.meta = {**t.meta, **meta}
        _event(s, run_id, "TranscriptStatus", transcript_id=transcript_id, status=status, **meta)


def save_assessment(
    store: Store,
    run_id: str | None,
    transcript_id: str,
    *,
    stage: str,
    exchange_count: int,
    rubric_version: int,
    result: dict,
    answers: list[tuple[str, str, str, str]],
    status: str | None = None,
) -> int:
    """Store one assessment with every (criterion, answer, reasoning, judge) row; returns its id."""
    with store.session() as s:
        a = Assessment(
            transcript_id=transcript_id,
            stage=stage,
            exchange_count=exchange_count,
            rubric_version=rubric_version,
            score=result["score"],
            passed=result["passed"],
            safety_gate_failed=result["safety_gate_failed"],
            category_scores=result["category_scores"],
            failed_checks=result["failed_checks"],
        )
        s.add(a)
        s.flush()
        s.add_all(
            CriterionAnswer(assessment_id=a.id, criterion=c, answer=ans, reasoning=why, judge=judge)
            for c, ans, why, judge in answers
        )
        if status:
            _touch(s.get(Transcript, transcript_id), status)
        _event(
            s, run_id, "AssessmentDone", transcript_id=transcript_id, assessment_id=a.id,
            score=result["score"], passed=result["passed"], failed_checks=result["failed_checks"],
            safety_gate_failed=result["safety_gate_failed"],
        )
        return a.id


def record_rejection(
    store: Store,
    run_id: str | None,
    transcript_id: str,
    *,
    stage: str,
    action: str,
    reason_kind: str,
    reason: str,
    detail: str = "",
    kept_exchanges: int | None = None,
) -> None:
    with store.session() as s:
        s.add(Rejection(transcript_id=transcript_id, stage=stage, action=action, reason_kind=reason_kind,
                        reason=reason, detail=detail, kept_exchanges=kept_exchanges))
        _touch(s.get(Transcript, transcript_id), "rejected" if action == "rejected" else None)
        _event(s, run_id, "Rejection", transcript_id=transcript_id, stage=stage, action=action,
               reason_kind=reason_kind, reason=reason)


def latest_assessment(store: Store, transcript_id: str) -> tuple[Assessment, list[CriterionAnswer]] | None:
    with store.session() as s:
        a = s.exec(
            select(Assessment).where(Assessment.transcript_id == transcript_id).order_by(Assessment.id.desc())
        ).first()
        if a is None:
            return None
        rows = list(s.exec(select(CriterionAnswer).where(CriterionAnswer.assessment_id == a.id)).all())
        return a, rows


def status_counts(store: Store, run_id: str) -> dict[str, int]:
    with store.session() as s:
        rows = s.exec(
            select(Transcript.status, func.count()).where(Transcript.run_id == run_id).group_by(Transcript.status)
        ).all()
        return dict(rows)


def events_since(store: Store, after_id: int = 0, run_id: str | None = None, limit: int = 500) -> list[Event]:
    with store.session() as s:
        q = select(Event).where(Event.id > after_id)
        if run_id:
            q = q.where(Event.run_id == run_id)
        return list(s.exec(q.order_by(Event.id).limit(limit)).all())


# --- curation: fixups, truncation -------------------------------------------------------


def save_fixup(
    store: Store,
    run_id: str | None,
    transcript_id: str,
    *,
    exchange_number: int,
    reason_kind: str,
    reason: str,
    reasoning: str,
    original: str,
    proposed: str | None,
    entailment_ok: bool | None,
    entailment_reasoning: str,
    decision: str,
    decided_by: str = "",
) -> int:
    """Record a proposed rewrite (or UNFIXABLE) with its checks; the original is always kept."""
    with store.session() as s:
        f = Fixup(
            transcript_id=transcript_id, exchange_number=exchange_number, reason_kind=reason_kind, reason=reason,
            reasoning=reasoning, original=original, proposed=proposed, entailment_ok=entailment_ok,
            entailment_reasoning=entailment_reasoning, decision=decision, decided_by=decided_by,
            decided_at=utcnow() if decision != "pending" else None,
        )
        s.add(f)
        s.flush()
        _event(s, run_id, "FixupProposed", transcript_id=transcript_id, fixup_id=f.id,
               exchange=exchange_number, reason=reason, decision=decision)
        return f.id


def decide_fixup(store: Store, fixup_id: int, accept: bool, by: str, *, unfixable: bool = False) -> Fixup:
    """Record a decision; an accepted rewrite replaces the exchange's reply in the same transaction."""
    with store.session() as s:
        f = s.get(Fixup, fixup_id)
        if f is None:
            raise LookupError(fixup_id)
        if accept and f.proposed is None:
            raise ValueError(f"fixup {fixup_id} has no rewrite to accept")
        f.decision = "accepted" if accept else ("unfixable" if unfixable else "rejected")
        f.decided_by = by
        f.decided_at = utcnow()
        if accept:
            s.execute(
                update(Exchange)
                .where(Exchange.transcript_id == f.transcript_id, Exchange.number == f.exchange_number)
                .values(assistant=f.proposed)
            )
        t = s.get(Transcript, f.transcript_id)
        _event(s, t.run_id, "DecisionMade", transcript_id=f.transcript_id, fixup_id=f.id, decision=f.decision, by=by)
        return f


def fixups(store: Store, *, transcript_id: str | None = None, decision: str | None = None,
           reason: str | None = None) -> list[Fixup]:
    with store.session() as s:
        q = select(Fixup)
        if transcript_id:
            q = q.where(Fixup.transcript_id == transcript_id)
        if decision:
            q = q.where(Fixup.decision == decision)
        if reason:
            q = q.where(Fixup.reason == reason)
        return list(s.exec(q.order_by(Fixup.id)).all())


def truncate(store: Store, run_id: str | None, transcript_id: str, *, keep: int, stage: str,
             reason_kind: str, reason: str) -> None:
    """Cut a transcript to its first `keep` exchanges; the cut exchanges are kept in the rejection record."""
    with store.session() as s:
        cut = list(s.exec(select(Exchange).where(Exchange.transcript_id == transcript_id, Exchange.number > keep)
                          .order_by(Exchange.number)).all())
        detail = json.dumps([{"number": e.number, "user": e.user, "assistant": e.assistant} for e in cut],
                            ensure_ascii=False)
        for e in cut:
            s.delete(e)
        for f in s.exec(select(Fixup).where(Fixup.transcript_id == transcript_id, Fixup.exchange_number > keep,
                                            Fixup.decision == "pending")).all():
            f.decision, f.decided_by, f.decided_at = "superseded", "truncation", utcnow()
        s.add(Rejection(transcript_id=transcript_id, stage=stage, action="truncated", reason_kind=reason_kind,
                        reason=reason, detail=detail, kept_exchanges=keep))
        _touch_by_id(s, transcript_id)
        _event(s, run_id, "Rejection", transcript_id=transcript_id, stage=stage, action="truncated",
               reason_kind=reason_kind, reason=reason, kept=keep)


def rejections(store: Store, run_id: str | None = None) -> list[Rejection]:
    with store.session() as s:
        q = select(Rejection)
        if run_id:
            q = q.join(Transcript, Transcript.id == Rejection.transcript_id).where(Transcript.run_id == run_id)
        return list(s.exec(q.order_by(Rejection.id)).all())
