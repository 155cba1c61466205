"""Slicing: seeded, late-dense slice points; examples that end on the reply and never exceed the limit;
`coach slice` end to end on imported fixtures, byte-identical on a re-run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from actors.dataset.slicing import (
    SPEC_MIX,
    SPEC_RATIOS,
    build_examples,
    examples_per_transcript,
    format_length_report,
    length_report,
    slice_points,
    slice_transcripts,
)
from actors.dataset.tokens import gemma3_counter
from actors.dataset.transcript_format import ExchangeData, TranscriptData
from actors.dataset.transcript_io import import_transcripts
from coach_tui.cli import main
from coach_tui.commands.slice import slice_cmd
from state.models import Fixup, Rejection, TrainingExample
from state.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
SYSTEM = "You are a warm, practical self-care coach."
WORDS = [
    "work",
    "sleep",
    "sister",
    "move",
    "boss",
    "deadline",
    "walk",
    "tired",
    "guilt",
    "call",
    "weekend",
    "plan",
    "calm",
    "worry",
    "friend",
    "money",
    "rest",
    "habit",
    "partner",
    "news",
    "week",
    "morning",
    "evening",
    "small",
    "step",
    "try",
    "notice",
    "feel",
]

if "slice" not in main.commands:  # the lead registers it on the `coach` group; tests need it either way
    main.add_command(slice_cmd)


class WordCounter:
    """A fake `TokenCounter` honouring the contract: BOS + 4 per turn + words; system folds into turn 1."""

    name = "test-words"

    @staticmethod
    def _turn(m) -> int:
        return 4 + len(m["content"].split())

    def count_messages(self, messages) -> int:
        has_system = messages[0]["role"] == "system"
        system = len(messages[0]["content"].split()) + 1 if has_system else 0
        return 1 + system + sum(self._turn(m) for m in messages[has_system:])

    def segment_counts(self, messages) -> list[int]:
        has_system = messages[0]["role"] == "system"
        counts = [self._turn(m) for m in messages[has_system:]]
        if has_system:
            return [1 + len(messages[0]["content"].split()) + 1, *counts]
        counts[0] += 1
        return counts


def text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words)) + "."


def transcript(tid: str, n: int, *, user_words: int = 40, reply_words: int = 30, seed: int = 0) -> TranscriptData:
    rng = random.Random(seed)
    return TranscriptData(
        id=tid,
        exchanges=[
            ExchangeData(
                number=i, user=f"(u{i}) " + text(rng, user_words), assistant=f"(a{i}) " + text(rng, reply_words)
            )
            for i in range(1, n + 1)
        ],
    )


# --- how many, where -----------------------------------------------------------------------------


def test_examples_per_transcript_hits_the_spec_ratios():
    for n, expected in SPEC_RATIOS:
        assert examples_per_transcript(n) == expected
    assert 31 * 5 + 78 * 12 + 39 * 15 + 7 * 20 == 1816  # the spec's total
    counts = [examples_per_transcript(n) for n in range(1, 201)]
    assert counts == sorted(counts) and counts[0] == 1
    assert examples_per_transcript(60) == 13 and examples_per_transcript(150) == 30
    assert examples_per_transcript(0) == 0


def test_slice_points_are_seeded_by_id():
    assert slice_points("t-1", 50) == slice_points("t-1", 50)
    different = {tuple(slice_points(f"t-{i}", 50)) for i in range(100)}
    assert len(different) >= 95


def test_slice_points_are_pinned():
    """The same id must give the same points on every machine and release: changing this changes datasets."""
    assert slice_points("coach-run1-0003", 50) == [18, 28, 30, 36, 38, 40, 41, 44, 45, 47, 49, 50]
    assert slice_points("transcript_9100_20260101_120000", 20) == [9, 12, 13, 18, 20]


@pytest.mark.parametrize("n", [5, 20, 37, 50, 75, 100, 140])
def test_slice_points_shape(n):
    for i in range(30):
        points = slice_points(f"id-{i}", n, min_context=3)
        assert points == sorted(set(points))
        assert points[-1] == n
        assert min(points) >= 3
        assert len(points) == min(examples_per_transcript(n), n - 3 + 1)


def test_slices_are_sparse_early_and_dense_late():
    early = late = 0
    for i in range(300):
        for k in slice_points(f"persona-{i}", 100):
            if k <= 50:
                early += 1
            elif k < 100:  # the final exchange is always there; leave it out
                late += 1
    assert late > 3 * early
    # Density rises across quarters, not just halves.
    quarters = [0, 0, 0, 0]
    for i in range(300):
        for k in slice_points(f"persona-{i}", 100)[:-1]:
            quarters[min(3, (k - 1) // 25)] += 1
    assert quarters == sorted(quarters)


def test_short_transcripts_and_min_context():
    assert slice_points("x", 0) == []
    assert slice_points("x", 1) == [1]
    assert slice_points("x", 3, min_context=3) == [3]
    assert slice_points("x", 2, min_context=5) == [2]  # very short: one slice, at the end
    assert min(slice_points("x", 40, min_context=10)) >= 10
    assert slice_points("x", 30, count=lambda n: 100) == list(range(3, 31))
    with pytest.raises(ValueError):
        slice_points("x", 10, min_context=0)


# --- examples ----------------------------------------------------------------------------------------


def test_examples_end_on_the_target_reply():
    t = transcript("t-ends", 50)
    result = build_examples(t, SYSTEM, WordCounter())
    assert [e.end_exchange for e in result.examples] == slice_points("t-ends", 50)
    for e in result.examples:
        roles = [m["role"] for m in e.messages]
        assert roles == ["system"] + ["user", "assistant"] * e.end_exchange
        assert e.messages[0]["content"] == SYSTEM
        assert e.messages[-1]["content"] == t.exchanges[e.end_exchange - 1].assistant
        assert e.token_count == WordCounter().count_messages(e.messages)
        assert not e.trimmed
    assert not result.dropped


def test_no_system_prompt():
    t = transcript("t-nosys", 20)
    for e in build_examples(t, None, WordCounter()).examples:
        assert e.messages[0]["role"] == "user"
        assert e.token_count == WordCounter().count_messages(e.messages)


def test_keep_recent_trims_to_the_most_recent_exchanges_that_fit():
    t = transcript("t-trim", 40)
    counter = WordCounter()
    limit = 900  # about 11 exchanges of ~80 tokens
    result = build_examples(t, SYSTEM, counter, max_tokens=limit)
    assert result.examples and not result.dropped and result.trimmed
    for e in result.examples:
        assert e.token_count <= limit
        assert e.token_count == counter.count_messages(e.messages)
        assert e.messages[0]["role"] == "system" and e.messages[1]["role"] == "user"
        assert e.messages[-1]["content"] == t.exchanges[e.end_exchange - 1].assistant
        first_user = t.exchanges[e.start_exchange - 1].user
        assert e.messages[1]["content"] == first_user
        if e.trimmed:  # one more exchange of history would not have fitted
            prev = t.exchanges[e.start_exchange - 2]
            longer = [
                e.messages[0],
                {"role": "user", "content": prev.user},
                {"role": "assistant", "content": prev.assistant},
                *e.messages[1:],
            ]
            assert counter.count_messages(longer) > limit


def test_drop_mode_drops_and_counts():
    t = transcript("t-drop", 40)
    full = build_examples(t, SYSTEM, WordCounter())
    limit = 900
    result = build_examples(t, SYSTEM, WordCounter(), max_tokens=limit, over_limit="drop")
    over = [e.end_exchange for e in full.examples if e.token_count > limit]
    assert over and [d.end_exchange for d in result.dropped] == over
    assert all(e.token_count <= limit for e in result.examples)
    assert all(d.token_count > limit for d in result.dropped)
    assert len(result.examples) + len(result.dropped) == len(full.examples)


def test_slice_whose_target_alone_is_too_long_is_dropped():
    t = transcript("t-huge", 10, reply_words=500)
    result = build_examples(t, SYSTEM, WordCounter(), max_tokens=300)
    assert not result.examples
    assert result.dropped and all("alone" in d.reason for d in result.dropped)


def test_explicit_points_and_bad_options():
    t = transcript("t-pts", 10)
    result = build_examples(t, SYSTEM, WordCounter(), points=[4, 2, 4])
    assert [e.end_exchange for e in result.examples] == [2, 4]
    with pytest.raises(ValueError):
        build_examples(t, SYSTEM, WordCounter(), points=[11])
    with pytest.raises(ValueError):
        build_examples(t, SYSTEM, WordCounter(), over_limit="truncate")  # type: ignore[arg-type]


def test_threads_give_the_same_result_in_the_same_order():
    ts = [transcript(f"t-{i}", 20 + 7 * i, seed=i) for i in range(8)]
    one = slice_transcripts(ts, SYSTEM, WordCounter(), workers=1, max_tokens=1500)
    many = slice_transcripts(ts, SYSTEM, WordCounter(), workers=4, max_tokens=1500)
    assert one.examples == many.examples and one.dropped == many.dropped


def test_real_tokenizer_counts_match_whole_tokenization_even_when_trimmed():
    counter = gemma3_counter()
    t = transcript("t-real", 30, user_words=120, reply_words=80, seed=3)
    limit = 2_500
    result = build_examples(t, SYSTEM, counter, max_tokens=limit, points=list(range(1, 31)))
    assert result.trimmed and not result.dropped
    for e in result.examples:
        assert e.token_count == counter.count_messages(e.messages) <= limit


def varied_transcripts() -> list[TranscriptData]:
    """Short transcripts whose messages stress every path of the fast counter (and plain ones beside them)."""
    awkward = [
        "  Work was rough.\n\nAlso my sister called.  ",
        "**Work:** That sounds heavy. 🌱\n- read\n- stretch",
        "She said 'model' and <start_of_turn> nonsense <end_of_turn>",
        "double  spaces,   triple and\ttabs \t mixed > </ and a literal ▁ here",
        "Привет. 这周很难。 e.g. U.S. 1,000 and 3.14?! (yes)",
        "<b>bold</b> then <unused3> and </s> and [multimodal] end",
        "\n\n\nnewlines first",
        "x",
    ]
    rng = random.Random(11)
    out = []
    for i in range(6):
        exchanges = []
        for n in range(1, rng.randint(3, 9) + 1):
            user = rng.choice(awkward) if rng.random() < 0.5 else text(rng, rng.randint(5, 60))
            reply = rng.choice(awkward) if rng.random() < 0.5 else text(rng, rng.randint(5, 60)).capitalize()
            exchanges.append(ExchangeData(number=n, user=user, assistant=reply))
        out.append(TranscriptData(id=f"varied-{i}", exchanges=exchanges))
    return out


@pytest.mark.parametrize("system", [SYSTEM, None, "Ends with a newline.\n", "<bos> looks special"])
def test_fast_counts_equal_a_direct_count_of_every_rendered_example(system):
    """Each example's count (prefix sums of cached chunk counts) equals one llama.cpp call on its rendered text."""
    from actors.dataset.tokens import render_gemma3

    counter = gemma3_counter()
    counter.vocab.clear_cache()  # cold: the batched path first, then the cache
    transcripts = varied_transcripts()
    for workers in (1, 3):
        result = slice_transcripts(transcripts, system, counter, workers=workers, max_tokens=400, min_context=1)
        assert result.trimmed and result.examples
        for e in result.examples:
            assert e.token_count == counter.vocab.count_whole(render_gemma3(e.messages)) <= 400, e


