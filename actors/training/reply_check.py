"""Is an exported model's reply an answer? The judgement behind `coach export-model`'s "verified".

A model that loads and generates tokens is not yet a model that answers: a
fine-tune that learnt nothing (a few steps on a base model) typically repeats
its system prompt, and a wrong chat format shows as template markers or a turn
it writes for the user. `check_reply` fails a reply that is

* empty, or without a single word;
* holding a chat-template marker (`<start_of_turn>`, `<|im_start|>`, `<eos>`,
  `[INST]`, …), as text or as a special token detokenized into it;
* not in the chat format: a line that opens a turn of its own (`user`,
  `model:`, `Assistant:` …), i.e. the model writing the conversation instead
  of its reply;
* an echo of the user's message or of the system prompt, or mostly a copy of
  them: at least `COPY_SHARE` of the reply's word trigrams (lower-cased words,
  punctuation ignored) occur in the prompt's, or, for a reply of one or two
  words, those words in a row in the prompt;
* cut off before it began: generation ended for another reason than the end
  of the turn or the token limit.

Pure: no model, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .chat_family import OTHER_TEMPLATE_TOKENS

COPY_SHARE = 0.5
"""A reply whose word trigrams are at least this share copied from the prompt is mostly a copy."""
NGRAM = 3
ROLES = ("user", "model", "assistant", "system", "human")
_ROLE_LINE = re.compile(rf"^\s*(?:{'|'.join(ROLES)})\s*(?::.*)?$", re.IGNORECASE | re.MULTILINE)
_WORD = re.compile(r"\w+")
OK_FINISH = ("stop", "length")


@dataclass(frozen=True)
class ReplyCheck:
    ok: bool
    reason: str
    """Why the reply fails ("" when it passes)."""
    copied_share: float = 0.0
    """The share of the reply's word trigrams found in the system prompt and the message."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def copied_share(reply: str, source: str, n: int = NGRAM) -> float:
    """The share of the reply's word n-grams that occur in `source` (1.0 when a short reply is a run of its words)."""
    said, seen = words(reply), words(source)
    if not said:
        return 0.0
    if len(said) < n:
        return 1.0 if any(seen[i : i + len(said)] == said for i in range(len(seen) - len(said) + 1)) else 0.0
    grams = [tuple(said[i : i + n]) for i in range(len(said) - n + 1)]
    source_grams = {tuple(seen[i : i + n]) for i in range(len(seen) - n + 1)}
    return sum(g in source_grams for g in grams) / len(grams)


def check_reply(
    reply: str,
    *,
    prompt: str,
    system_prompt: str,
    template_tokens: Iterable[str] = (),
    finish_reason: str | None = "stop",
) -> ReplyCheck:
    """Whether `reply` (what the model said to `prompt` under `system_prompt`) is an answer; if not, why."""
    text = reply.strip()
    if finish_reason not in OK_FINISH:
        return ReplyCheck(False, f"generation ended with {finish_reason!r} instead of the end of the turn")
    if not text:
        return ReplyCheck(False, "the reply is empty")
    markers = [t for t in dict.fromkeys([*template_tokens, *OTHER_TEMPLATE_TOKENS]) if t and t in text]
    if markers:
        return ReplyCheck(False, f"the reply contains chat-template tokens ({', '.join(markers)})")
    role_line = _ROLE_LINE.search(text)
    if role_line:
        return ReplyCheck(
            False, f"the reply is not in the chat format: it opens a turn of its own ({role_line.group(0).strip()!r})"
        )
    if not words(text):
        return ReplyCheck(False, "the reply has no words")
    said = words(text)
    for source, what in ((system_prompt, "the system prompt"), (prompt, "the user's message")):
        if said == words(source):
            return ReplyCheck(False, f"the reply echoes {what}", 1.0)
    from_system = copied_share(text, system_prompt)
    from_prompt = copied_share(text, prompt)
    both = max(from_system, from_prompt, copied_share(text, f"{system_prompt}\n{prompt}"))
    if both >= COPY_SHARE:
        if from_system >= COPY_SHARE:
            what = "the system prompt"
        elif from_prompt >= COPY_SHARE:
            what = "the user's message"
        else:
            what = "the system prompt and the user's message"
        return ReplyCheck(False, f"the reply is mostly a copy of {what} ({both:.0%} of its word trigrams)", both)
    return ReplyCheck(True, "", both)
