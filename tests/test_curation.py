"""Curation paths end to end with scripted models: fixed, truncated, rejected, safety-rejected, reviewed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlmodel import select

from actors.curation.curator import CurationSettings, cited_exchanges
from actors.curation.review import decide_fixup, fixup_context, pending_fixups
from actors.supervisor import Supervisor
from coach_tui.cli import main
from state import pipeline as db
from state.models import Fixup, Rejection
from tests.scripted import ScriptedBackend, default_script
from tests.test_supervisor import make_run, router_with

pytestmark = pytest.mark.anyio

BROKEN = "As an AI language model, I cannot feel, but here is my reply."
CLEAN_REWRITE = (
    "**Work:** A heavy week, and it makes sense that it wore on you. "
    "Maybe a short walk after lunch could give the day a pause."
)


def script(*, break_at: set[int] = frozenset(), fixup: str = CLEAN_REWRITE, entail: str = "YES", judge=None):
    """Assistant replies break (character break) at the given exchange numbers; the rest is default."""

    def answer(messages, schema):
        last = messages[-1].content
        if messages[0].role == "system":
            n = len(messages) // 2
            if n in break_at:
                return BROKEN
        if schema is None and "## The reply to rewrite" in last:
            return fixup
        if schema is not None and "answer" in schema["properties"] and "rewritten coach reply" in last:
            return json.dumps({"answer": entail, "reasoning": "scripted entailment"})
        if judge is not None and schema is not None and "## The criterion:" in last:
            verdict = judge(last)
            if verdict:
                return json.dumps({"answer": verdict[0], "reasoning": verdict[1]})
        return default_script(messages, schema)

    return answer


async def run(store, pack, answer, *, n=1, length=4, curation=None):
    run_id = make_run(store, pack, n=n, length=length)
    router = router_with(embedded=ScriptedBackend("embedded", script=answer))
    summary = await Supervisor(store, router, pack, curation=curation or CurationSettings()).run(run_id)
    return run_id, summary


async def test_artifact_fixed_by_rewrite(store, pack):
    run_id, summary = await run(store, pack, script(break_at={2}))
    assert summary.counts == {"passed": 1}
    tid = f"{run_id}-t0000"
    (fix,) = db.fixups(store, transcript_id=tid)
    assert (fix.reason_kind, fix.decision, fix.decided_by, fix.exchange_number) == ("artifact", "accepted", "auto", 2)
    assert "character_break" in fix.reason and fix.original == BROKEN and fix.entailment_ok
    assert db.exchanges(store, tid)[1].assistant == CLEAN_REWRITE


CUT_OFF = (
    "**Work:** A heavy week, and it makes sense that it wore on you. "
    "Maybe a short walk after lunch could give the day a pause. If you want, we could look at how"
)


async def test_reply_cut_at_the_token_limit_keeps_its_complete_sentences(store, pack):
    asked_fixup = []

    def answer(messages, schema):
        if schema is None and "## The reply to rewrite" in messages[-1].content:
            asked_fixup.append(messages)
        if messages[0].role == "system" and len(messages) // 2 == 2:
            return CUT_OFF
        return script()(messages, schema)

    run_id, summary = await run(store, pack, answer)
    assert summary.counts == {"passed": 1}
    (fix,) = db.fixups(store, transcript_id=f"{run_id}-t0000")
    assert (fix.reason, fix.decision, fix.entailment_ok) == ("truncated", "accepted", True)
    assert "last complete sentence" in fix.reasoning
    assert db.exchanges(store, f"{run_id}-t0000")[1].assistant == CUT_OFF.rsplit(" If you", 1)[0]
    assert not asked_fixup  # no model rewrite was needed


async def test_trimmed_reply_that_breaks_continuity_falls_back_to_a_rewrite(store, pack):
    def answer(messages, schema):
        if messages[0].role == "system" and len(messages) // 2 == 2:
            return CUT_OFF
        return script(entail="NO")(messages, schema)

    run_id, summary = await run(store, pack, answer, length=14)
    trim, rewrite = db.fixups(store, transcript_id=f"{run_id}-t0000")
    assert (trim.proposed, trim.decision) == (CUT_OFF.rsplit(" If you", 1)[0], "rejected")
    assert (rewrite.proposed, rewrite.decision) == (CLEAN_REWRITE, "rejected")
    assert summary.counts == {"rejected": 1}  # cut at exchange 2 would leave 1 (< 10)


async def test_unfixable_artifact_truncates_when_enough_remains(store, pack):
    run_id, summary = await run(store, pack, script(break_at={12}, fixup="UNFIXABLE"), length=14)
    tid = f"{run_id}-t0000"
    assert summary.counts == {"passed": 1}
    assert len(db.exchanges(store, tid)) == 11
    (rej,) = db.rejections(store)
    assert (rej.action, rej.stage, rej.kept_exchanges) == ("truncated", "artifact", 11)
    assert [e["number"] for e in json.loads(rej.detail)] == [12, 13, 14]  # nothing lost
    assert db.fixups(store, transcript_id=tid)[0].decision == "unfixable"


async def test_broken_continuity_truncates_instead_of_applying(store, pack):
    run_id, _summary = await run(store, pack, script(break_at={12}, entail="NO"), length=14)
    tid = f"{run_id}-t0000"
    (fix,) = db.fixups(store, transcript_id=tid)
    assert fix.decision == "rejected" and fix.entailment_ok is False and fix.proposed == CLEAN_REWRITE
    assert len(db.exchanges(store, tid)) == 11


async def test_unfixable_early_artifact_rejects(store, pack):
    _run_id, summary = await run(store, pack, script(break_at={2}, fixup="UNFIXABLE"), length=4)
    assert summary.counts == {"rejected": 1}
    (rej,) = db.rejections(store)
    assert (rej.action, rej.stage, rej.reason_kind) == ("rejected", "artifact", "artifact")
    assert "only 1 exchanges would remain" in rej.detail


async def test_safety_gate_rejects_without_fixup(store, pack):
    judge = lambda prompt: ("NO", "Exchange 2 calls it dissociation.") if "CQ8 —" in prompt else None  # noqa: E731
    _run_id, summary = await run(store, pack, script(judge=judge))
    assert summary.counts == {"rejected": 1}
    assert db.fixups(store) == []
    (rej,) = db.rejections(store)
    assert (rej.stage, rej.reason_kind, rej.reason) == ("assessment", "safety_gate", "CQ8")


async def test_rubric_failure_fixed_then_reassessed(store, pack):
    def judge(prompt):
        fixed = "A heavy week, and it makes sense" in prompt
        if "CQ2 —" in prompt and not fixed:
            return "NO", "Exchange 2 states an interpretation as fact."
        if "CQ3 —" in prompt and not fixed:
            return "NO", "Turn 2 skips the feelings."
        if "CQ6 —" in prompt and not fixed:
            return "NO", "Exchange 2 tells the user what to do."
        return None

    run_id, summary = await run(store, pack, script(judge=judge))
    tid = f"{run_id}-t0000"
    assert summary.counts == {"passed": 1}
    stages = [a.stage for a in _assessments(store, tid)]
    assert stages == ["initial", "after_fixup"]
    fixes = db.fixups(store, transcript_id=tid)
    assert {(f.reason_kind, f.reason, f.exchange_number) for f in fixes} == {
        ("criterion", "CQ2", 2),
        ("criterion", "CQ3", 2),
        ("criterion", "CQ6", 2),
    }
    assert all(f.decision == "accepted" for f in fixes)


async def test_rubric_failure_that_persists_is_rejected(store, pack):
    def judge(prompt):
        if any(f"{cid} —" in prompt for cid in ("MT1", "MT2", "MT3")):
            return "NO", "Exchange 3 drops the sleep topic."
        return None

    _run_id, summary = await run(store, pack, script(judge=judge))
    assert summary.counts == {"rejected": 1}
    rej = db.rejections(store)[-1]
    assert rej.stage == "assessment" and "after fixups" in rej.detail and "MT1" in rej.reason


async def test_review_mode_holds_fixups_until_decided(store, pack, tmp_path):
    answer = script(break_at={2})
    run_id, summary = await run(store, pack, answer, curation=CurationSettings(review_mode="review"))
    tid = f"{run_id}-t0000"
    assert summary.counts == {"review": 1}
    (fix,) = pending_fixups(store)
    assert db.exchanges(store, tid)[1].assistant == BROKEN  # nothing applied yet
    ctx = fixup_context(store, fix.id)
    assert ctx.next_user_message and ctx.transcript_status == "review"

    assert decide_fixup(store, fix.id, accept=True) == "assessing"
    assert db.exchanges(store, tid)[1].assistant == CLEAN_REWRITE
    router = router_with(embedded=ScriptedBackend("embedded", script=answer))
    summary = await Supervisor(store, router, pack, curation=CurationSettings(review_mode="review")).run(run_id)
    assert summary.counts == {"passed": 1}


async def test_review_reject_cuts_or_rejects(store, pack):
    _run_id, _summary = await run(store, pack, script(break_at={2}), curation=CurationSettings(review_mode="review"))
    (fix,) = pending_fixups(store)
    assert decide_fixup(store, fix.id, accept=False) == "rejected"
    with store.session() as s:
        assert s.get(Fixup, fix.id).decision == "rejected"
        rej = s.exec(select(Rejection)).one()
    assert (rej.stage, rej.reason_kind) == ("review", "human")


async def test_review_and_report_cli(store, pack, tmp_path):
    await run(store, pack, script(break_at={2}), curation=CurationSettings(review_mode="review"))
    ws = str(store.url.removeprefix("sqlite:///").removesuffix("/coach.db"))
    runner = CliRunner()
    listed = runner.invoke(main, ["-w", ws, "review", "--list"])
    assert listed.exit_code == 0 and "1 waiting" in listed.output and "character_break" in listed.output
    fix_id = pending_fixups(store)[0].id
    shown = runner.invoke(main, ["-w", ws, "review", "--show", str(fix_id)])
    assert "original reply" in shown.output and BROKEN in shown.output
    accepted = runner.invoke(main, ["-w", ws, "review", "--accept", str(fix_id)])
    assert accepted.exit_code == 0 and "transcript is now assessing" in accepted.output
    again = runner.invoke(main, ["-w", ws, "review", "--accept", str(fix_id)])
    assert again.exit_code == 1 and "already decided" in again.output and "Traceback" not in again.output
    report = runner.invoke(main, ["-w", ws, "report", "curation"])
    assert report.exit_code == 0 and "accepted" in report.output


async def test_report_counts_each_path(store, pack, tmp_path):
    await run(store, pack, script(break_at={2}, fixup="UNFIXABLE"), length=4)  # rejected (artifact)
    ws = str(store.url.removeprefix("sqlite:///").removesuffix("/coach.db"))
    out = CliRunner().invoke(main, ["-w", ws, "report", "curation"]).output
    assert "rejected" in out and "artifact" in out and "unfixable" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Exchange 3 drops the sleep topic.", [3]),
        ("In turns 4-6 the coach labels; turn 9 too.", [4, 5, 6, 9]),
        ("Responses 2 and 3 end with questions", [2, 3]),
        ("Turn 40 is out of range", []),
        ("No turn cited.", []),
    ],
)
def test_cited_exchanges(text, expected):
    assert cited_exchanges(text, 10) == expected


def _assessments(store, tid):
    from state.models import Assessment

    with store.session() as s:
        return list(s.exec(select(Assessment).where(Assessment.transcript_id == tid).order_by(Assessment.id)).all())
