"""Slicing toward the pack's length mix: TVD ≤ 0.05 on a realistic corpus that can reach it, named buckets
(with why) on one that cannot, determinism, the dense-late preference kept, and provenance in every line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sqlmodel import select

from actors.dataset.example_lines import PROVENANCE_KEYS
from actors.dataset.slicing import (
    SPEC_MIX,
    TargetBucket,
    check_mix,
    coverage_report,
    examples_per_transcript,
    format_coverage_report,
    format_mix_plan,
    length_report,
    slice_transcripts,
)
from actors.dataset.tokens import gemma3_counter
from actors.dataset.transcript_io import import_transcripts
from actors.pack.loader import load_pack
from actors.pack.models import Slicing
from actors.training.data import read_examples
from coach_tui.cli import main
from coach_tui.commands.slice import slice_cmd
from state.models import TrainingExample
from state.store import Store
from tests.slicing_corpus import LENGTH_CLASSES, realistic_corpus, short_corpus
from tests.test_slicing import WordCounter

if "slice" not in main.commands:
    main.add_command(slice_cmd)

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
SYSTEM = "You are a warm, practical self-care coach. " * 40  # ~300 words, like the real system prompt


class EnglishCounter(WordCounter):
    """Exact and cheap: 4 per turn plus 4 tokens per 3 words, about what Gemma 3's tokenizer gives English."""

    name = "test-english"

    @staticmethod
    def _turn(m) -> int:
        return 4 + (4 * len(m["content"].split())) // 3


@pytest.fixture(scope="module")
def corpus():
    return realistic_corpus(300, seed=16)


@pytest.fixture(scope="module")
def mixed(corpus):
    return slice_transcripts(corpus, SYSTEM, EnglishCounter(), mix=SPEC_MIX)


# --- the corpus -------------------------------------------------------------------------------------


