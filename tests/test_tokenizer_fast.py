"""The Rust rebuild of the Gemma 3 tokenizer (`actors.dataset.fast_tokenizer`) gives llama.cpp's exact token ids.

Ids, not only counts, are compared with llama.cpp's own tokenizer (special tokens parsed, as
`count_whole` does): on the benchmark's English-like corpus and on fuzzed text heavy in special
tokens, whitespace runs, emoji, CJK and characters that are no piece (byte fallback).
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

from actors.dataset import fast_tokenizer
from actors.dataset.gguf_vocab import GgufVocab
from actors.dataset.slicing import conversation, slice_transcripts
from actors.dataset.tokens import Gemma3Counter, gemma3_counter, render_gemma3
from tests.slicing_corpus import realistic_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vocab() -> GgufVocab:
    vocab = gemma3_counter().vocab
    if vocab.fast is None:
        pytest.fail(f"the fast tokenizer was not built: {vocab.fast_unavailable}")
    return vocab


def bench_paragraph():
    """The benchmark's English-like text generator (Zipf over 60,000 words), so the corpus is the benchmark's."""
    spec = importlib.util.spec_from_file_location("bench_slicing", ROOT / "benchmarks" / "bench_slicing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.paragraph


def same_ids(vocab: GgufVocab, texts: list[str]) -> None:
    for text in texts:
        expected = vocab.tokenize(text)
        assert vocab.fast.tokenize(text) == expected, repr(text)
        assert vocab.fast.count(text) == len(expected) == vocab.count_whole(text), repr(text)


def test_built_for_the_bundled_vocabulary_and_says_so(vocab):
    assert "tiktoken CoreBPE" in vocab.engine
    assert vocab.fast.unsafe == ("\u2581", "> </")
    # Pieces merging never reaches from their own text; left out of the ranks (the module docstring says why).
    assert set(vocab.fast.unreachable) == {" YYYY", " diffformul", " yyyy", " ::::::::"}
    for text in vocab.fast.unreachable:
        assert vocab.fast.tokenize(text) == vocab.tokenize(text) and len(vocab.tokenize(text)) > 1


def test_ids_equal_llama_cpp_on_the_benchmark_corpus(vocab):
    corpus = realistic_corpus(3, seed=16, text=bench_paragraph())
    system = (ROOT / "config" / "system-prompt.md").read_text(encoding="utf-8")
    texts = [m["content"] for t in corpus for m in conversation(t, system)]
    texts.append(render_gemma3(conversation(corpus[0], system)[:5]))  # a rendered conversation: BOS and turns
    assert sum(map(len, texts)) > 40_000
    same_ids(vocab, texts)


ATOMS = [
    *("the", "The", "week.", "sleep,", "don't", "e.g.", "U.S.", "1,000", "3.14", "?!", "...", "—", "“quoted”"),
    *(" ", "  ", "   ", " " * 31, " " * 32, " " * 33, " " * 70, "\n", "\n\n", "\n" * 31, "\n" * 45, "\t", "\t" * 40),
    *("\r\n", "\u00a0", "\u3000", "**", "- ", "> ", "</", "<", ">", "<b>", "</b>", "<table>", "<start_of_image>"),
    *("<bos>", "<eos>", "<end_of_turn>", "<start_of_turn>", "</s>", "<s>", "<unused7>", "<unused6241>", "<unk>"),
    *("[multimodal]", "[multimodal", "multimodal]", "<0x41>", "<0xFF>", "<notatag>", "<<b>>", "<b <i>"),
    *("🌱", "👋🏽", "👩\u200d👩\u200d👧", "❤️", "🇫🇷", "这周很难", "日本語", "한국어", "Привет", "é", "e\u0301"),
    *("\x00", "\x04", "\x7f", "\ue000", "\U000f0000", "\U0010fffd", "\U0001e800", "\u0378"),  # byte fallback
    *(" YYYY", "YYYY", " yyyy", " diffformul", " ::::::::", ":::::::::"),  # pieces merging cannot reach
]


def fuzz_texts(rng: random.Random, count: int) -> list[str]:
    def one() -> str:
        parts = []
        for _ in range(rng.randint(0, 40)):
            r = rng.random()
            if r < 0.55:
                parts.append(rng.choice(ATOMS))
            elif r < 0.8:
                parts.append(" " + rng.choice(["I", "feel", "tired", "my", "sister", "called", "again", "ok"]))
            else:
                parts.append(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFFF)])))
        return "".join(parts)

    texts = []
    while len(texts) < count:
        text = one()
        if all(u not in text for u in ("\u2581", "> </")) and not any(0xD800 <= ord(c) < 0xE000 for c in text):
            texts.append(text)
    return texts


def test_ids_equal_llama_cpp_on_fuzzed_text(vocab):
    """Special tokens, whitespace runs, emoji, CJK, byte fallback, tag look-alikes: 0 differences."""
    same_ids(vocab, fuzz_texts(random.Random(16), 800))


def test_whitespace_runs_of_every_length(vocab):
    texts = [
        f"a{ws * n}b{ws * n}"
        for ws in (" ", "\n", "\t", " \n", "\n ", "\t ")
        for n in range(1, 70)  # past 31, the longest run that is one token
    ]
    same_ids(vocab, texts)


def test_characters_that_are_no_piece_count_their_bytes(vocab):
    """Byte fallback: a character outside the vocabulary is one byte token per UTF-8 byte."""
    missing = [c for c in ("\ue000", "\U000f0000", "\U0010fffd", "\U0001e800") if len(vocab.tokenize(c)) > 1]
    assert missing, "expected some characters outside Gemma 3's vocabulary"
    for char in missing:
        assert vocab.fast.count(char) == len(char.encode("utf-8")) == len(vocab.tokenize(char))
        same_ids(vocab, [char, f" {char}", f"word{char}word", char * 3, f"{char}é😀{char}"])


def test_texts_it_cannot_prove_go_to_llama_cpp(vocab):
    texts = ["a literal ▁ marker", "<div> </div>", "x > </ y", "plain words"]
    assert [vocab.fast.count(t) is None for t in texts] == [True, True, True, False]
    assert vocab.count_many(texts) == [vocab.count_whole(t) for t in texts]


def test_count_many_is_exact_whichever_path_counts(vocab, monkeypatch):
    texts = [*fuzz_texts(random.Random(7), 200), "a ▁ b", "> </"]
    expected = [vocab.count_whole(t) for t in texts]
    assert vocab.count_many(texts) == expected
    monkeypatch.setattr(vocab, "fast", None)  # the llama.cpp path, memoised
    vocab.clear_cache()
    assert vocab.count_many(texts) == expected


def test_slicing_gives_the_same_examples_on_both_paths(vocab, monkeypatch):
    corpus = realistic_corpus(12, seed=3)
    system = "You are a warm coach.\n\nKeep replies short."
    fast = slice_transcripts(corpus, system, gemma3_counter(), workers=2, max_tokens=3000)
    monkeypatch.setattr(vocab, "fast", None)
    vocab.clear_cache()
    slow = slice_transcripts(corpus, system, gemma3_counter(), workers=1, max_tokens=3000)
    assert fast.trimmed and [
        (e.transcript_id, e.end_exchange, e.start_exchange, e.token_count) for e in fast.examples
    ] == [(e.transcript_id, e.end_exchange, e.start_exchange, e.token_count) for e in slow.examples]


def test_turned_off_it_says_llama_cpp_counts():
    vocab = GgufVocab(gemma3_counter().vocab.path, fast=False)
    assert vocab.fast is None and vocab.engine.startswith("llama.cpp") and "turned off" in vocab.engine
    counter = Gemma3Counter(vocab)
    messages = [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello  you"}]
    assert counter.count_messages(messages) == gemma3_counter().count_messages(messages)


# --- building: what it refuses, and the cache ---------------------------------------------------------


def tiny(**changes) -> fast_tokenizer.Vocabulary:
    """A small SentencePiece-shaped vocabulary: control tags, byte tokens, runs, characters and merges."""
    texts = ["<pad>", "<bos>", "<start_of_turn>"] + [f"<0x{b:02X}>" for b in range(256)]
    attrs = [8, 8, 8] + [32] * 256
    for ws, low in (("\n", 1), ("\t", 1), (" ", 2)):
        for n in range(low, 6):
            texts.append(ws * n)
            attrs.append(16)
    pieces = ["a", "b", "c", "é", "▁", "▁a", "ab", "▁ab", "abc", "bc"]
    texts += pieces
    attrs += [4] * len(pieces)
    fields = {"texts": texts, "attrs": attrs, "scores": [-float(i) for i in range(len(texts))], "model": "llama"}
    fields |= {"add_space_prefix": False, **changes}
    return fast_tokenizer.Vocabulary(**fields)


def test_a_small_vocabulary_builds_and_merges_by_score():
    fast = fast_tokenizer.build(tiny())
    ids = fast.tokenize("ab abc<bos>\n\n  x")
    texts = tiny().texts
    assert [texts[i] for i in ids] == ["ab", "▁ab", "c", "<bos>", "\n\n", "  ", "<0x78>"]
    assert fast.count("ab abc<bos>\n\n  x") == 7


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"model": "gpt2"}, "not SentencePiece"),
        ({"add_space_prefix": True}, "adds a space"),
    ],
)
def test_shapes_it_cannot_prove_are_refused_with_a_reason(changes, reason):
    with pytest.raises(fast_tokenizer.Unsupported, match=reason):
        fast_tokenizer.build(tiny(**changes))


def test_a_control_token_that_is_no_tag_is_refused():
    vocab = tiny()
    texts = list(vocab.texts)
    texts[0] = "PAD"
    with pytest.raises(fast_tokenizer.Unsupported, match="not shaped as a tag"):
        fast_tokenizer.build(tiny(texts=texts))


def test_missing_run_lengths_are_refused():
    vocab = tiny()
    attrs = list(vocab.attrs)
    attrs[vocab.texts.index("\n\n\n")] = 4  # a gap: 1, 2, 4, 5 newlines
    with pytest.raises(fast_tokenizer.Unsupported, match="every length"):
        fast_tokenizer.build(tiny(attrs=attrs))


def test_the_unreachable_list_is_cached_and_a_bad_cache_ignored(tmp_path, monkeypatch):
    first = fast_tokenizer.build(tiny(), cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.json")
    real = fast_tokenizer._unreachable
    monkeypatch.setattr(fast_tokenizer, "_unreachable", lambda *a: pytest.fail("recomputed despite the cache"))
    again = fast_tokenizer.build(tiny(), cache_dir=tmp_path)
    assert again.tokenize("abc ab") == first.tokenize("abc ab")
    calls = []
    monkeypatch.setattr(fast_tokenizer, "_unreachable", lambda *a: calls.append(1) or real(*a))
    cached.write_text(json.dumps({"unreachable": ["not a piece"]}))  # stale or tampered: recomputed
    fast_tokenizer.build(tiny(), cache_dir=tmp_path)
    cached.write_text("{broken")
    fast_tokenizer.build(tiny(), cache_dir=tmp_path)
    assert calls == [1, 1]
