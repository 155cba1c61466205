"""The pipeline's writes and reads, one transaction per step.

Each function commits the step's data *and* its event row together, so the
event log never claims a step the data does not hold, and a kill between
two steps loses at most the model call in flight. The actors call these and
publish the in-memory event only after the commit returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from .errors import CoachError
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
    WindowAnswer,
    utcnow,
)
from .status import TERMINAL as TERMINAL  # re-exported: readers ask `status in db.TERMINAL`
from .status import TranscriptStatus, check_transition
from .steps import (
    ASSESSMENT_KEY,
    EXCHANGE_KEY,
    FIXUP_KEY,
    REJECTION_KEY,
    WINDOW_ANSWER_KEY,
    insert_once,
)
from .store import Store

# The generation steps' statements, built once: every exchange runs them, and building and
# caching a statement per call cost more than executing it (benchmarks/bench_supervisor.py).
_INSERT_EVENT = insert(Event)
_TOUCH_TRANSCRIPT = update(Transcript).where(Transcript.id == bindparam("tid")).values(updated_at=bindparam("at"))
_SET_REPLY = (
    update(Exchange)
    .where(Exchange.transcript_id == bindparam("tid"), Exchange.number == bindparam("num"), Exchange.assistant == "")
    .values(assistant=bindparam("text"))
)
_EXCHANGE_TEXT = select(Exchange.user, Exchange.assistant).where(
    Exchange.transcript_id == bindparam("tid"), Exchange.number == bindparam("num")
)


def _event(s: Session | Connection, run_id: str | None, kind: str, **payload) -> None:
    # A Core insert: events are written on every step, and the ORM's unit of work costs more than the row.
    s.execute(_INSERT_EVENT, {"run_id": run_id, "kind": kind, "payload": payload, "created_at": utcnow()})


def _touch(s: Session, run_id: str | None, t: Transcript, status: str | None = None, **meta) -> bool:
    """Move a transcript (checked against `state.status`) and merge `meta` into it.

    A change is recorded as a `TranscriptStatus` event in the same
    transaction; a move to where the transcript already is, with nothing new
    to say, writes nothing. Returns whether anything changed.
    """
    new = check_transition(t.id, t.status, status).value if status else t.status
    merged = {**t.meta, **meta}
    t.updated_at = utcnow()
    if new == t.status and merged == t.meta:
        return False
    t.status, t.meta = new, merged
    _event(s, run_id, "TranscriptStatus", transcript_id=t.id, status=new, **meta)
    return True


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
            s.add(
                Transcript(
                    id=tid,
                    run_id=run_id,
                    persona_id=pid,
                    status=TranscriptStatus.PLANNED.value,
                    target_exchanges=target,
                    meta=meta[0] if meta else {},
                )
            )
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


def _enrich_once(p: Persona, data: dict) -> bool:
    """Keep the first enrichment committed: transcripts sharing a persona must all meet the same person."""
    if "profile" in p.data:
        return False
    p.data = data
    return True


def update_persona(store: Store, persona_id: str, data: dict) -> dict:
    """Enrich a persona once; returns the persona's data as stored."""
    with store.session() as s:
        p = s.get(Persona, persona_id)
        if _enrich_once(p, data):
            _event(s, p.run_id, "PersonaReady", persona_id=persona_id)
        return p.data


def save_persona(store: Store, run_id: str, transcript_id: str, persona_id: str, data: dict) -> dict:
    """The persona step: enrich the persona once and start the transcript's conversation.

    Returns the persona's data as stored, which is what the conversation must
    use: another transcript sharing the persona may have enriched it first. A
    replay after the conversation started writes nothing.
    """
    with store.session() as s:
        p = s.get(Persona, persona_id)
        _enrich_once(p, data)
        t = s.get(Transcript, transcript_id)
        if t.status in (TranscriptStatus.PLANNED, TranscriptStatus.FAILED):
            _event(s, run_id, "PersonaReady", transcript_id=transcript_id, persona_id=persona_id)
            _touch(s, run_id, t, TranscriptStatus.GENERATING)
        return p.data


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