def test_the_realistic_corpus_is_deterministic_and_mostly_short(corpus):
    again = realistic_corpus(300, seed=16)
    assert [t.model_dump() for t in again] == [t.model_dump() for t in corpus]
    lengths = sorted(len(t.exchanges) for t in corpus)
    assert lengths[0] >= LENGTH_CLASSES[0][1] and lengths[-1] <= LENGTH_CLASSES[-1][2]
    assert sum(n < 15 for n in lengths) > len(lengths) / 2  # most are short
    assert 3 <= sum(n >= 80 for n in lengths) <= 25  # a few are very long
    words = [len(e.user.split()) for t in corpus for e in t.exchanges]
    replies = [len(e.assistant.split()) for t in corpus for e in t.exchanges]
    assert 40 <= sorted(words)[len(words) // 2] <= 80 and 120 <= sorted(replies)[len(replies) // 2] <= 180
    assert min(words) <= 10 and max(words) >= 400  # one-liners and long paragraphs alike


# --- reaching the mix ---------------------------------------------------------------------------------


def test_the_mix_is_reached_on_a_corpus_that_can_reach_it(mixed):
    report = length_report(mixed.examples, SPEC_MIX)
    assert mixed.plan is not None and mixed.plan.reachable and not mixed.plan.out_of_reach
    assert report.tvd <= 0.05
    assert mixed.plan.natural_tvd > 0.05  # dense-late alone misses: the planning is what gets there
    assert tuple(b.count for b in report.buckets) == mixed.plan.planned == mixed.plan.wanted
    assert "TVD" in format_mix_plan(mixed.plan) and "out of reach" not in format_mix_plan(mixed.plan)


def test_the_mix_keeps_the_spec_counts_and_the_rules_of_a_slice(corpus, mixed):
    by_id = {t.id: t for t in corpus}
    per: dict[str, list] = {}
    for e in mixed.examples:
        per.setdefault(e.transcript_id, []).append(e)
    # The total is the spec's rule; each transcript moves at most half its count (count_flex 0.5).
    assert len(mixed.examples) == sum(examples_per_transcript(len(t.exchanges)) for t in corpus)
    for tid, examples in per.items():
        n = len(by_id[tid].exchanges)
        ends = [e.end_exchange for e in examples]
        assert ends == sorted(set(ends)) and ends[-1] == n  # the final exchange is always a slice
        assert all(k >= 3 for k in ends[:-1])  # never before min_context
        wanted = examples_per_transcript(n) - 1 if n > 3 else 0
        assert wanted - wanted // 2 <= len(ends) - 1 <= wanted + -(-wanted // 2)
        for e in examples:
            assert e.token_count == EnglishCounter().count_messages(e.messages)


def test_the_mix_keeps_slices_dense_late(mixed):
    coverage = coverage_report(mixed)
    rates = [hit / slots for _, slots, hit in coverage.by_position]
    assert rates == sorted(rates) and rates[-1] > 4 * rates[1]
    text = format_coverage_report(coverage)
    assert "slices per transcript: min 1" in text and "80-100%" in text


def test_same_corpus_and_seed_give_the_same_examples(corpus, mixed):
    again = slice_transcripts(list(reversed(corpus)), SYSTEM, EnglishCounter(), mix=SPEC_MIX, workers=3)
    key = sorted((e.transcript_id, e.end_exchange, e.start_exchange, e.token_count) for e in mixed.examples)
    assert key == sorted((e.transcript_id, e.end_exchange, e.start_exchange, e.token_count) for e in again.examples)
    other = slice_transcripts(corpus, SYSTEM, EnglishCounter(), mix=SPEC_MIX, seed=7)
    assert [(e.transcript_id, e.end_exchange) for e in other.examples] != [
        (e.transcript_id, e.end_exchange) for e in mixed.examples
    ]
    assert length_report(other.examples).tvd <= 0.05  # another seed, other points, the same mix


def test_a_long_transcript_over_the_limit_is_trimmed_and_still_counts(corpus):
    result = slice_transcripts(corpus, SYSTEM, EnglishCounter(), mix=SPEC_MIX, max_tokens=32_000)
    assert result.trimmed and all(e.token_count <= 32_000 for e in result.examples)
    assert length_report(result.examples).tvd <= 0.05


# --- out of reach -------------------------------------------------------------------------------------


def test_a_corpus_of_short_transcripts_names_the_buckets_out_of_reach():
    result = slice_transcripts(short_corpus(), SYSTEM, EnglishCounter(), mix=SPEC_MIX)
    plan = result.plan
    assert plan is not None and not plan.reachable
    reasons = dict(line.split(": ", 1) for line in plan.out_of_reach)
    assert {"Medium (5-15K)", "Long (15-30K)", "Short (0-5K)"} <= set(reasons)
    assert "out of reach: no transcript is long enough: the longest possible example has" in reasons["Long (15-30K)"]
    assert "over" in reasons["Short (0-5K)"]
    assert "out of reach for this corpus:" in format_mix_plan(plan)


def test_a_token_limit_below_a_bucket_puts_it_out_of_reach(corpus):
    result = slice_transcripts(corpus, SYSTEM, EnglishCounter(), mix=SPEC_MIX, max_tokens=20_000, over_limit="drop")
    (line,) = [x for x in result.plan.out_of_reach if x.startswith("Very long")]
    assert "no example may have more than 20,000 tokens (--max-tokens)" in line


# --- the pack's settings --------------------------------------------------------------------------------


def test_the_therapy_pack_declares_the_spec_mix():
    slicing = load_pack(None, check_rubric_doc=False).manifest.slicing
    assert [TargetBucket(*b) for b in slicing.buckets()] == list(SPEC_MIX)
    assert slicing.seed == 0 and slicing.count_flex == 0.5
    assert load_pack(Path(__file__).parents[1] / "packs" / "customer-support", check_rubric_doc=False).manifest.slicing


@pytest.mark.parametrize(
    "mix",
    [
        [{"below": 5000, "share": 0.5}, {"share": 0.4}],  # shares sum to 0.9
        [{"below": 5000, "share": 0.5}, {"below": 9000, "share": 0.5}],  # the last is bounded
        [{"below": 9000, "share": 0.5}, {"below": 5000, "share": 0.2}, {"share": 0.3}],  # edges fall
        [{"share": 0.5}, {"share": 0.5}],  # an unbounded bucket before the last
    ],
)
def test_a_bad_length_mix_is_refused(mix):
    with pytest.raises(ValidationError):
        Slicing(length_mix=mix)


def test_the_slicer_refuses_a_mix_with_a_gap():
    with pytest.raises(ValueError, match="must start where"):
        check_mix([TargetBucket("a", 0, 5000, 0.5), TargetBucket("b", 6000, None, 0.5)])
    check_mix(SPEC_MIX)


# --- provenance -------------------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    store = Store.for_workspace(ws)
    assert import_transcripts(store, sorted(FIXTURES.glob("*.json")), status="accepted").ok
    store.close()
    return ws


def test_every_line_carries_its_provenance(workspace: Path, tmp_path: Path):
    out = tmp_path / "data.jsonl"
    result = CliRunner().invoke(main, ["--workspace", str(workspace), "slice", "--out", str(out), "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "pack therapy; slice seed 5" in result.output and "slices per transcript" in result.output
    assert "out of reach for this corpus:" in result.output  # three short fixtures cannot reach 5-15K
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    counter = gemma3_counter()
    transcripts = {
        json.loads(p.read_text(encoding="utf-8"))["id"]: json.loads(p.read_text(encoding="utf-8"))
        for p in FIXTURES.glob("*.json")
    }
    store = Store.for_workspace(workspace)
    with store.session() as s:
        rows = {(r.transcript_id, r.end_exchange): r for r in s.exec(select(TrainingExample)).all()}
    assert len(rows) == len(lines)
    for obj in lines:
        assert list(obj) == ["messages", *PROVENANCE_KEYS]
        assert obj["pack"] == "therapy" and obj["slice_seed"] == 5 and obj["tokenizer"] == counter.name
        assert obj["token_count"] == counter.count_messages(obj["messages"])
        row = rows[(obj["transcript_id"], obj["last_exchange"])]
        assert (row.start_exchange, row.token_count) == (obj["first_exchange"], obj["token_count"])
        # first and last exchange are the ones the messages hold
        assert obj["transcript_id"] in transcripts
        n_exchanges = (len(obj["messages"]) - 1) // 2
        assert obj["last_exchange"] - obj["first_exchange"] + 1 == n_exchanges
    # the training loader still takes the file, messages only
    assert [e.messages for e in read_examples(out)] == [o["messages"] for o in lines]


def test_provenance_keys_are_none_that_trl_reads():
    """TRL's SFTTrainer reads these columns of a dataset row (trainer/sft_trainer.py, `_prepare_dataset` and
    `tokenize_fn`); everything else is carried through `map` and dropped by `remove_unused_columns`."""
    read_by_trl = {
        "messages",
        "conversations",
        "text",
        "prompt",
        "completion",
        "chosen",
        "rejected",
        "tools",
        "chat_template_kwargs",
        "input_ids",
        "labels",
        "attention_mask",
        "assistant_masks",
        "completion_mask",
        "seq_lengths",
        "image",
        "images",
    }
    assert not read_by_trl & set(PROVENANCE_KEYS)


@pytest.mark.slow
def test_the_file_loads_as_a_conversational_dataset(workspace: Path, tmp_path: Path):
    """`datasets`' JSON loader gives every provenance key one type, and TRL sees a conversational dataset."""
    from datasets import Dataset
    from trl.data_utils import is_conversational

    out = tmp_path / "data.jsonl"
    assert CliRunner().invoke(main, ["--workspace", str(workspace), "slice", "--out", str(out)]).exit_code == 0
    dataset = Dataset.from_json(str(out), cache_dir=str(tmp_path / "cache"))
    assert dataset.column_names == ["messages", *PROVENANCE_KEYS]
    assert {k: dataset.features[k].dtype for k in PROVENANCE_KEYS} == {
        "transcript_id": "string",
        "first_exchange": "int64",
        "last_exchange": "int64",
        "token_count": "int64",
        "pack": "string",
        "slice_seed": "int64",
        "tokenizer": "string",
    }
    assert is_conversational(dataset[0])
