"""A fixup's original and rewrite as a coloured word diff.

Word-level rather than line-level: a coach's reply is a few paragraphs of
prose, and a fixup usually changes a phrase; a line diff would paint whole
paragraphs red and green and hide what actually changed. Two layouts:
inline (deletions struck through in red, insertions in green, in reading
order) and stacked (the original with its deletions marked, then the rewrite
with its insertions marked).
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from rich.console import Group
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")
DELETED = "strike red"
INSERTED = "bold green"


def _tokens(text: str) -> list[str]:
    return _TOKENS.findall(text)


def word_diff(original: str, proposed: str) -> Text:
    """Inline diff: unchanged words plain, removed struck in red, added in green."""
    a, b = _tokens(original), _tokens(proposed)
    out = Text()
    for op, i1, i2, j1, j2 in SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append("".join(a[i1:i2]))
            continue
        if op in ("delete", "replace"):
            out.append("".join(a[i1:i2]), style=DELETED)
        if op in ("insert", "replace"):
            out.append("".join(b[j1:j2]), style=INSERTED)
    return out


def stacked_diff(original: str, proposed: str) -> tuple[Text, Text]:
    """The original with deletions marked, and the rewrite with insertions marked."""
    a, b = _tokens(original), _tokens(proposed)
    left, right = Text(), Text()
    for op, i1, i2, j1, j2 in SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        left.append("".join(a[i1:i2]), style="" if op == "equal" else DELETED)
        right.append("".join(b[j1:j2]), style="" if op == "equal" else INSERTED)
    return left, right


def change_ratio(original: str, proposed: str) -> float:
    """How much of the reply changed (0 = identical, 1 = everything)."""
    return 1.0 - SequenceMatcher(a=_tokens(original), b=_tokens(proposed), autojunk=False).ratio()


class DiffView(Static):
    DEFAULT_CSS = "DiffView { height: auto; padding: 0 1; border-left: outer $warning; }"

    stacked: reactive[bool] = reactive(False)

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._pair: tuple[str, str | None] = ("", "")

    def show(self, original: str, proposed: str | None) -> None:
        self._pair = (original, proposed)
        self._draw()

    def watch_stacked(self) -> None:
        self._draw()

    def _draw(self) -> None:
        original, proposed = self._pair
        if proposed is None:
            body = Group(
                Text("The fixup role found no acceptable rewrite (UNFIXABLE). Original:", style="bold"), Text(original)
            )
        elif self.stacked:
            left, right = stacked_diff(original, proposed)
            body = Group(Text("Original", style="bold red"), left, Text(""), Text("Rewrite", style="bold green"), right)
        else:
            share = change_ratio(original, proposed)
            head = Text("Rewrite ", style="bold")
            head.append(f"({share:.0%} changed; ", style="dim")
            head.append("removed", style=DELETED)
            head.append(" / ", style="dim")
            head.append("added", style=INSERTED)
            head.append(" — v: stacked view)", style="dim")
            body = Group(head, word_diff(original, proposed))
        self.update(body)