def add_user_message(
    store: Store, run_id: str, transcript_id: str, number: int, text: str, *, usage: dict[str, int] | None = None
) -> str:
    """The user half of an exchange; the reply is owed until `set_assistant_reply`.

    Returns the message as stored: a replayed step keeps the one written first. `usage` (the call's
    token counts) goes into the step's event row, so a resumed run's counters start where they were.
    """
    with store.transaction() as s:
        new = insert_once(
            s,
            Exchange,
            {"transcript_id": transcript_id, "number": number, "user": text, "assistant": "", "created_at": utcnow()},
            EXCHANGE_KEY,
            want_id=False,
        )
        if new is None:
            return s.execute(_EXCHANGE_TEXT, {"tid": transcript_id, "num": number}).one().user
        _touch_by_id(s, transcript_id)
        _event(s, run_id, "UserMessage", transcript_id=transcript_id, number=number, chars=len(text), **(usage or {}))
        return text


def set_assistant_reply(
    store: Store, run_id: str, transcript_id: str, number: int, text: str, *, usage: dict[str, int] | None = None
) -> str:
    """The reply that completes exchange `number`; returns the reply as stored (a replay keeps the first).

    `usage` (the call's token counts) goes into the step's event row, as for `add_user_message`.
    """
    with store.transaction() as s:
        done = s.execute(_SET_REPLY, {"tid": transcript_id, "num": number, "text": text})
        if done.rowcount != 1:
            stored = s.execute(_EXCHANGE_TEXT, {"tid": transcript_id, "num": number}).first()
            if stored is None:
                raise LookupError(f"no pending exchange {number} in {transcript_id}")
            return stored.assistant
        _touch_by_id(s, transcript_id)
        _event(s, run_id, "ExchangeAdded", transcript_id=transcript_id, number=number, chars=len(text), **(usage or {}))
        return text


def set_status(store: Store, run_id: str | None, transcript_id: str, status: str, **meta) -> None:
    """Move a transcript, checked against `state.status`; a move to where it already is writes nothing."""
    with store.session() as s:
        t = s.get(Transcript, transcript_id)
        if t is None:
            raise LookupError(f"no transcript {transcript_id}")
        _touch(s, run_id, t, status, **meta)


# --- assessment ------------------------------------------------------------------------------


def window_answers(store: Store, transcript_id: str, stage: str) -> list[WindowAnswer]:
    """The verdicts already stored for one judging, so a resumed assessor asks only for the rest."""
    with store.session() as s:
        return list(
            s.exec(
                select(WindowAnswer)
                .where(WindowAnswer.transcript_id == transcript_id, WindowAnswer.stage == stage)
                .order_by(WindowAnswer.id)
            ).all()
        )


