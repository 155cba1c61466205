"""Preference pairs for DPO: which replies the store prefers, and `coach slice --pairs` on a scripted store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from actors.dataset.preference_pairs import (
    PAIR_KEYS,
    build_pairs,
    fit_pair,
    fixup_pairs,
    judged_pairs,
    limit_per_context,
)
from coach_tui.cli import main
from coach_tui.commands.slice import slice_cmd
from state import pipeline as db
from state.preference_data import AcceptedFixup, JudgedAnswer, JudgedTranscript, judged_training_transcripts
from tests.test_slicing import WordCounter
from tests.test_supervisor import make_run

if "slice" not in main.commands:  # the lead registers it on `coach`; tests need it either way
    main.add_command(slice_cmd)

SYSTEM = "Be a coach."
EXCHANGES = (("I sleep badly.", "Tell me more."), ("Work is loud.", "Noise is hard."), ("And my sister.", "Go on."))


def transcript(tid="t1", *, status="passed", passed=True, exchanges=EXCHANGES, answers=(), fixups=(), **kw):
    return JudgedTranscript(
        id=tid,
        status=status,
        exchanges=tuple(exchanges),
        assessed=kw.pop("assessed", True),
        passed=passed,
        safety_gate_failed=kw.pop("safety_gate_failed", False),
        answers=tuple(answers),
        accepted_fixups=tuple(fixups),
        pending_review=kw.pop("pending_review", False),
        kept_exchanges=kw.pop("kept_exchanges", None),
    )


def fix(exchange, original, proposed, reason="CQ3", kind="criterion", fid=1):
    return AcceptedFixup(fid, exchange, f"{kind}:{reason}", kind, reason, original, proposed)


def yes(criterion):
    return JudgedAnswer(criterion, "YES", "fine", "judge")


def test_an_accepted_fixup_that_passed_reassessment_pairs_the_rewrite_against_the_original():
    t = transcript(fixups=[fix(2, "You should just relax.", "Noise is hard.")], answers=[yes("CQ3")])
    [pair] = fixup_pairs([t], SYSTEM)
    assert pair.chosen == "Noise is hard." and pair.rejected == "You should just relax."
    assert [m["role"] for m in pair.prompt] == ["system", "user", "assistant", "user"]
    assert pair.prompt[-1]["content"] == "Work is loud." and pair.prompt[2]["content"] == "Tell me more."
    assert (pair.transcript_id, pair.exchange, pair.source, pair.reason) == ("t1", 2, "fixup", "CQ3")


@pytest.mark.parametrize(
    "change",
    [
        {"status": "rejected", "passed": False},  # the re-assessment failed
        {"pending_review": True},  # a person has yet to decide another fixup
        {"kept_exchanges": 1},  # a recorded truncation cut exchange 2 away
        {"answers": [JudgedAnswer("CQ3", "NO", "exchange 2 still lectures", "judge")]},  # its criterion still fails
        {"exchanges": (EXCHANGES[0], ("Work is loud.", "Something else."), EXCHANGES[2])},  # replaced since
    ],
)
def test_no_fixup_pair_unless_the_rewrite_is_the_judged_passing_reply(change):
    t = transcript(fixups=[fix(2, "You should just relax.", "Noise is hard.")], **change)
    assert fixup_pairs([t], SYSTEM) == []


def test_a_chain_of_rewrites_pairs_the_final_reply_with_every_original_it_replaced():
    fixes = [
        fix(2, "Noise is hard. And", "Noise is hard. Long", "truncated", "artifact", 1),
        fix(2, "Noise is hard. Long", "Noise is hard.", "MT1", fid=2),
    ]
    pairs = fixup_pairs([transcript(fixups=fixes)], SYSTEM)
    assert [(p.chosen, p.rejected, p.reason) for p in pairs] == [
        ("Noise is hard.", "Noise is hard. And", "truncated"),
        ("Noise is hard.", "Noise is hard. Long", "MT1"),
    ]


def test_replies_to_one_shared_context_judged_differently_make_a_pair():
    good = transcript("a", answers=[yes("MT1")])
    worse = list(EXCHANGES)
    worse[1] = ("Work is loud.", "Have you tried earplugs? Earplugs.")
    bad = transcript(
        "b",
        status="rejected",
        passed=False,
        exchanges=worse,
        answers=[JudgedAnswer("MT1", "NO", "Exchange 2 ignores the noise topic.", "judge")],
    )
    unrelated = transcript("c", exchanges=[("Something else entirely.", "Ok.")])
    pairs, shared = judged_pairs([good, bad, unrelated], SYSTEM)
    [pair] = pairs
    assert (pair.chosen, pair.rejected) == ("Noise is hard.", "Have you tried earplugs? Earplugs.")
    assert (pair.transcript_id, pair.rejected_transcript_id, pair.exchange, pair.reason) == ("a", "b", 2, "MT1")
    assert pair.source == "judged"
    assert shared == 2  # exchanges 1 and 2 are reached by both; exchange 3's history differs
    # a bad reply whose judge named no exchange says nothing about which reply failed
    vague = transcript(
        "b", status="rejected", passed=False, exchanges=worse, answers=[JudgedAnswer("MT1", "NO", "meh", "j")]
    )
    assert judged_pairs([good, vague], SYSTEM)[0] == []


def test_the_seed_chooses_which_pairs_a_crowded_context_keeps():
    fixes = [fix(2, f"bad reply {i}", "Noise is hard.", fid=i) for i in range(6)]
    pairs = fixup_pairs([transcript(fixups=fixes)], SYSTEM)
    kept, left = limit_per_context(pairs, 2, seed=1)
    assert len(kept) == 2 and left == 4
    assert limit_per_context(pairs, 2, seed=1)[0] == kept
    chosen_by_seed = {frozenset(p.rejected for p in limit_per_context(pairs, 2, seed=s)[0]) for s in range(8)}
    assert len(chosen_by_seed) > 1  # another seed, another choice


def test_an_over_long_pair_keeps_its_recent_exchanges_or_is_dropped():
    t = transcript(fixups=[fix(3, "No.", "Go on.")])
    [pair] = fixup_pairs([t], SYSTEM)
    counter = WordCounter()
    full = fit_pair(pair, counter, 10_000, "keep_recent")[0]
    assert full.first_exchange == 1 and full.token_count > 0
    trimmed, count = fit_pair(pair, counter, full.token_count - 1, "keep_recent")
    assert count == full.token_count and trimmed.first_exchange > 1 and trimmed.token_count < full.token_count
    assert trimmed.prompt[0]["role"] == "system" and trimmed.prompt[-1]["content"] == "And my sister."
    assert fit_pair(pair, counter, full.token_count - 1, "drop")[0] is None
    result = build_pairs([t], SYSTEM, counter, max_tokens=5, over_limit="keep_recent")
    assert result.pairs == [] and [d.exchange for d in result.dropped] == [3]


# --- the store and the command --------------------------------------------------------------------


def _judged(store, run_id, tid, *, passed, answers, stage="initial", status=None):
    result = {
        "score": 1.0 if passed else 0.4,
        "passed": passed,
        "safety_gate_failed": False,
        "category_scores": {},
        "failed_checks": [] if passed else [a[0] for a in answers if a[1] == "NO"],
    }
    db.save_assessment(
        store,
        run_id,
        tid,
        stage=stage,
        exchange_count=3,
        rubric_version=1,
        result=result,
        answers=answers,
        status=status or ("passed" if passed else "rejected"),
    )


def scripted_store(store, pack):
    """A run of two transcripts: t0 passed after an accepted rewrite of reply 2; t1 was rejected,
    its reply 1 (same opening message as t0's) cited by a judge's NO."""
    run_id = make_run(store, pack, n=2, length=3)
    t0, t1 = f"{run_id}-t0000", f"{run_id}-t0001"
    for tid, replies in ((t0, ["Tell me more.", "Just relax.", "Go on."]), (t1, ["Sleep is overrated!", "x", "y"])):
        db.set_status(store, run_id, tid, "generating")
        for n, reply in enumerate(replies, start=1):
            db.add_user_message(store, run_id, tid, n, "I sleep badly." if n == 1 else f"{tid} message {n}")
            db.set_assistant_reply(store, run_id, tid, n, reply)
        db.set_status(store, run_id, tid, "curating")
        db.set_status(store, run_id, tid, "assessing")
    cq3 = [("CQ3", "NO", "Exchange 2 dismisses the worry.", "j")]
    _judged(store, run_id, t0, passed=False, answers=cq3, status="fixing")
    db.save_fixup(
        store,
        run_id,
        t0,
        exchange_number=2,
        reason_kind="criterion",
        reason="CQ3",
        reasoning="Exchange 2 dismisses the worry.",
        original="Just relax.",
        proposed="That sounds exhausting. What keeps you up?",
        entailment_ok=True,
        entailment_reasoning="follows",
        decision="accepted",
        decided_by="auto",
    )
    return run_id, t0, t1


def test_slice_pairs_writes_trl_preference_lines_with_provenance(store, pack, tmp_path, monkeypatch):
    # the word counter stands in for the Gemma 3 tokenizer (12 s to load on a busy machine; test_slicing loads it)
    monkeypatch.setattr("actors.dataset.tokens.gemma3_counter", WordCounter)
    run_id, t0, t1 = scripted_store(store, pack)
    # before the re-assessment: the rewrite has not passed yet, so there is nothing to pair
    runner = CliRunner()
    out = tmp_path / "pairs.jsonl"
    workspace = str(tmp_path / "ws")
    result = runner.invoke(main, ["-w", workspace, "slice", "--pairs", str(out)])
    assert result.exit_code == 1 and "no preference pairs in the workspace" in result.output
    assert "Traceback" not in result.output and not out.exists()

    _reassess(store, run_id, t0)  # judged again after the rewrite: it passes
    _judged(store, run_id, t1, passed=False, answers=[("CQ9", "NO", "Exchange 1 mocks the user.", "j")])

    result = runner.invoke(main, ["-w", workspace, "slice", "--pairs", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 preference pairs (1 from accepted fixups, 1 from replies judged differently)" in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [list(line)[:3] for line in lines] == [["prompt", "chosen", "rejected"]] * 2
    assert all(set(PAIR_KEYS) <= set(line) for line in lines)
    by_source = {line["source"]: line for line in lines}
    fixed = by_source["fixup"]
    assert fixed["chosen"] == [{"role": "assistant", "content": "That sounds exhausting. What keeps you up?"}]
    assert fixed["rejected"] == [{"role": "assistant", "content": "Just relax."}]
    assert fixed["prompt"][0] == {"role": "system", "content": pack.system_prompt}
    assert fixed["prompt"][-1]["role"] == "user" and (fixed["transcript_id"], fixed["last_exchange"]) == (t0, 2)
    assert fixed["pack"] == pack.name and fixed["slice_seed"] == pack.manifest.slicing.seed
    assert fixed["tokenizer"] == "test-words" and fixed["token_count"] > 0 and fixed["first_exchange"] == 1
    judged = by_source["judged"]
    assert (judged["chosen"][0]["content"], judged["rejected"][0]["content"]) == (
        "Tell me more.",
        "Sleep is overrated!",
    )
    assert (judged["rejected_transcript_id"], judged["reason"]) == (t1, "CQ9")
    # the same store gives the same bytes
    again = tmp_path / "again.jsonl"
    assert runner.invoke(main, ["-w", workspace, "slice", "--pairs", str(again)]).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def _reassess(store, run_id, tid):
    db.set_status(store, run_id, tid, "assessing")
    _judged(store, run_id, tid, passed=True, answers=[("CQ3", "YES", "warm now", "j")], stage="after_fixup")


def test_evaluation_transcripts_never_give_pairs(store, pack):
    run_id, t0, _ = scripted_store(store, pack)
    _reassess(store, run_id, t0)
    assert [t.id for t in judged_training_transcripts(store)] == [t0, f"{run_id}-t0001"]
    from state.models import Run

    with store.session() as s:
        s.get(Run, run_id).kind = "eval"
    assert judged_training_transcripts(store) == []


def test_slice_needs_out_or_pairs(tmp_path):
    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "slice"])
    assert result.exit_code == 2 and "give --out FILE for training examples, --pairs FILE" in result.output
