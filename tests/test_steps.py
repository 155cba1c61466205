"""Every step's write, made twice, leaves one row and one event: the replay rule of `state.steps`.

Each test calls a pipeline write the way a resumed run replays it (same
key, sometimes different content, as a re-asked model would produce) and
checks the store holds the first write only, with no second event.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.pool import NullPool
from sqlmodel import select

from actors.assessment.assessor import CallKey, Verdict, assess, assess_resumably
from actors.curation.curator import CurationSettings, Curator
from actors.events import EventBus
from actors.generation.conversation import Turn
from state import migrations
from state import pipeline as db
from state.errors import CoachError
from state.migrations.upgrade import upgrade_to_heads, write_locked
from state.models import Assessment, CriterionAnswer, Event, Exchange, Fixup, Rejection
from state.status import TRANSITIONS, InvalidTransition, TranscriptStatus, check_transition, parse_status
from state.steps import FIXUP_KEY, _statement, insert_once
from state.store import Store
from tests.scripted import ScriptedBackend, default_script
from tests.test_supervisor import make_run, router_with

pytestmark = pytest.mark.anyio

RESULT = {
    "score": 0.5,
    "passed": False,
    "safety_gate_failed": False,
    "category_scores": {"comprehension": 0.5},
    "failed_checks": ["MT1"],
}


def events(store, kind: str) -> list[dict]:
    with store.session() as s:
        return [e.payload for e in s.exec(select(Event).where(Event.kind == kind)).all()]


def rows(store, model) -> list:
    with store.session() as s:
        return list(s.exec(select(model)).all())


def conversation(store, pack, exchanges: int = 4, status: str = "curating") -> tuple[str, str]:
    """A run with one transcript of `exchanges` complete exchanges, moved the way the pipeline moves it."""
    run_id = make_run(store, pack, n=1, length=exchanges)
    tid = f"{run_id}-t0000"
    db.set_status(store, run_id, tid, "generating")
    for n in range(1, exchanges + 1):
        db.add_user_message(store, run_id, tid, n, f"user {n}")
        db.set_assistant_reply(store, run_id, tid, n, f"reply {n}")
    for step in {
        "curating": ["curating"],
        "assessing": ["curating", "assessing"],
        "fixing": ["curating", "assessing", "fixing"],
    }[status]:
        db.set_status(store, run_id, tid, step)
    return run_id, tid


# --- generation ---------------------------------------------------------------------------------


def test_exchange_halves_written_twice_keep_the_first(store, pack):
    run_id = make_run(store, pack, n=1, length=2)
    tid = f"{run_id}-t0000"
    assert db.add_user_message(store, run_id, tid, 1, "first") == "first"
    assert db.add_user_message(store, run_id, tid, 1, "replayed") == "first"
    assert db.set_assistant_reply(store, run_id, tid, 1, "answer") == "answer"
    assert db.set_assistant_reply(store, run_id, tid, 1, "another answer") == "answer"
    (row,) = rows(store, Exchange)
    assert (row.user, row.assistant) == ("first", "answer")
    assert len(events(store, "UserMessage")) == 1 and len(events(store, "ExchangeAdded")) == 1
    with pytest.raises(LookupError):
        db.set_assistant_reply(store, run_id, tid, 2, "no such exchange")


def test_persona_is_enriched_once_and_its_step_recorded_once(store, pack):
    run_id = make_run(store, pack, n=1)
    tid = f"{run_id}-t0000"
    pid = db.transcript(store, tid).persona_id
    seed = db.persona(store, pid).data
    first = db.save_persona(store, run_id, tid, pid, {**seed, "profile": {"name": "Robin"}})
    again = db.save_persona(store, run_id, tid, pid, {**seed, "profile": {"name": "Someone else"}})
    assert first["profile"]["name"] == again["profile"]["name"] == "Robin"
    assert db.persona(store, pid).data["profile"]["name"] == "Robin"
    assert len(events(store, "PersonaReady")) == 1
    assert db.transcript(store, tid).status == "generating"


# --- assessment ---------------------------------------------------------------------------------


def test_window_answer_is_stored_once(store, pack):
    _, tid = conversation(store, pack, status="assessing")
    answer = dict(
        judge="embedded",
        first_exchange=1,
        last_exchange=4,
        criterion="MT1",
        answer="YES",
        reasoning="fine",
        answered_by="embedded/script",
    )
    assert db.save_window_answer(store, tid, "initial", **answer) is True
    assert db.save_window_answer(store, tid, "initial", **{**answer, "answer": "NO"}) is False
    assert db.save_window_answer(store, tid, "after_fixup", **answer) is True  # another judging, another step
    stored = db.window_answers(store, tid, "initial")
    assert [(w.criterion, w.answer) for w in stored] == [("MT1", "YES")]


def test_assessment_and_its_consequences_are_written_once(store, pack):
    run_id, tid = conversation(store, pack, status="assessing")
    answers = [("MT1", "NO", "Exchange 2 drops sleep.", "embedded/script"), ("CQ1", "YES", "ok", "embedded/script")]
    rejection = dict(
        stage="assessment",
        action="rejected",
        reason_kind="criterion",
        reason="MT1",
        kept_exchanges=4,
        detail="score 0.500",
    )
    first = db.save_assessment(
        store,
        run_id,
        tid,
        stage="initial",
        exchange_count=4,
        rubric_version=1,
        result=RESULT,
        answers=answers,
        status="rejected",
        rejection=rejection,
    )
    again = db.save_assessment(
        store,
        run_id,
        tid,
        stage="initial",
        exchange_count=4,
        rubric_version=1,
        result={**RESULT, "score": 0.9},
        answers=answers,
        status="rejected",
        rejection=rejection,
    )
    assert first == again
    assert [a.score for a in rows(store, Assessment)] == [0.5]
    assert len(rows(store, CriterionAnswer)) == 2
    assert len(rows(store, Rejection)) == 1
    assert len(events(store, "AssessmentDone")) == 1 and len(events(store, "Rejection")) == 1
    assert db.transcript(store, tid).status == "rejected"


def test_assessment_moving_to_fixing_carries_its_meta_in_the_same_write(store, pack):
    run_id, tid = conversation(store, pack, status="assessing")
    db.save_assessment(
        store,
        run_id,
        tid,
        stage="initial",
        exchange_count=4,
        rubric_version=1,
        result=RESULT,
        answers=[],
        status="fixing",
        meta={"rubric_fixups": True},
    )
    t = db.transcript(store, tid)
    assert (t.status, t.meta.get("rubric_fixups")) == ("fixing", True)


def test_judging_a_transcript_again_at_the_same_stage_is_refused_not_lost(store, pack):
    """A replay finds its judging stored and moves nothing; a transcript sent back to be judged again
    at the same stage would lose that judging silently, so it is refused."""
    run_id, tid = conversation(store, pack, status="assessing")
    judging = dict(stage="initial", exchange_count=4, rubric_version=1, result=RESULT, answers=[])
    db.save_assessment(store, run_id, tid, **judging, status="fixing", meta={"rubric_fixups": True})
    db.set_status(store, run_id, tid, "assessing")
    with pytest.raises(CoachError, match=f"transcript {tid} was judged at stage 'initial' already"):
        db.save_assessment(store, run_id, tid, **judging, status="passed")
    assert db.transcript(store, tid).status == "assessing" and len(rows(store, Assessment)) == 1


async def test_assessor_asks_only_for_the_verdicts_it_does_not_have(store, pack):
    """A judging interrupted after 7 calls is resumed with those 7 verdicts: only the rest is asked."""
    _, tid = conversation(store, pack, exchanges=2, status="assessing")
    turns = [Turn(e.user, e.assistant) for e in db.exchanges(store, tid)]
    # The backend goes down after 7 calls: the rest are ERROR, which is never stored.
    broken = ScriptedBackend("embedded", fail_after=7)
    first = await assess_resumably(store, router_with(embedded=broken), pack, tid, turns, stage="initial")
    assert first.failed_calls == first.calls - 7 > 0 and not first.result.passed
    stored = db.window_answers(store, tid, "initial")
    assert len(stored) == 7 and {w.answer for w in stored} == {"YES"}

    healthy = ScriptedBackend("embedded")
    outcome = await assess_resumably(store, router_with(embedded=healthy), pack, tid, turns, stage="initial")
    assert outcome.reused == 7
    assert healthy.calls == outcome.calls == first.failed_calls
    assert outcome.result.passed
    assert len(db.window_answers(store, tid, "initial")) == 7 + healthy.calls  # each verdict stored once

    again = ScriptedBackend("embedded")
    await assess_resumably(store, router_with(embedded=again), pack, tid, turns, stage="initial")
    assert again.calls == 0


async def test_errors_are_asked_again_and_known_verdicts_keep_their_judge(pack):
    turns = [Turn("user 1", "reply 1"), Turn("user 2", "reply 2")]

    def prose(messages, schema):
        return "I think it is fine." if schema is not None else default_script(messages, schema)

    recorded: dict[CallKey, Verdict] = {}
    outcome = await assess(
        router_with(embedded=ScriptedBackend("embedded", script=prose)), pack, turns, record=recorded.__setitem__
    )
    assert outcome.calls and not recorded  # every answer was ERROR: nothing to keep
    assert set(outcome.answers.values()) == {"ERROR"}

    known = {CallKey("embedded", 1, 2, "MT1"): Verdict("NO", "Exchange 2 drops sleep.", "other/judge")}
    backend = ScriptedBackend("embedded")
    outcome = await assess(router_with(embedded=backend), pack, turns, known=known, record=recorded.__setitem__)
    assert outcome.reused == 1 and outcome.answers["MT1"] == "NO"
    assert not any("MT1 —" in p for p in backend.prompts)
    assert CallKey("embedded", 1, 2, "MT1") not in recorded and len(recorded) == backend.calls


# --- curation -------------------------------------------------------------------------------------


def auto_fixup(store, run_id, tid, *, proposed="rewritten reply 2", original="reply 2", **extra) -> int:
    return db.save_fixup(
        store,
        run_id,
        tid,
        exchange_number=2,
        reason_kind="criterion",
        reason="MT1",
        reasoning="Exchange 2 drops sleep.",
        original=original,
        proposed=proposed,
        entailment_ok=True,
        entailment_reasoning="follows",
        decision="accepted",
        decided_by="auto",
        **extra,
    )


def test_accepted_fixup_is_recorded_and_applied_once(store, pack):
    run_id, tid = conversation(store, pack, status="fixing")
    first = auto_fixup(store, run_id, tid)
    # The replay sees the rewritten reply as its "original" and proposes another rewrite.
    again = auto_fixup(store, run_id, tid, proposed="rewritten twice", original="rewritten reply 2")
    assert first == again
    (f,) = rows(store, Fixup)
    assert (f.step, f.original, f.proposed, f.decision) == ("criterion:MT1", "reply 2", "rewritten reply 2", "accepted")
    assert db.exchanges(store, tid)[1].assistant == "rewritten reply 2"
    assert len(events(store, "FixupProposed")) == 1 and len(events(store, "DecisionMade")) == 1


def test_fixup_steps_of_one_exchange_are_told_apart(store, pack):
    run_id, tid = conversation(store, pack, status="fixing")
    auto_fixup(store, run_id, tid)
    db.save_fixup(
        store,
        run_id,
        tid,
        exchange_number=2,
        reason_kind="criterion",
        reason="CQ3",
        reasoning="",
        original="rewritten reply 2",
        proposed=None,
        entailment_ok=False,
        entailment_reasoning="",
        decision="unfixable",
        decided_by="auto",
    )
    assert sorted(f.step for f in rows(store, Fixup)) == ["criterion:CQ3", "criterion:MT1"]
    assert db.fixup_at(store, tid, 2, "criterion:CQ3").decision == "unfixable"
    assert db.fixup_at(store, tid, 3, "criterion:CQ3") is None


def test_review_decision_is_made_once(store, pack):
    run_id, tid = conversation(store, pack, status="fixing")
    fixup_id = db.save_fixup(
        store,
        run_id,
        tid,
        exchange_number=2,
        reason_kind="criterion",
        reason="MT1",
        reasoning="",
        original="reply 2",
        proposed="rewritten",
        entailment_ok=True,
        entailment_reasoning="",
        decision="pending",
    )
    db.set_status(store, run_id, tid, "review")
    assert db.decide_fixup(store, fixup_id, True, by="human") == "assessing"
    with pytest.raises(CoachError, match=f"fixup {fixup_id} was already decided"):
        db.decide_fixup(
            store,
            fixup_id,
            False,
            by="human",
            cut=db.Cut(keep=1, reject=False, stage="review", reason_kind="human", reason="MT1"),
        )
    assert db.exchanges(store, tid)[1].assistant == "rewritten" and len(db.exchanges(store, tid)) == 4
    assert len(events(store, "DecisionMade")) == 1 and rows(store, Rejection) == []


def test_truncation_is_made_once_and_keeps_what_it_cut(store, pack):
    run_id, tid = conversation(store, pack, status="fixing")
    assert db.truncate(store, run_id, tid, keep=2, stage="fixup", reason_kind="criterion", reason="MT1") is True
    assert db.truncate(store, run_id, tid, keep=2, stage="fixup", reason_kind="criterion", reason="MT1") is False
    (cut,) = rows(store, Rejection)
    assert [e["number"] for e in json.loads(cut.detail)] == [3, 4]  # not emptied by the replay
    assert len(db.exchanges(store, tid)) == 2 and len(events(store, "Rejection")) == 1


def test_rejection_is_recorded_once(store, pack):
    run_id, tid = conversation(store, pack, status="fixing")
    for _ in range(2):
        db.record_rejection(
            store,
            run_id,
            tid,
            stage="fixup",
            action="rejected",
            reason_kind="criterion",
            reason="MT1",
            kept_exchanges=4,
            detail="no exchange cited",
        )
    assert len(rows(store, Rejection)) == 1 and len(events(store, "Rejection")) == 1
    assert db.transcript(store, tid).status == "rejected"


async def test_resumed_rubric_stage_neither_asks_nor_rewrites_again(store, pack):
    """The issue's case: a kill after a rubric fixup was committed; the resumed curator meets it again."""
    run_id, tid = conversation(store, pack, status="fixing")

    def rewrite(messages, schema):
        if schema is None and "## The reply to rewrite" in messages[-1].content:
            return "A rewrite that keeps sleep in view."
        if schema is not None and "rewritten coach reply" in messages[-1].content:
            return json.dumps({"answer": "YES", "reasoning": "follows"})
        return default_script(messages, schema)

    failed = {"MT1": "Exchange 2 drops the sleep topic.", "CQ3": "Exchange 3 is vague."}

    async def stage(backend: ScriptedBackend) -> str:
        curator = Curator(
            store,
            router_with(embedded=backend),
            pack,
            run_id=run_id,
            bus=EventBus(),
            settings=CurationSettings(min_exchanges=1),
        )
        turns = [Turn(e.user, e.assistant) for e in db.exchanges(store, tid)]
        return await curator.rubric_stage(tid, turns, failed)

    first = ScriptedBackend("embedded", script=rewrite)
    assert await stage(first) == "assessing" and first.calls == 4  # two rewrites, two entailment checks
    replies = [e.assistant for e in db.exchanges(store, tid)]
    again = ScriptedBackend("embedded", script=rewrite)
    assert await stage(again) == "assessing" and again.calls == 0
    assert [e.assistant for e in db.exchanges(store, tid)] == replies
    fixes = rows(store, Fixup)
    assert sorted((f.exchange_number, f.original) for f in fixes) == [(2, "reply 2"), (3, "reply 3")]


