"""The training file's line format: `{"messages": [...], provenance…}` per example, compact JSON, each message encoded once.

Provenance. Every line also says where it came from, as extra top-level keys
(`PROVENANCE_KEYS`): the source transcript, its first and last exchange in
the example, the example's token count, the pack, the slice seed and the
tokenizer that counted. TRL's SFTTrainer takes them along: it reads
`messages` (and, if present, `tools` and `chat_template_kwargs`, names not
used here), its tokenizing `map` keeps other columns, and the Trainer's
`remove_unused_columns` (default on) drops every column the model does not
take before batching. `actors.training.data.read_examples` reads `messages`
only. The values are plain strings and integers (the seed below 2**63) so
`datasets`' JSON loader gives each key one Arrow type.

The examples of one transcript share their message dicts, and a long
transcript's early messages appear in every one of its ~20 examples;
encoding each once and joining the pieces turns the (quadratic) JSON work
into string concatenation. No I/O here.
"""

from __future__ import annotations

import json

from .slicing import Example

PROVENANCE_KEYS: tuple[str, ...] = (
    "transcript_id",
    "first_exchange",
    "last_exchange",
    "token_count",
    "pack",
    "slice_seed",
    "tokenizer",
)


class MessageEncoder:
    """JSON for examples, each message encoded once.

    The output is exactly
    `json.dumps({"messages": [...], **provenance}, ensure_ascii=False, separators=(",", ":"))`,
    provenance in `PROVENANCE_KEYS` order; `pack`, `seed` and `tokenizer` are left out when not given.
    """

    def __init__(self, *, pack: str | None = None, seed: int | None = None, tokenizer: str | None = None) -> None:
        self._memo: dict[int, tuple[object, str]] = {}  # id(message) -> (message, its JSON); keeps it alive
        run = {"pack": pack, "slice_seed": seed, "tokenizer": tokenizer}
        self._run = {k: v for k, v in run.items() if v is not None}

    def message(self, message) -> str:
        hit = self._memo.get(id(message))
        if hit is None or hit[0] is not message:
            hit = (message, json.dumps(dict(message), ensure_ascii=False, separators=(",", ":")))
            self._memo[id(message)] = hit
        return hit[1]

    def messages(self, messages) -> str:
        return "[" + ",".join(self.message(m) for m in messages) + "]"

    def provenance(self, example: Example) -> dict[str, object]:
        return {
            "transcript_id": example.transcript_id,
            "first_exchange": example.start_exchange,
            "last_exchange": example.end_exchange,
            "token_count": example.token_count,
            **self._run,
        }

    def line(self, example: Example) -> str:
        """One JSONL line: the spec's `{"messages": [...]}`, then the provenance keys."""
        tail = json.dumps(self.provenance(example), ensure_ascii=False, separators=(",", ":"))
        return '{"messages":' + self.messages(example.messages) + "," + tail[1:]


def example_line(example: Example, encoder: MessageEncoder | None = None) -> str:
    """One JSONL line: the spec's `{"messages": [...]}`, then the provenance keys."""
    return (encoder or MessageEncoder()).line(example)