def test_on_progress_hears_every_transcript_in_order():
    ts = [transcript(f"t-{i}", 10 + 3 * i, seed=i) for i in range(7)]

    def heard(workers: int, mix) -> list[tuple[int, int]]:
        calls: list[tuple[int, int]] = []
        slice_transcripts(ts, SYSTEM, WordCounter(), workers=workers, mix=mix, on_progress=lambda *a: calls.append(a))
        return calls

    for workers in (1, 4):
        for mix in (None, SPEC_MIX):
            assert heard(workers, mix) == [(i, 7) for i in range(1, 8)], (workers, mix)


# --- length report ------------------------------------------------------------------------------------


def test_length_report_buckets():
    report = length_report([100, 4_999, 5_000, 14_999, 15_000, 29_999, 30_000, 90_000])
    assert [b.count for b in report.buckets] == [2, 2, 2, 2]
    assert [b.share for b in report.buckets] == [0.25] * 4
    assert report.buckets[0].avg_tokens == (100 + 4_999) / 2
    assert report.buckets[3].high is None and report.buckets[3].avg_tokens == 60_000
    assert [b.target_share for b in report.buckets] == [0.20, 0.50, 0.25, 0.05]
    assert report.examples == 8 and report.max_tokens == 90_000
    text = format_length_report(report)
    for label in ("Short (0-5K)", "Medium (5-15K)", "Long (15-30K)", "Very long (30K+)", "Total"):
        assert label in text


