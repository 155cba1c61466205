"""Training data: the JSONL is validated line by line; the loss mask of a real Gemma 3 example covers exactly
the assistant replies and their end-of-turn markers; long examples are counted, and dropped or truncated from
the front only when asked; the trainer's lengths are the slicer's lengths."""

from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

from pathlib import Path

import pytest

from actors.training.data import (
    IGNORE_INDEX,
    DataError,
    Example,
    OverLengthError,
    last_reply_only,
    prepare_data,
    prepare_examples,
    read_examples,
    set_chat_templates,
    split_examples,
    tokenize_conversation,
    tokenize_example,
)

SYSTEM = "You are a warm, practical self-care coach."
REPLIES = [
    "That sounds exhausting. What usually goes through your mind at night?",
    "It makes sense you feel torn between them. What would a fair boundary look like?",
    "A small start still counts. Which morning this week could you try it?",
]
USERS = [
    "I can't sleep before big meetings.",
    "My sister keeps calling about money and I never know what to say.",
    "I want to start walking in the mornings.",
]


def assistant_spans(tokenizer, ids: list[int], labels: list[int]) -> list[str]:
    """The decoded runs of trained tokens: one string per assistant turn."""
    spans: list[str] = []
    run: list[int] = []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            run.append(token)
        elif run:
            spans.append(tokenizer.decode(run))
            run = []
    if run:
        spans.append(tokenizer.decode(run))
    return spans


def conversation(exchanges: int, *, system: bool = True) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}] if system else []
    for i in range(exchanges):
        messages += [{"role": "user", "content": USERS[i % 3]}, {"role": "assistant", "content": REPLIES[i % 3]}]
    return messages


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


# --- the file --------------------------------------------------------------------------------------


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"messages": conversation(1)},
            "{not json",
            {"messages": [{"role": "assistant", "content": "hi"}]},
            {"messages": [{"role": "user", "content": "only a question"}]},
            {"text": "no messages"},
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": 3}]},
        ],
    )
    with pytest.raises(DataError) as err:
        read_examples(path)
    text = str(err.value)
    assert "5 unusable line(s)" in text
    assert "line 2: not JSON" in text
    assert "line 3: messages[0]: expected role 'user', got 'assistant'" in text
    assert "line 4: no assistant turn" in text
    assert "line 5: 'messages' must be a non-empty list" in text
    assert "line 6: messages[1] needs a text 'content'" in text
    with pytest.raises(DataError, match="not found"):
        read_examples(tmp_path / "missing.jsonl")
    good = read_examples(
        write_jsonl(tmp_path / "ok.jsonl", [{"messages": conversation(2)}, "", {"messages": conversation(1)}])
    )
    assert [e.line for e in good] == [1, 3]


# --- masks and lengths on the real tokenizer ---------------------------------------------------------


@pytest.fixture(scope="module")
def gemma():
    """The bundled Gemma 3 270M's tokenizer with its chat templates (dequantized once into ~/.cache/coach)."""
    from transformers import AutoTokenizer

    from actors.training.models import prepare_bundled_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(prepare_bundled_checkpoint("gemma3-270m"))
    return tokenizer, set_chat_templates(tokenizer, "gemma3", model_type="gemma3_text")


@pytest.mark.slow
def test_the_loss_mask_is_exactly_the_assistant_replies_and_their_end_markers(gemma):
    tokenizer, template = gemma
    messages = conversation(3)
    ids, labels = tokenize_conversation(tokenizer, messages, template)
    # the trained tokens, decoded run by run: one per assistant turn, reply + end of turn, nothing else
    assert assistant_spans(tokenizer, ids, labels) == [f"{r}<end_of_turn>\n" for r in REPLIES]
    # and everything else, the system prompt and the user turns, is masked
    masked = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label == IGNORE_INDEX])
    assert masked.startswith(f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USERS[0]}<end_of_turn>\n<start_of_turn>model\n")
    assert all(u in masked for u in USERS) and not any(r in masked for r in REPLIES)
    # the ids are the model's own template (the inference one TRL's training variant mirrors)
    assert ids == tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[:2]) == ["<bos>", "<start_of_turn>"]


