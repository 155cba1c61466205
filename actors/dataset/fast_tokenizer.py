"""A GGUF's SentencePiece tokenizer rebuilt as a Rust BPE (tiktoken's `CoreBPE`), exact and fast.

Why: slicing counts every message of a corpus with the target model's own
tokenizer. llama.cpp's tokenizer is exact but slow from Python (~1 µs a byte,
~40 µs a call), and even memoised (`actors.dataset.gguf_vocab`) exact counting
cost 1.2–2× what a proxy tokenizer (tiktoken's cl100k) takes to read the text
once. This module gives llama.cpp's exact token ids at tiktoken's speed, from
the vocabulary alone: nothing is downloaded, nothing is stored.

Why tiktoken's engine rather than Hugging Face `tokenizers`: both were built
from the same vocabulary and both matched llama.cpp exactly, but a
`tokenizers.Tokenizer` read the benchmark corpus 3–4× slower than cl100k
(normalizer alignments, added-token scanning, `Encoding` objects), while
`CoreBPE` reads it about twice as fast as cl100k.

How the SentencePiece model of llama.cpp ("llama": BPE by piece score, no
pre-tokenizer) maps onto `CoreBPE` (byte-pair merges by rank of the merged
bytes, after a regex split), and why the counts are the same:

- **Merge order.** llama.cpp repeatedly merges the adjacent pair whose
  concatenation is the vocabulary piece with the highest score, leftmost
  first. `CoreBPE` merges the adjacent pair whose concatenation has the lowest
  rank, leftmost first. Ranks follow the scores (highest first), so the
  merges are the same.
- **Characters, not bytes.** llama.cpp starts from UTF-8 characters,
  `CoreBPE` from bytes. Every character piece and the byte prefixes of its
  encoding get the lowest ranks, so all characters form before any other
  merge, and no prefix can join a neighbour (UTF-8 is self-synchronising). A
  character that is no piece falls back to one byte token per byte in
  llama.cpp; here its bytes stay apart or form a prefix, which is counted as
  its bytes (the prefix ranks come first, so `min()` finds them).
- **Special tokens.** llama.cpp cuts control and user-defined tokens out of
  the raw text first, longest first. Gemma's are tags (`<bos>`, `<b>`, …: no
  two can overlap, so a regex scan finds the same ones), one literal
  (`[multimodal]`) and runs of one whitespace character (2–31 spaces, 1–31
  newlines or tabs), which the split regex below cuts the same way:
  greedy from the left.
- **Split.** Between those, the text is split before every space that
  follows a non-space. No piece holds a non-space followed by a space except
  the ones in `unsafe` (Gemma 3: ">▁</"), so no merge crosses such a split; a
  text holding an unsafe piece or a literal ▁ (the same symbol as a space to
  SentencePiece) is left to llama.cpp (`count` returns None).
- **Whole pieces.** `CoreBPE` takes a split piece that is itself a token as
  that token without merging. Merging reaches almost every token from its own
  text, but not all (Gemma 3: " YYYY", " yyyy", " diffformul", " ::::::::"):
  those are found at build time by encoding each token's text followed by a
  character no piece holds, and left out of the ranks. A token that merging
  cannot reach from its own text is never formed inside a longer text either
  (the merges inside its span run as they would alone until one crosses its
  edge), so leaving it out changes nothing else.

The vocabulary must have exactly these shapes (SentencePiece model, no space
prefix, control tokens shaped as tags, user-defined tokens as tags, literals or
those runs); `build` says why when it does not, and the caller keeps llama.cpp.
`tests/test_fast_tokenizer.py` compares token ids with llama.cpp's on the
benchmark corpus and on fuzzed text (special tokens, whitespace runs, emoji,
CJK, byte fallback).

Thread-safe: `CoreBPE` is read-only and releases the GIL while it encodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FastBpe", "Unsupported", "build"]

# llama_token_attr bits (llama.h)
ATTR_UNKNOWN, ATTR_UNUSED, ATTR_NORMAL, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_BYTE = 1, 2, 4, 8, 16, 32
SPACE_PIECE = "\u2581"
TAG = re.compile(r"<[^<>]*>")
# Whitespace runs the split regex cuts out (the character, the shortest run that is a token).
RUNS = {"\n": 1, "\t": 1, " ": 2}
_ESCAPED = {"\n": r"\n", "\t": r"\t", " ": " "}
ENGINE = "tiktoken CoreBPE (Rust), rebuilt from the GGUF vocabulary"


class Unsupported(Exception):
    """The vocabulary has a shape this rebuild does not prove exact for; the reason is the message."""


@dataclass(frozen=True)
class Vocabulary:
    """A GGUF's pieces as llama.cpp reads them: text (▁ still ▁), attribute bits and score per token id."""

    texts: Sequence[str]
    attrs: Sequence[int]
    scores: Sequence[float]
    model: str | None  # tokenizer.ggml.model
    add_space_prefix: bool


