"""A transcript as a conversation: the simulated user and the assistant, told apart at a glance.

User turns are plain text on the left rule in one colour; the assistant's
replies are rendered Markdown (the pack asks for labelled topics and lists)
on a rule of another colour, each with its speaker (the domain pack's
labels) and exchange number. The
view follows a live transcript: new exchanges are appended, never redrawn,
and it stays scrolled to the end unless you scrolled up to read. A reply
being written is drawn as it grows (`stream`), then replaced by the stored
reply once it is complete. The header line (status, exchanges, judging) is
redrawn whenever the transcript moves (`set_header`), so it never describes
an earlier moment than the turns below it.

Each turn is one `Static` holding a Rich renderable (Rich's Markdown for the
assistant), not Textual's `Markdown` widget: that one builds a widget per block,
and every widget on the monitor makes the layout pass that follows each
appended turn slower while a run is writing (measured: ~130 ms per append
under load, against a few ms now).
"""

from __future__ import annotations

import asyncio

from rich.console import Group
from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from state.models import Exchange

MAX_SHOWN = 30
"""Exchanges drawn at once: every widget costs layout time, and the newest are what one follows."""


class UserTurn(Static):
    DEFAULT_CSS = """
    UserTurn { border-left: outer $accent; padding: 0 1; margin: 1 0 0 0; color: $text; }
    """


class AssistantTurn(Static):
    DEFAULT_CSS = """
    AssistantTurn { border-left: outer $success; padding: 0 1; margin: 0 0 0 2; background: $boost; }
    AssistantTurn.-pending { color: $text-muted; }
    """

    def show(self, exchange: Exchange, label: str) -> None:
        self.set_class(not exchange.assistant, "-pending")
        self.update(assistant_renderable(exchange, label))

    def show_partial(self, number: int, text: str, label: str) -> None:
        """The reply so far, while the model writes it."""
        self.set_class(False, "-pending")
        self.update(partial_renderable(number, text, label))


class TranscriptView(VerticalScroll):
    DEFAULT_CSS = """
    TranscriptView { height: 1fr; }
    TranscriptView #intro { color: $text-muted; }
    TranscriptView #transcript-header { text-style: bold; }
    """

    def __init__(self, *, user_label: str = "User", assistant_label: str = "Assistant", **kwargs) -> None:
        super().__init__(**kwargs)
        self.user_label = user_label
        self.assistant_label = assistant_label
        self.transcript_id: str | None = None
        self._shown: dict[int, tuple[bool, str]] = {}
        self._partial: dict[int, str] = {}
        self._lock = asyncio.Lock()  # show and sync await between reading and mounting: one at a time

    def on_mount(self) -> None:
        self.mount(Static("Select a transcript to follow it here.", id="intro"))

    async def show(self, transcript_id: str | None, exchanges: list[Exchange], header: str = "") -> None:
        """Switch to a transcript: redraw from scratch."""
        async with self._lock:
            await self._show(transcript_id, exchanges, header)

    def set_header(self, header: str) -> None:
        """Redraw the header line of the transcript shown (its status and counts moved)."""
        for widget in self.query("#transcript-header"):
            if isinstance(widget, Static):
                widget.update(Content(header), layout=False)

    def stream(self, transcript_id: str, number: int, text: str) -> None:
        """Show the reply to exchange `number` as written so far (ignored once the stored reply is shown)."""
        if transcript_id != self.transcript_id:
            return
        seen = self._shown.get(number)
        if seen is None or seen[0] or self._partial.get(number) == text:
            return
        follow = self.is_vertical_scroll_end or self.max_scroll_y == 0
        self._partial[number] = text
        self.query_one(f"#a{number}", AssistantTurn).show_partial(number, text, self.assistant_label)
        if follow:
            self.scroll_end(animate=False)

    async def sync(self, transcript_id: str, exchanges: list[Exchange]) -> None:
        """Bring the view up to date with the store: append new turns, fill in replies that arrived."""
        async with self._lock:
            if transcript_id == self.transcript_id:  # not a stale read for a transcript no longer shown
                await self._sync(exchanges)

    async def _show(self, transcript_id: str | None, exchanges: list[Exchange], header: str) -> None:
        self.transcript_id = transcript_id
        self._shown.clear()
        self._partial.clear()
        await self.remove_children()
        if transcript_id is None:
            await self.mount(Static("Select a transcript to follow it here.", id="intro"))
            return
        hidden = max(0, len(exchanges) - MAX_SHOWN)
        await self.mount(Static(Content(header or transcript_id), id="transcript-header"))
        if hidden:
            await self.mount(Static(Content.styled(f"… {hidden} earlier exchanges not shown", "dim"), id="intro"))
        if not exchanges:
            await self.mount(Static(Content.styled("No exchanges yet.", "dim"), id="no-exchanges"))
        await self._sync(exchanges[hidden:])
        self.scroll_end(animate=False)

    async def _sync(self, exchanges: list[Exchange]) -> None:
        follow = self.is_vertical_scroll_end or self.max_scroll_y == 0
        for ex in exchanges:
            seen = self._shown.get(ex.number)
            if seen is None:
                for note in self.query("#no-exchanges"):
                    await note.remove()
                await self.mount(UserTurn(user_content(ex.number, ex.user, self.user_label), id=f"u{ex.number}"))
                reply = AssistantTurn(
                    assistant_renderable(ex, self.assistant_label),
                    id=f"a{ex.number}",
                    classes="" if ex.assistant else "-pending",
                )
                await self.mount(reply)
                self._shown[ex.number] = (bool(ex.assistant), ex.assistant)
            elif seen[1] != ex.assistant:  # a reply arrived, or a fixup replaced it
                self.query_one(f"#a{ex.number}", AssistantTurn).show(ex, self.assistant_label)
                self._shown[ex.number] = (bool(ex.assistant), ex.assistant)
                self._partial.pop(ex.number, None)
        if len(self._shown) > MAX_SHOWN * 2:  # a long live transcript: drop the oldest from the screen
            for number in sorted(self._shown)[: len(self._shown) - MAX_SHOWN]:
                for widget in self.query(f"#u{number}, #a{number}"):
                    await widget.remove()
                del self._shown[number]
        if follow:
            self.scroll_end(animate=False)


def user_content(number: int, text: str, label: str = "User") -> Content:
    """The user's words as plain text (never markup) under a coloured label."""
    return Content.from_markup(
        "[b $accent]$label[/] [dim]· $number[/]\n$text", label=label, number=str(number), text=text
    )


def assistant_renderable(ex: Exchange, label: str = "Assistant") -> Group:
    """The assistant's label and reply, the reply rendered as Markdown."""
    head = Text.assemble((label, "bold green"), (f" · {ex.number}", "dim"))
    body = RichMarkdown(ex.assistant) if ex.assistant else Text("writing…", style="italic dim")
    return Group(head, body)


def partial_renderable(number: int, text: str, label: str = "Assistant") -> Group:
    """A reply still being written: what has come so far, and a mark that more is coming."""
    head = Text.assemble((label, "bold green"), (f" · {number}", "dim"), (" · writing…", "italic dim"))
    return Group(head, RichMarkdown(text), Text("▍", style="dim"))