def test_length_report_of_nothing():
    report = length_report([])
    assert report.examples == 0 and all(b.count == 0 and b.share == 0 for b in report.buckets)
    assert "Total" in format_length_report(report)


# --- coach slice ----------------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    store = Store.for_workspace(ws)
    report = import_transcripts(store, sorted(FIXTURES.glob("*.json")), status="accepted")
    assert report.ok and len(report.added) == 3
    store.close()
    return ws


def coach(ws: Path, *args: str):
    return CliRunner().invoke(main, ["--workspace", str(ws), *args])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_coach_slice_end_to_end(workspace: Path, tmp_path: Path):
    out = tmp_path / "training_data.jsonl"
    result = coach(workspace, "slice", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = read_jsonl(out)
    from actors.dataset.example_lines import PROVENANCE_KEYS
    from actors.pack.loader import load_pack

    assert lines and all(list(obj) == ["messages", *PROVENANCE_KEYS] for obj in lines)
    system = load_pack(None, check_rubric_doc=False).system_prompt
    for obj in lines:
        messages = obj["messages"]
        assert messages[0] == {"role": "system", "content": system}
        assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * ((len(messages) - 1) // 2)
        assert messages[-1]["role"] == "assistant"
    assert "Medium (5-15K)" in result.output and f"{len(lines)} examples from 3 transcripts" in result.output

    store = Store.for_workspace(workspace)
    with store.session() as s:
        rows = s.exec(
            select(TrainingExample).order_by(TrainingExample.transcript_id, TrainingExample.end_exchange)
        ).all()
    assert len(rows) == len(lines)
    counter = gemma3_counter()
    assert {r.tokenizer for r in rows} == {counter.name}
    # Rows record which exchanges each line holds and its exact token count.
    assert sorted((r.token_count, 1 + 2 * (r.end_exchange - r.start_exchange + 1)) for r in rows) == sorted(
        (counter.count_messages(o["messages"]), len(o["messages"])) for o in lines
    )


def test_coach_slice_is_deterministic_and_replaces_rows(workspace: Path, tmp_path: Path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert coach(workspace, "slice", "--out", str(a)).exit_code == 0
    assert coach(workspace, "slice", "--out", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    store = Store.for_workspace(workspace)
    assert store.count(TrainingExample) == len(read_jsonl(a))
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_coach_slice_limit_and_drop(workspace: Path, tmp_path: Path):
    out = tmp_path / "out.jsonl"
    result = coach(workspace, "slice", "--out", str(out), "--max-tokens", "1000", "--over-limit", "drop")
    assert result.exit_code == 0, result.output
    assert "dropped" in result.output
    counter = gemma3_counter()
    assert all(counter.count_messages(o["messages"]) <= 1000 for o in read_jsonl(out))
    kept = coach(workspace, "slice", "--out", str(out), "--max-tokens", "1000")
    assert kept.exit_code == 0 and "trimmed" in kept.output
    assert all(counter.count_messages(o["messages"]) <= 1000 for o in read_jsonl(out))
    assert Store.for_workspace(workspace).count(TrainingExample) == len(read_jsonl(out))


def test_coach_slice_min_context(workspace: Path, tmp_path: Path):
    out = tmp_path / "out.jsonl"
    assert coach(workspace, "slice", "--out", str(out), "--min-context", "12").exit_code == 0
    # 12, 4 and 3 exchanges: each gives one slice, at its end.
    assert sorted((len(o["messages"]) - 1) // 2 for o in read_jsonl(out)) == [3, 4, 12]


def test_coach_slice_honours_truncation_and_pending_review(workspace: Path, tmp_path: Path):
    store = Store.for_workspace(workspace)
    with store.session() as s:
        s.add(
            Rejection(
                transcript_id="transcript_9100_20260101_120000",
                stage="artifact",
                action="truncated",
                reason_kind="artifact",
                reason="truncated",
                kept_exchanges=10,
            )
        )
        s.add(
            Fixup(
                transcript_id="gemma_session_9200_20260102_080000",
                exchange_number=2,
                reason_kind="criterion",
                reason="CQ3",
                original="x",
                proposed="y",
            )
        )
    out = tmp_path / "out.jsonl"
    result = coach(workspace, "slice", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "skipped    gemma_session_9200_20260102_080000" in result.output
    assert "first 10 exchanges" in result.output
    lengths = [(len(o["messages"]) - 1) // 2 for o in read_jsonl(out)]
    assert max(lengths) == 10 and 3 not in lengths


def test_coach_slice_user_errors(tmp_path: Path, workspace: Path):
    empty = tmp_path / "empty-ws"
    Store.for_workspace(empty).close()  # only run and import create a workspace
    result = coach(empty, "slice", "--out", str(tmp_path / "x.jsonl"))
    assert result.exit_code == 1 and "no passed transcripts" in result.output

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = coach(workspace, "slice", "--out", str(blocker / "sub" / "out.jsonl"))
    assert result.exit_code == 1 and "cannot write" in result.output
    assert Store.for_workspace(workspace).count(TrainingExample) == 0  # rolled back with the failed write

    result = coach(workspace, "slice", "--out", str(tmp_path))
    assert result.exit_code != 0
    result = coach(workspace, "slice", "--out", str(tmp_path / "o.jsonl"), "--over-limit", "truncate")
    assert result.exit_code == 2


def test_example_line_is_compact_json_of_the_messages():
    from actors.dataset.example_lines import MessageEncoder, example_line

    t = transcript("t-json", 12)
    t.exchanges[0].user = 'quotes " and \\ backslash, “curly”, émoji 🌱, newline\nand tab\t'
    encoder = MessageEncoder()
    for e in build_examples(t, SYSTEM, WordCounter()).examples:
        provenance = {
            "transcript_id": "t-json",
            "first_exchange": e.start_exchange,
            "last_exchange": e.end_exchange,
            "token_count": e.token_count,
        }
        expected = json.dumps({"messages": e.messages, **provenance}, ensure_ascii=False, separators=(",", ":"))
        assert example_line(e, encoder) == expected == example_line(e)
        run = MessageEncoder(pack="therapy", seed=7, tokenizer="gemma3")
        full = {"messages": e.messages, **provenance, "pack": "therapy", "slice_seed": 7, "tokenizer": "gemma3"}
        assert run.line(e) == json.dumps(full, ensure_ascii=False, separators=(",", ":"))