class FastBpe:
    """Counts (and tokenizes) text exactly as llama.cpp's `llama_tokenize(..., parse_special=True)`."""

    engine = ENGINE

    def __init__(self, bpe, *, tags, literals, unsafe, rank_ids, prefix_bytes, byte_tokens, unreachable=()):
        self._encode = bpe.encode_ordinary
        self._tags: dict[str, int] = tags  # tag text → token id (control and user-defined)
        self._literals: dict[str, int] = literals  # other user-defined texts, longest first
        self.unsafe: tuple[str, ...] = unsafe  # what sends a text to llama.cpp: a literal ▁, pieces across a split
        self._rank_ids: list[int] = rank_ids  # rank → token id; a byte prefix's rank → minus its length
        self._prefix_bytes: list[bytes] = prefix_bytes  # the byte prefixes of characters: ranks 0, 1, …
        self._prefixes = len(prefix_bytes)
        self._byte_tokens: list[int] = byte_tokens  # byte value → its byte token's id
        self.unreachable: tuple[str, ...] = unreachable  # pieces merging never forms, left out of the ranks

    def count(self, text: str) -> int | None:
        """Tokens in `text` (special tokens parsed, no BOS added); None where only llama.cpp is proven exact."""
        for u in self.unsafe:
            if u in text:
                return None
        if "<" not in text and not any(literal in text for literal in self._literals):
            return self._count_plain(text)
        return sum(1 if special else self._count_plain(part) for part, special in self._fragments(text))

    def _count_plain(self, text: str) -> int:
        ranks = self._encode(text)
        n = len(ranks)
        if n and not text.isascii() and min(ranks) < self._prefixes:  # a character that is no piece: its bytes
            ids, prefixes = self._rank_ids, self._prefixes
            n -= sum(ids[r] + 1 for r in ranks if r < prefixes)  # ids[r] is minus the prefix's length
        return n

    def tokenize(self, text: str) -> list[int] | None:
        """llama.cpp's token ids for `text`, or None as `count` (for the tests: ids say more than counts)."""
        if any(u in text for u in self.unsafe):
            return None
        out: list[int] = []
        for part, special in self._fragments(text):
            if special:
                out.append(self._tags[part] if part in self._tags else self._literals[part])
                continue
            for rank in self._encode(part):
                token = self._rank_ids[rank]
                if token >= 0:
                    out.append(token)
                else:  # the byte prefix of a character that is no piece: one byte token per byte
                    out.extend(self._byte_tokens[b] for b in self._prefix_bytes[rank])
        return out

    def _fragments(self, text: str):
        """(part, is_special) in order: literals cut out longest first, then tags — llama.cpp's partition."""
        parts = [(text, False)]
        for literal in self._literals:
            if literal not in text:
                continue
            cut = []
            for part, special in parts:
                if special or literal not in part:
                    cut.append((part, special))
                    continue
                for i, piece in enumerate(part.split(literal)):
                    if i:
                        cut.append((literal, True))
                    cut.append((piece, False))
            parts = cut
        for part, special in parts:
            if special or "<" not in part:
                if part:
                    yield part, special
                continue
            start = 0
            for match in TAG.finditer(part):
                if match.group() in self._tags:
                    if match.start() > start:
                        yield part[start : match.start()], False
                    yield match.group(), True
                    start = match.end()
            if start < len(part):
                yield part[start:], False


