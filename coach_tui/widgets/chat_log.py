"""The conversation, as speech turns: what you wrote, and the assistant's reply streaming in.

Your turns are plain text (never interpreted as markup) on the right-hand
rule; the assistant's are Markdown, written into as tokens arrive through a
`MarkdownStream`, which coalesces fast pieces so the screen keeps up. The
log stays pinned to the end while a reply streams unless you scroll up.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Markdown, Static

from state.chat import ChatMessage


class YouSaid(Static):
    DEFAULT_CSS = """
    YouSaid { border-left: outer $accent; padding: 0 1; margin: 1 0 0 8; background: $accent 8%; }
    """

    def __init__(self, text: str) -> None:
        super().__init__(Content.from_markup("[b $accent]You[/]\n$text", text=text))


class AssistantSaid(Markdown):
    DEFAULT_CSS = """
    AssistantSaid { border-left: outer $success; padding: 0 1; margin: 1 4 0 0; }
    AssistantSaid.-error { border-left: outer $error; }
    """


class TurnNote(Static):
    """A dim line under a reply: how long it took (or that it was stopped)."""

    DEFAULT_CSS = "TurnNote { color: $text-muted; margin: 0 6 0 2; height: 1; }"


class ChatLog(VerticalScroll):
    DEFAULT_CSS = "ChatLog { height: 1fr; padding: 0 1; } ChatLog #chat-empty { color: $text-muted; margin: 1 0; }"

    EMPTY = (
        "Say what's on your mind — a few things at once is fine.\n"
        "The model runs on this computer; nothing you write leaves it."
    )

    async def show(self, messages: list[ChatMessage]) -> None:
        await self.remove_children()
        if not messages:
            await self.mount(Static(self.EMPTY, id="chat-empty"))
            return
        widgets = []
        for m in messages:
            if m.role == "user":
                widgets.append(YouSaid(m.content))
            else:
                widgets.append(AssistantSaid(m.content))
                if m.meta.get("note"):
                    widgets.append(TurnNote(m.meta["note"]))
        await self.mount_all(widgets)
        self.scroll_end(animate=False)

    async def add_user(self, text: str) -> None:
        for empty in self.query("#chat-empty"):
            await empty.remove()
        await self.mount(YouSaid(text))
        self.scroll_end(animate=False)

    async def add_reply(self) -> AssistantSaid:
        reply = AssistantSaid("")
        await self.mount(reply)
        self.anchor()
        return reply

    async def add_note(self, text: str) -> None:
        await self.mount(TurnNote(text))
        self.scroll_end(animate=False)