@pytest.mark.slow
def test_trainer_lengths_equal_the_slicers_token_counts(gemma):
    """The slicer's 120K limit (llama.cpp tokenizer, actors.dataset.tokens) and the trainer's max length count alike."""
    from actors.dataset.tokens import gemma3_counter

    tokenizer, template = gemma
    counter = gemma3_counter()
    for messages in (conversation(1), conversation(4), conversation(2, system=False)):
        ids, _ = tokenize_conversation(tokenizer, messages, template)
        assert len(ids) == counter.count_messages(messages)


@pytest.mark.slow
def test_long_examples_are_counted_and_never_truncated_silently(gemma):
    tokenizer, template = gemma
    examples = [Example(1, conversation(1)), Example(2, conversation(6)), Example(3, conversation(2))]
    lengths = [len(tokenize_conversation(tokenizer, e.messages, template)[0]) for e in examples]
    limit = lengths[2]  # the 1- and 2-exchange examples fit, the 6-exchange one does not
    assert lengths[1] > limit >= lengths[0]

    with pytest.raises(OverLengthError) as err:
        prepare_examples(examples, tokenizer, template, limit, None)
    assert err.value.report.over == 1 and err.value.report.over_lines == [2]
    assert "1 example(s) above the limit (lines 2)" in str(err.value)
    assert "--over-length drop" in str(err.value) and "--over-length truncate-front" in str(err.value)

    rows, report = prepare_examples(examples, tokenizer, template, limit, "drop")
    assert len(rows) == 2 and (report.over, report.dropped, report.truncated, report.kept) == (1, 1, 0, 2)
    assert [len(r["input_ids"]) for r in rows] == [lengths[0], lengths[2]]
    assert "dropped: 1" in "\n".join(report.lines())

    rows, report = prepare_examples(examples, tokenizer, template, limit, "truncate-front")
    assert (report.over, report.dropped, report.truncated, report.kept) == (1, 0, 1, 3)
    cut = rows[1]
    assert len(cut["input_ids"]) <= limit
    # the fewest oldest exchanges went, whole; the system prompt stayed (folded into the new first user turn);
    # the remaining replies, the last one above all, are still trained
    full, k = examples[1].messages, report.exchanges_removed
    kept = full[:1] + full[1 + 2 * k :]
    assert 1 <= k < 6
    assert cut["input_ids"].tolist() == tokenize_conversation(tokenizer, kept, template)[0]
    assert len(tokenize_conversation(tokenizer, full[:1] + full[1 + 2 * (k - 1) :], template)[0]) > limit
    assert tokenizer.decode(cut["input_ids"]).startswith(f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USERS[k % 3]}")
    spans = assistant_spans(tokenizer, cut["input_ids"].tolist(), cut["labels"].tolist())
    assert spans == [f"{REPLIES[i % 3]}<end_of_turn>\n" for i in range(k, 6)]
    assert report.total_tokens == sum(len(r["input_ids"]) for r in rows)
    assert report.trained_tokens == sum(int((r["labels"] != IGNORE_INDEX).sum()) for r in rows)

    # an example whose last exchange alone is too long cannot be truncated: it is dropped, and counted
    with pytest.raises(DataError, match="no example is left"):
        prepare_examples([Example(7, conversation(3))], tokenizer, template, 16, "truncate-front")


@pytest.mark.slow
def test_the_chat_template_choice_keeps_another_familys_template(gemma):
    import copy

    tokenizer, _ = gemma
    marked = "{% for m in messages %}{{ m['role'] }}:\n{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}\n{% endgeneration %}{% else %}{{ m['content'] }}\n{% endif %}{% endfor %}"
    own = copy.deepcopy(tokenizer)
    own.chat_template = marked
    assert set_chat_templates(own, "gemma3", model_type="llama") == marked  # --model of another family
    ids, labels = tokenize_conversation(own, conversation(1, system=False), marked)
    assert assistant_spans(own, ids, labels) == [f"{REPLIES[0]}\n"]
    unmarked = copy.deepcopy(tokenizer)
    unmarked.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(DataError, match="no {% generation %} markers"):
        set_chat_templates(unmarked, "model", model_type="llama")