def build(vocab: Vocabulary, *, cache_dir: Path | None = None) -> FastBpe:
    """The `CoreBPE` for `vocab`, or `Unsupported` saying why it would not be exact (the module docstring).

    Finding the pieces merging cannot reach is half the build (~1 s): with `cache_dir`, that list is
    kept there under a hash of everything it depends on, and read back by later builds.
    """
    try:
        from tiktoken._tiktoken import CoreBPE
    except ImportError as err:
        raise Unsupported(f"tiktoken is not installed ({err})") from None
    if vocab.model != "llama":
        raise Unsupported(f"tokenizer model {vocab.model!r} is not SentencePiece ('llama')")
    if vocab.add_space_prefix:
        raise Unsupported("the vocabulary adds a space before each text")
    texts = [t.replace(SPACE_PIECE, " ") for t in vocab.texts]
    attrs = vocab.attrs
    tags, literals, runs = _special_tokens(texts, attrs)

    # Ranks: byte prefixes of characters, then characters, then the whitespace runs ("\n" is one), then
    # single bytes (byte fallback), then every longer piece by score (highest first; ties by id).
    ranks: dict[bytes, int] = {}
    rank_ids: list[int] = []

    def add(data: bytes, token: int) -> None:
        if data not in ranks:
            ranks[data] = len(rank_ids)
            rank_ids.append(token)

    chars = {t: i for i, (t, a) in enumerate(zip(texts, attrs, strict=True)) if a == ATTR_NORMAL and len(t) == 1}
    for char in chars:
        data = char.encode("utf-8")
        for k in range(2, len(data)):
            add(data[:k], -k)
    prefix_bytes = list(ranks)
    for char, token in chars.items():
        add(char.encode("utf-8"), token)
    byte_tokens = {int(t[3:5], 16): i for i, (t, a) in enumerate(zip(texts, attrs, strict=True)) if a & ATTR_BYTE}
    if sorted(byte_tokens) != list(range(256)):
        raise Unsupported(f"the vocabulary has {len(byte_tokens)} byte tokens, not one for each of the 256 bytes")
    for char, lengths in runs.items():
        for length, token in lengths.items():
            add((char * length).encode("utf-8"), token)
    for b in range(256):
        add(bytes([b]), byte_tokens[b])
    # Every longer piece by score, highest first (ties by id). Double spaces, newlines and tabs never reach
    # the merges: llama.cpp cuts them out as special tokens first.
    special = ATTR_CONTROL | ATTR_USER_DEFINED
    keep = np.fromiter(
        (
            i
            for i, (t, a) in enumerate(zip(texts, attrs, strict=True))
            if len(t) > 1 and not a & special and "\n" not in t and "\t" not in t and "  " not in t
        ),
        dtype=np.int64,
    )
    longer = keep[np.lexsort((keep, -np.asarray(vocab.scores, dtype=np.float64)[keep]))].tolist()
    longer_texts = [texts[i] for i in longer]
    normal = {texts[i] for i in longer if attrs[i] == ATTR_NORMAL}  # for the report: byte tokens are not text
    encoded = [t.encode("utf-8") for t in longer_texts]
    if len(set(encoded)) != len(encoded) or not ranks.keys().isdisjoint(encoded):
        raise Unsupported("two pieces of the vocabulary have the same text")
    ranks.update(zip(encoded, range(len(rank_ids), len(rank_ids) + len(encoded)), strict=True))
    rank_ids.extend(longer)
    unsafe = (SPACE_PIECE, *sorted({t for t in longer_texts if _CROSSES_SPLIT.search(t)}))

    pattern = "|".join([*(f"{_ESCAPED[c]}{{{RUNS[c]},{max(runs[c])}}}" for c in RUNS), r" ?[^ \n\t]+", " "])
    key = _fingerprint(texts, attrs, vocab.scores, pattern)
    unreachable = _cached(cache_dir, key, ranks)
    if unreachable is None:
        unreachable = _unreachable(CoreBPE(ranks, {}, pattern), ranks, longer_texts, "".join(texts))
        _store(cache_dir, key, unreachable)
    for text in unreachable:
        del ranks[text.encode("utf-8")]
    bpe = CoreBPE(ranks, {}, pattern)
    return FastBpe(
        bpe,
        tags=tags,
        literals=dict(sorted(literals.items(), key=lambda kv: -len(kv[0]))),
        unsafe=unsafe,
        rank_ids=rank_ids,
        prefix_bytes=prefix_bytes,
        byte_tokens=[byte_tokens[b] for b in range(256)],
        unreachable=tuple(t for t in unreachable if t in normal and not _CROSSES_SPLIT.search(t)),
    )


# A piece holding a non-space then a space: merges could cross the split before that space.
_CROSSES_SPLIT = re.compile("[^ ] ")
# A piece holding text llama.cpp always cuts out as special tokens before merging.
_CUT_OUT = re.compile("[\n\t]|  ")


