"""The training file's line format: `{"messages": [...]}` per example, compact JSON, each message encoded once.

The examples of one transcript share their message dicts, and a long
transcript's early messages appear in every one of its ~20 examples;
encoding each once and joining the pieces turns the (quadratic) JSON work
into string concatenation. No I/O here.
"""

from __future__ import annotations

import json

from .slicing import Example


class MessageEncoder:
    """JSON for examples, each message encoded once.

    The output is exactly
    `json.dumps({"messages": [...]}, ensure_ascii=False, separators=(",", ":"))`.
    """

    def __init__(self) -> None:
        self._memo: dict[int, tuple[object, str]] = {}  # id(message) -> (message, its JSON); keeps it alive

    def message(self, message) -> str:
        hit = self._memo.get(id(message))
        if hit is None or hit[0] is not message:
            hit = (message, json.dumps(dict(message), ensure_ascii=False, separators=(",", ":")))
            self._memo[id(message)] = hit
        return hit[1]

    def messages(self, messages) -> str:
        return "[" + ",".join(self.message(m) for m in messages) + "]"

    def line(self, example: Example) -> str:
        """One JSONL line in the spec's training format: `{"messages": [...]}` and nothing else."""
        return '{"messages":' + self.messages(example.messages) + "}"


def example_line(example: Example, encoder: MessageEncoder | None = None) -> str:
    """One JSONL line in the spec's training format: `{"messages": [...]}` and nothing else."""
    return (encoder or MessageEncoder()).line(example)