def save_window_answer(
    store: Store,
    transcript_id: str,
    stage: str,
    *,
    judge: str,
    first_exchange: int,
    last_exchange: int,
    criterion: str,
    answer: str,
    reasoning: str,
    answered_by: str = "",
) -> bool:
    """One judge's verdict on one window, committed as it arrives; False when that call was stored already."""
    with store.transaction() as s:
        return (
            insert_once(
                s,
                WindowAnswer,
                {
                    "transcript_id": transcript_id,
                    "stage": stage,
                    "judge": judge,
                    "first_exchange": first_exchange,
                    "last_exchange": last_exchange,
                    "criterion": criterion,
                    "answer": answer,
                    "reasoning": reasoning,
                    "answered_by": answered_by,
                    "created_at": utcnow(),
                },
                WINDOW_ANSWER_KEY,
            )
            is not None
        )


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
    meta: dict | None = None,
    rejection: dict | None = None,
    usage: dict[str, int] | None = None,
) -> int:
    """Store one assessment with every (criterion, answer, reasoning, judge) row; returns its id.

    Its consequences commit with it: the transcript's next `status`, any `meta`,
    and the `rejection` it implies (`record_rejection`'s keywords), so a kill
    never leaves a judged transcript without them. Keyed by (transcript,
    stage): a replay returns the stored assessment's id and writes nothing.
    """
    with store.session() as s:
        assessment_id = insert_once(
            s,
            Assessment,
            {
                "transcript_id": transcript_id,
                "stage": stage,
                "exchange_count": exchange_count,
                "rubric_version": rubric_version,
                "score": result["score"],
                "passed": result["passed"],
                "safety_gate_failed": result["safety_gate_failed"],
                "category_scores": result["category_scores"],
                "failed_checks": result["failed_checks"],
                "created_at": utcnow(),
            },
            ASSESSMENT_KEY,
        )
        if assessment_id is None:
            stored = s.exec(
                select(Assessment.id).where(Assessment.transcript_id == transcript_id, Assessment.stage == stage)
            ).one()
            if status and s.get(Transcript, transcript_id).status == TranscriptStatus.ASSESSING:
                # Its consequences would have moved the transcript on: it was sent back to be judged
                # at a stage it has been judged at, which no path of the pipeline does.
                raise CoachError(
                    f"transcript {transcript_id} was judged at stage {stage!r} already "
                    f"(assessment {stored}) but waits to be judged again at that stage"
                )
            return stored
        s.add_all(
            CriterionAnswer(assessment_id=assessment_id, criterion=c, answer=ans, reasoning=why, judge=judge)
            for c, ans, why, judge in answers
        )
        _event(
            s,
            run_id,
            "AssessmentDone",
            transcript_id=transcript_id,
            assessment_id=assessment_id,
            stage=stage,
            score=result["score"],
            passed=result["passed"],
            failed_checks=result["failed_checks"],
            safety_gate_failed=result["safety_gate_failed"],
            **(usage or {}),
        )
        t = s.get(Transcript, transcript_id)
        _touch(s, run_id, t, status, **(meta or {}))
        if rejection:
            _reject(s, run_id, t, **rejection)
        return assessment_id


# --- rejections and cuts ----------------------------------------------------------------------


def _reject(
    s: Session,
    run_id: str | None,
    t: Transcript,
    *,
    stage: str,
    action: str,
    reason_kind: str,
    reason: str,
    kept_exchanges: int,
    detail: str = "",
) -> bool:
    """One rejection or truncation record, once per (transcript, stage, exchanges kept); True if new."""
    new = insert_once(
        s,
        Rejection,
        {
            "transcript_id": t.id,
            "stage": stage,
            "action": action,
            "reason_kind": reason_kind,
            "reason": reason,
            "detail": detail,
            "kept_exchanges": kept_exchanges,
            "created_at": utcnow(),
        },
        REJECTION_KEY,
    )
    if new is None:
        return False
    _event(
        s,
        run_id,
        "Rejection",
        transcript_id=t.id,
        stage=stage,
        action=action,
        reason_kind=reason_kind,
        reason=reason,
        kept=kept_exchanges,
    )
    _touch(s, run_id, t, TranscriptStatus.REJECTED if action == "rejected" else None)
    return True


def record_rejection(
    store: Store,
    run_id: str | None,
    transcript_id: str,
    *,
    stage: str,
    action: str,
    reason_kind: str,
    reason: str,
    kept_exchanges: int,
    detail: str = "",
) -> bool:
    """Reject a transcript (or record a cut) with its reason; False when this step was recorded already."""
    with store.session() as s:
        return _reject(
            s,
            run_id,
            s.get(Transcript, transcript_id),
            stage=stage,
            action=action,
            reason_kind=reason_kind,
            reason=reason,
            kept_exchanges=kept_exchanges,
            detail=detail,
        )


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


# --- curation: fixups, truncation -------------------------------------------------------


DECISIONS = ("pending", "accepted", "rejected", "unfixable", "superseded")
"""A fixup's decision; only `pending` is ever replaced, and `superseded` means a cut removed its exchange."""