# --- the insert itself ----------------------------------------------------------------------------


def test_insert_once_on_postgresql_is_one_statement():
    sql = str(_statement("postgresql", Fixup.__table__, FIXUP_KEY).compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT (transcript_id, exchange_number, step) DO NOTHING RETURNING fixup.id" in sql


def test_insert_once_elsewhere_keeps_the_stored_row_and_raises_other_conflicts(store, pack, monkeypatch):
    """The savepoint path, for databases without ON CONFLICT, forced on this test's database."""
    _, tid = conversation(store, pack, status="fixing")
    values = dict(
        transcript_id=tid,
        exchange_number=2,
        step="criterion:MT1",
        reason_kind="criterion",
        reason="MT1",
        reasoning="",
        original="reply 2",
        proposed=None,
        entailment_ok=False,
        entailment_reasoning="",
        decision="unfixable",
        decided_by="auto",
        created_at=db.utcnow(),
        decided_at=None,
    )
    with store.session() as s:
        monkeypatch.setattr(s.get_bind().dialect, "name", "other")
        first = insert_once(s, Fixup, values, FIXUP_KEY)
        assert first is not None
        assert insert_once(s, Fixup, {**values, "reason": "changed"}, FIXUP_KEY) is None
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            insert_once(s, Fixup, {**values, "transcript_id": "no-such-transcript"}, FIXUP_KEY)
        monkeypatch.undo()
    assert [f.reason for f in rows(store, Fixup)] == ["MT1"]


# --- transcript status ---------------------------------------------------------------------------


def test_every_status_has_its_moves_and_final_ones_none():
    assert set(TRANSITIONS) == set(TranscriptStatus)
    assert TRANSITIONS[TranscriptStatus.PASSED] == TRANSITIONS[TranscriptStatus.REJECTED] == frozenset()
    assert "truncated" not in {s.value for s in TranscriptStatus}  # a cut is a Rejection row, not a status


@pytest.mark.parametrize(
    "old,new",
    [
        ("planned", "generating"),
        ("generating", "curating"),
        ("generating", "assessing"),
        ("curating", "review"),
        ("assessing", "fixing"),
        ("fixing", "assessing"),
        ("review", "assessing"),
        ("failed", "fixing"),
        ("assessing", "assessing"),
    ],
)
def test_moves_the_pipeline_makes(old, new):
    assert check_transition("t1", old, new) == new


def test_a_bad_move_is_refused_with_what_is_allowed(store, pack):
    run_id, tid = conversation(store, pack, status="assessing")
    db.save_assessment(
        store,
        run_id,
        tid,
        stage="initial",
        exchange_count=4,
        rubric_version=1,
        result={**RESULT, "passed": True},
        answers=[],
        status="passed",
    )
    with pytest.raises(InvalidTransition) as err:
        db.set_status(store, run_id, tid, "review")
    refused = f"transcript {tid} cannot go from passed to review (allowed from passed: none: it is final)"
    assert str(err.value) == refused
    with pytest.raises(InvalidTransition, match=r"planned to passed \(allowed from planned: failed, generating\)"):
        check_transition("t2", "planned", "passed")
    with pytest.raises(CoachError, match="'truncated' is not a transcript status"):
        parse_status("truncated", where="--status")
    assert db.transcript(store, tid).status == "passed"


def test_staying_put_writes_no_event(store, pack):
    run_id, tid = conversation(store, pack, status="curating")
    before = len(events(store, "TranscriptStatus"))
    db.set_status(store, run_id, tid, "curating")
    assert len(events(store, "TranscriptStatus")) == before
    db.set_status(store, run_id, tid, "assessing")
    assert len(events(store, "TranscriptStatus")) == before + 1


# --- a workspace from before the keys -------------------------------------------------------------


def previous_release_with_replayed_steps(url: str) -> None:
    """The previous release's schema holding what its replays left: a step stored twice in each keyed table."""
    engine = create_engine(url, poolclass=NullPool)
    now = "CURRENT_TIMESTAMP"
    with write_locked(engine) as conn:
        upgrade_to_heads(conn, target=migrations.BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))
        for sql in [
            f"INSERT INTO run (id, kind, status, domain, seed, config, created_at, updated_at) VALUES "
            f"('run-old', 'generate', 'running', 'therapy', 7, '{{}}', {now}, {now})",
            f"INSERT INTO transcript (id, run_id, status, source, content_hash, meta, created_at, updated_at) "
            f"VALUES ('t-old', 'run-old', 'fixing', 'generated', '', '{{}}', {now}, {now})",
            *(
                f"INSERT INTO assessment (transcript_id, stage, exchange_count, rubric_version, score, passed, "
                f"safety_gate_failed, category_scores, failed_checks, created_at) VALUES ('t-old', 'initial', 3, 1, "
                f"{score}, false, false, '{{}}', '[]', {now})"
                for score in (0.5, 0.6)
            ),
            *(
                f"INSERT INTO fixup (transcript_id, exchange_number, reason_kind, reason, reasoning, original, "
                f"proposed, entailment_ok, entailment_reasoning, decision, decided_by, created_at) VALUES "
                f"('t-old', 2, '{kind}', '{reason}', '', '{original}', 'rewrite', true, '', 'accepted', 'auto', {now})"
                for kind, reason, original in [
                    ("artifact", "character_break", "As an AI"),
                    ("criterion", "MT1", "reply 2"),
                    ("criterion", "MT1", "rewrite"),
                ]
            ),
            *(
                f"INSERT INTO rejection (transcript_id, stage, action, reason_kind, reason, detail, kept_exchanges, "
                f"created_at) VALUES ('t-old', 'fixup', 'truncated', 'criterion', 'MT1', '{detail}', 2, {now})"
                for detail in ('[{"number": 3}]', "[]")
            ),
        ]:
            conn.execute(text(sql))
    engine.dispose()