# --- the objective and the validation split (issue 16) --------------------------------------------


def test_last_reply_only_keeps_the_final_labelled_span():
    x = IGNORE_INDEX
    assert last_reply_only([x, 5, 6, x, x, 7, 8, x]) == [x, x, x, x, x, 7, 8, x]
    assert last_reply_only([x, 5, 6]) == [x, 5, 6]
    assert last_reply_only([x, x]) == [x, x]


def slices(tmp_path: Path, transcripts: int, *, with_ids: bool = True) -> Path:
    """Nested slices (1, 2 and 3 exchanges) of `transcripts` conversations, as coach slice writes them."""
    lines = []
    for t in range(transcripts):
        for k in (1, 2, 3):
            messages = conversation(k)
            messages[1] = {"role": "user", "content": f"conversation {t}: {USERS[0]}"}
            lines.append({"messages": messages} | ({"transcript_id": f"t{t}"} if with_ids else {}))
    return write_jsonl(tmp_path / "slices.jsonl", lines)


def test_the_validation_split_keeps_each_transcript_on_one_side_and_is_deterministic(tmp_path):
    for with_ids in (True, False):  # transcript_id, else the first user message
        examples = read_examples(slices(tmp_path, 20, with_ids=with_ids))
        split = split_examples(examples, None, seed=42)  # 20 conversations: the default 0.1
        assert (split.groups, split.validation_groups, split.note) == (20, 2, None)
        train_groups, val_groups = {e.group for e in split.train}, {e.group for e in split.validation}
        assert not train_groups & val_groups and len(val_groups) == 2 and len(split.validation) == 6
        assert len(split.train) + len(split.validation) == len(examples)
        again = split_examples(read_examples(slices(tmp_path, 20, with_ids=with_ids)), None, seed=42)
        assert [e.line for e in again.validation] == [e.line for e in split.validation]
        others = {tuple(e.line for e in split_examples(examples, 0.1, seed=s).validation) for s in range(8)}
        assert len(others) > 1  # the seed chooses
    assert read_examples(slices(tmp_path, 1))[0].group == "transcript:t0"
    # fewer than 10 conversations: no split by default, and a note that says so
    few = split_examples(read_examples(slices(tmp_path, 4)), None, seed=42)
    assert few.validation == [] and "4 conversation(s)" in few.note and "--val-fraction" in few.note
    asked = split_examples(read_examples(slices(tmp_path, 4)), 0.25, seed=42)
    assert asked.validation_groups == 1 and len(asked.validation) == 3
    assert split_examples(read_examples(slices(tmp_path, 20)), 0.0, seed=42).validation == []
    with pytest.raises(DataError, match="at least 2"):
        split_examples(read_examples(slices(tmp_path, 1)), 0.5, seed=42)


@pytest.mark.slow
def test_last_reply_supervises_only_the_final_reply(gemma, tmp_path):
    tokenizer, template = gemma
    messages = conversation(3)
    ids, labels = tokenize_example(tokenizer, messages, template, "last-reply")
    assert ids == tokenize_conversation(tokenizer, messages, template)[0]
    assert assistant_spans(tokenizer, ids, labels) == [f"{REPLIES[2]}<end_of_turn>\n"]
    masked = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label == IGNORE_INDEX])
    assert REPLIES[0] in masked and REPLIES[1] in masked  # the earlier replies are context only
    # the whole pipeline: split by conversation, fewer tokens with loss, validation rows apart
    path = slices(tmp_path, 10)
    every = prepare_data(path, tokenizer, template, 1024, None, loss="all-assistant", val_fraction=0.2)
    last = prepare_data(path, tokenizer, template, 1024, None, loss="last-reply", val_fraction=0.2)
    assert len(last.rows) == 24 and len(last.val_rows) == 6 and last.report.validation == 6
    assert [r["line"] for r in last.val_rows] == [r["line"] for r in every.val_rows]
    assert last.report.trained_tokens < every.report.trained_tokens
    assert any("validation: 6 example(s) from 2 of 10" in line for line in last.report.lines())