@dataclass(frozen=True)
class Cut:
    """What failing to fix exchange `keep + 1` means: cut the transcript to `keep` exchanges, or reject it."""

    keep: int
    reject: bool
    stage: str
    reason_kind: str
    reason: str
    detail: str = ""


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
    step: str = "",
) -> int:
    """Record a proposed rewrite (or UNFIXABLE) with its checks; the original is always kept.

    A decision made at once (not `pending`) commits with the proposal, and an
    accepted rewrite replaces the reply in the same transaction: a kill can
    neither leave a decided fixup unapplied nor apply one twice. Keyed by
    (transcript, exchange, `step`; by default `<reason_kind>:<reason>`): a
    replay returns the stored fixup's id and changes nothing.
    """
    if decision not in DECISIONS:
        raise ValueError(f"unknown fixup decision {decision!r}")
    if decision == "accepted" and proposed is None:
        raise ValueError(f"an UNFIXABLE answer for exchange {exchange_number} cannot be accepted")
    step = step or f"{reason_kind}:{reason}"
    with store.session() as s:
        fixup_id = insert_once(
            s,
            Fixup,
            {
                "transcript_id": transcript_id,
                "exchange_number": exchange_number,
                "step": step,
                "reason_kind": reason_kind,
                "reason": reason,
                "reasoning": reasoning,
                "original": original,
                "proposed": proposed,
                "entailment_ok": entailment_ok,
                "entailment_reasoning": entailment_reasoning,
                "decision": decision,
                "decided_by": decided_by,
                "created_at": utcnow(),
                "decided_at": utcnow() if decision != "pending" else None,
            },
            FIXUP_KEY,
        )
        if fixup_id is None:
            return s.exec(
                select(Fixup.id).where(
                    Fixup.transcript_id == transcript_id, Fixup.exchange_number == exchange_number, Fixup.step == step
                )
            ).one()
        _event(
            s,
            run_id,
            "FixupProposed",
            transcript_id=transcript_id,
            fixup_id=fixup_id,
            exchange=exchange_number,
            step=step,
            reason=reason,
            decision=decision,
        )
        if decision != "pending":
            if decision == "accepted":
                _apply_rewrite(s, transcript_id, exchange_number, proposed)
            _event(
                s,
                run_id,
                "DecisionMade",
                transcript_id=transcript_id,
                fixup_id=fixup_id,
                decision=decision,
                by=decided_by,
            )
        return fixup_id


def fixup(store: Store, fixup_id: int) -> Fixup | None:
    with store.session() as s:
        return s.get(Fixup, fixup_id)


def fixup_at(store: Store, transcript_id: str, exchange_number: int, step: str) -> Fixup | None:
    """The fixup already stored for this step, if any: a replayed curator reuses it instead of asking again."""
    with store.session() as s:
        return s.exec(
            select(Fixup).where(
                Fixup.transcript_id == transcript_id, Fixup.exchange_number == exchange_number, Fixup.step == step
            )
        ).first()


def _apply_rewrite(s: Session, transcript_id: str, number: int, text: str | None) -> None:
    s.execute(
        update(Exchange)
        .where(Exchange.transcript_id == transcript_id, Exchange.number == number)
        .values(assistant=text)
    )
    _touch_by_id(s, transcript_id)


def decide_fixup(
    store: Store, fixup_id: int, accept: bool, by: str, *, unfixable: bool = False, cut: Cut | None = None
) -> str:
    """Decide a pending fixup and do all it implies in one transaction; returns the transcript's status.

    Accepting puts the rewrite into the conversation (the original stays in the
    fixup row); rejecting applies `cut`, if given. When the transcript is left
    with no undecided fixups (and was not rejected), it goes back to
    `assessing`. A fixup is decided once: deciding it again is refused, so a
    repeated command cannot rewrite a reply twice.
    """
    decision = "accepted" if accept else ("unfixable" if unfixable else "rejected")
    with store.session() as s:
        f = s.get(Fixup, fixup_id)
        if f is None:
            raise LookupError(fixup_id)
        if accept and f.proposed is None:
            raise ValueError(f"fixup {fixup_id} has no rewrite to accept")
        done = s.execute(
            update(Fixup)
            .where(Fixup.id == fixup_id, Fixup.decision == "pending")
            .values(decision=decision, decided_by=by, decided_at=utcnow())
        )
        if done.rowcount != 1:
            raise CoachError(f"fixup {fixup_id} was already decided ({f.decision})")
        if accept:
            _apply_rewrite(s, f.transcript_id, f.exchange_number, f.proposed)
        t = s.get(Transcript, f.transcript_id)
        _event(s, t.run_id, "DecisionMade", transcript_id=f.transcript_id, fixup_id=fixup_id, decision=decision, by=by)
        if cut is not None and not accept:
            _cut(s, t.run_id, t, cut)
        pending = s.exec(
            select(func.count()).select_from(Fixup).where(Fixup.transcript_id == t.id, Fixup.decision == "pending")
        ).one()
        if t.status != TranscriptStatus.REJECTED and not pending:
            _touch(s, t.run_id, t, TranscriptStatus.ASSESSING)
        return t.status