def check_replayed_steps_upgraded(store) -> None:
    """Every row kept; the copy the pipeline acted on keeps the plain key; the keys hold from now on."""
    with store.session() as s:
        assessments = {a.stage: a.score for a in s.exec(select(Assessment)).all()}
        fixups = {f.step: (f.reason_kind, f.original) for f in s.exec(select(Fixup).order_by(Fixup.id)).all()}
        cuts = {r.stage: r.detail for r in s.exec(select(Rejection)).all()}
    assert len(assessments) == 2 and assessments["initial"] == 0.6  # the newest judging set the status
    assert fixups.pop("criterion:MT1") == ("criterion", "reply 2")  # the first fixup holds the true original
    assert sorted(fixups.values()) == [("artifact", "As an AI"), ("criterion", "rewrite")]
    assert all("#" in step for step in fixups)
    assert len(cuts) == 2 and cuts["fixup"] == '[{"number": 3}]'  # the first cut holds what it removed
    # A resumed curator meets the old rubric fixup under its step and does not make it again.
    assert db.fixup_at(store, "t-old", 2, "criterion:MT1").original == "reply 2"
    fid = db.save_fixup(
        store,
        "run-old",
        "t-old",
        exchange_number=2,
        reason_kind="criterion",
        reason="MT1",
        reasoning="",
        original="again",
        proposed="again",
        entailment_ok=True,
        entailment_reasoning="",
        decision="accepted",
        decided_by="auto",
    )
    assert fid == db.fixup_at(store, "t-old", 2, "criterion:MT1").id and len(rows(store, Fixup)) == 3


def test_a_workspace_from_before_the_keys_opens_with_every_row(tmp_path):
    db_file = tmp_path / "ws" / "coach.db"
    db_file.parent.mkdir()
    previous_release_with_replayed_steps(f"sqlite:///{db_file}")
    store = Store.for_workspace(tmp_path / "ws")
    check_replayed_steps_upgraded(store)
