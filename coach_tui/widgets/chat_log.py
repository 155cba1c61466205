"""The conversation, as speech turns: what you wrote, and the assistant's reply streaming in.

Your turns are plain text (never interpreted as markup) on the right-hand
rule; the assistant's are Markdown, written into as tokens arrive through a
`ReplyStream`, which draws the pieces that arrived at most every `FLUSH_S`.
Why: every redraw of a growing reply lays out the whole screen (about 5–15 ms
of the event loop's time, far more when the garbage collector runs in it), and
a model writes 20–50 pieces a second. The log stays pinned to the end while a
reply streams unless you scroll up.

Each reply's note names the model that wrote it, and where the conversation
moved to another model a line says so, between the messages where it
happened: the log is drawn from the messages' own records, so reopening a
conversation shows the same thing.
"""

from __future__ import annotations

import anyio
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import AwaitMount
from textual.widgets import Markdown, Static

from actors.chat.chat_format import describe_model
from state.chat import ChatMessage

FLUSH_S = 0.1
"""At most this often a streaming reply is redrawn (the pieces that arrive in between are drawn together)."""


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


class ReplyStream:
    """A reply's pieces as they stream in, appended to its Markdown only when `flush`ed.

    The owner flushes on a timer (`FLUSH_S`): the side-by-side screen flushes both columns in
    one tick and one batch of updates, so two streams cost one layout of the screen, not two
    or more. Appends are made one at a time (`Markdown.append` reads the source it appends to
    when called, so two at once would parse the same text twice).
    """

    def __init__(self, reply: AssistantSaid) -> None:
        self.reply = reply
        self._pending: list[str] = []
        self._lock = anyio.Lock()
        self._stopped = False
        self.written = False
        """Some text has arrived (even if not drawn yet)."""

    def write(self, piece: str) -> None:
        if piece and not self._stopped:
            self._pending.append(piece)
            self.written = True

    async def flush(self) -> None:
        """Draw what arrived since the last flush (after any flush still drawing).

        A reply still being mounted keeps its pieces for the next flush: the turn's model starts
        before its placeholder is drawn (see `ChatLog.add_turn`).
        """
        async with self._lock:
            if not self.reply.is_mounted:
                return
            text, self._pending = "".join(self._pending), []
            if text:
                await self.reply.append(text)

    async def stop(self) -> None:
        """Draw what is left; nothing written after this is drawn."""
        self._stopped = True
        await self.flush()


class TurnNote(Static):
    """A dim line under a reply: its model, how long it took (or that it was stopped)."""

    DEFAULT_CSS = "TurnNote { color: $text-muted; margin: 0 6 0 2; height: 1; }"

    def __init__(self, text: str, **kwargs) -> None:
        super().__init__(text, markup=False, **kwargs)


class ModelSwitch(Static):
    """A line across the log where the conversation moved to another model."""

    DEFAULT_CSS = "ModelSwitch { color: $warning; margin: 1 2 0 2; height: 1; text-style: italic; }"

    def __init__(self, before: str, after: str) -> None:
        super().__init__(f"Model changed: {describe_model(before)} → {describe_model(after)}", markup=False)
        self.before, self.after = before, after


def reply_note(message: ChatMessage) -> str:
    """The line under a saved reply: the model that wrote it, then its own note."""
    parts = [describe_model(message.model)] if message.model else []
    if message.meta.get("note"):
        parts.append(str(message.meta["note"]))
    return " · ".join(parts)


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
        previous = ""
        for m in messages:
            if m.model and previous and m.model != previous:
                widgets.append(ModelSwitch(previous, m.model))
            previous = m.model or previous
            if m.role == "user":
                widgets.append(YouSaid(m.content))
            else:
                widgets.append(AssistantSaid(m.content))
                if note := reply_note(m):
                    widgets.append(TurnNote(note))
        await self.mount_all(widgets)
        self.scroll_end(animate=False)

    def add_switch(self, before: str, after: str) -> None:
        """A model change now (mounted in call order, so it lands before the next message)."""
        for empty in self.query("#chat-empty"):
            empty.remove()
        self.mount(ModelSwitch(before, after))
        self.scroll_end(animate=False)

    async def add_user(self, text: str) -> None:
        for empty in self.query("#chat-empty"):
            await empty.remove()
        await self.mount(YouSaid(text))
        self.scroll_end(animate=False)

    def add_turn(self, text: str, reply: AssistantSaid) -> AwaitMount:
        """The person's message and the (empty) reply under it, mounted in one go.

        Why one mount, not two: every mount into the log restyles the log's children and lays
        out the screen, and with a few turns on screen that is tens of milliseconds of the event
        loop, spent while the models read the prompt. One mount is one layout, whatever the
        history. Not awaited here, so the caller can start the models first.
        """
        for empty in self.query("#chat-empty"):
            empty.remove()
        mounted = self.mount_all([YouSaid(text), reply])
        self.anchor()
        return mounted

    async def add_reply(self) -> AssistantSaid:
        reply = AssistantSaid("")
        await self.mount(reply)
        self.anchor()
        return reply

    async def add_note(self, text: str) -> None:
        await self.mount(TurnNote(text))
        self.scroll_end(animate=False)