def fixups(
    store: Store, *, transcript_id: str | None = None, decision: str | None = None, reason: str | None = None
) -> list[Fixup]:
    with store.session() as s:
        q = select(Fixup)
        if transcript_id:
            q = q.where(Fixup.transcript_id == transcript_id)
        if decision:
            q = q.where(Fixup.decision == decision)
        if reason:
            q = q.where(Fixup.reason == reason)
        return list(s.exec(q.order_by(Fixup.id)).all())


def _truncate(
    s: Session, run_id: str | None, t: Transcript, *, keep: int, stage: str, reason_kind: str, reason: str
) -> bool:
    cut = list(
        s.exec(
            select(Exchange).where(Exchange.transcript_id == t.id, Exchange.number > keep).order_by(Exchange.number)
        ).all()
    )
    detail = json.dumps(
        [{"number": e.number, "user": e.user, "assistant": e.assistant} for e in cut], ensure_ascii=False
    )
    if not _reject(
        s,
        run_id,
        t,
        stage=stage,
        action="truncated",
        reason_kind=reason_kind,
        reason=reason,
        kept_exchanges=keep,
        detail=detail,
    ):
        return False  # this cut was made already: the exchanges it moved are in its record
    for e in cut:
        s.delete(e)
    for f in s.exec(
        select(Fixup).where(Fixup.transcript_id == t.id, Fixup.exchange_number > keep, Fixup.decision == "pending")
    ).all():
        f.decision, f.decided_by, f.decided_at = "superseded", "truncation", utcnow()
    return True


def truncate(
    store: Store, run_id: str | None, transcript_id: str, *, keep: int, stage: str, reason_kind: str, reason: str
) -> bool:
    """Cut a transcript to its first `keep` exchanges; the cut exchanges are kept in the rejection record.

    False when this cut was made already (a replay): nothing is cut twice.
    """
    with store.session() as s:
        return _truncate(
            s, run_id, s.get(Transcript, transcript_id), keep=keep, stage=stage, reason_kind=reason_kind, reason=reason
        )


def _cut(s: Session, run_id: str | None, t: Transcript, cut: Cut) -> str:
    if cut.reject:
        _reject(
            s,
            run_id,
            t,
            stage=cut.stage,
            action="rejected",
            reason_kind=cut.reason_kind,
            reason=cut.reason,
            kept_exchanges=cut.keep,
            detail=cut.detail,
        )
        return "rejected"
    _truncate(s, run_id, t, keep=cut.keep, stage=cut.stage, reason_kind=cut.reason_kind, reason=cut.reason)
    return "truncated"


def apply_cut(store: Store, run_id: str | None, transcript_id: str, cut: Cut) -> str:
    """Cut or reject as `cut` says (once); returns the action, `truncated` or `rejected`."""
    with store.session() as s:
        return _cut(s, run_id, s.get(Transcript, transcript_id), cut)


def rejections(store: Store, run_id: str | None = None) -> list[Rejection]:
    with store.session() as s:
        q = select(Rejection)
        if run_id:
            q = q.join(Transcript, Transcript.id == Rejection.transcript_id).where(Transcript.run_id == run_id)
        return list(s.exec(q.order_by(Rejection.id)).all())