def _special_tokens(texts: list[str], attrs: Sequence[int]):
    """(tags, literals, whitespace runs) among the control and user-defined tokens; `Unsupported` otherwise."""
    tags: dict[str, int] = {}
    literals: dict[str, int] = {}
    runs: dict[str, dict[int, int]] = {c: {} for c in RUNS}
    for token, (text, attr) in enumerate(zip(texts, attrs, strict=True)):
        if not attr & (ATTR_CONTROL | ATTR_USER_DEFINED) or not text:
            continue
        if TAG.fullmatch(text):
            tags[text] = token
        elif attr & ATTR_CONTROL:
            raise Unsupported(f"control token {text!r} is not shaped as a tag")
        elif len(set(text)) == 1 and text[0] in RUNS:
            runs[text[0]][len(text)] = token
        elif any(c in text for c in "<> \n\t"):
            raise Unsupported(f"user-defined token {text!r} could overlap another special token")
        else:
            literals[text] = token
    for char, lengths in runs.items():
        if not lengths or sorted(lengths) != list(range(RUNS[char], RUNS[char] + len(lengths))):
            raise Unsupported(f"the runs of {char!r} that are tokens are not every length from {RUNS[char]} up")
    for a in literals:
        for b in literals:
            if a != b and (a in b or any(a.endswith(b[:i]) for i in range(1, len(b)))):
                raise Unsupported(f"user-defined tokens {a!r} and {b!r} overlap")
    return tags, literals, runs


def _unreachable(bpe, ranks: dict[bytes, int], candidates: list[str], alphabet: str) -> list[str]:
    """The pieces that merging their own text does not produce, where `CoreBPE` would take the text whole.

    Each is encoded followed by a sentinel character that no piece holds (so it merges with nothing), all
    in one call, separated by newlines (split points of their own): a piece is reached when its text
    gives its own rank followed by the sentinel's tokens. `alphabet` holds every piece's text.
    """
    sentinel = next(chr(c) for c in range(1, 0x110000) if chr(c) not in alphabet and chr(c) not in " \n\t<")
    tail = len(bpe.encode_ordinary(sentinel))
    got = np.asarray(bpe.encode_ordinary("\n".join(t + sentinel for t in candidates)), dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(got == ranks[b"\n"]) + 1))
    if len(starts) != len(candidates):  # pragma: no cover - a candidate held a newline
        raise Unsupported("could not check which pieces merging reaches")
    lengths = np.diff(np.append(starts, len(got) + 1)) - 1  # tokens of each candidate and its sentinel
    expected = np.fromiter((ranks[t.encode("utf-8")] for t in candidates), dtype=np.int64, count=len(candidates))
    reached = (lengths == 1 + tail) & (got[np.minimum(starts, len(got) - 1)] == expected)
    return [candidates[i] for i in np.flatnonzero(~reached).tolist()]


# --- the cache of unreachable pieces ------------------------------------------------------------------

_CACHE_FORMAT = 1


def _fingerprint(texts: list[str], attrs: Sequence[int], scores: Sequence[float], pattern: str) -> str:
    """A hash of all the ranks and the split depend on, and of the engine's version."""
    import tiktoken

    digest = hashlib.sha256(f"{_CACHE_FORMAT}\x00{tiktoken.__version__}\x00{pattern}\x00".encode())
    digest.update("\x00".join(texts).encode("utf-8", "surrogatepass"))
    digest.update(np.asarray(attrs, dtype=np.int64).tobytes())
    digest.update(np.asarray(scores, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _cached(cache_dir: Path | None, key: str, ranks: dict[bytes, int]) -> list[str] | None:
    """The cached list for `key`, or None (no cache, unreadable, or not pieces of these ranks)."""
    if cache_dir is None:
        return None
    try:
        data = json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pieces = data.get("unreachable") if isinstance(data, dict) else None
    if not isinstance(pieces, list) or not all(isinstance(p, str) and p.encode("utf-8") in ranks for p in pieces):
        return None
    return pieces


def _store(cache_dir: Path | None, key: str, unreachable: list[str]) -> None:
    """Write the list atomically; a cache that cannot be written only costs the next build a second."""
    if cache_dir is None:
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"unreachable": unreachable}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, cache_dir / f"{key}.json")
    except OSError:
        pass
