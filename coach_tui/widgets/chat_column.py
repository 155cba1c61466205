"""One model's column of the side-by-side chat: its name, its conversation, its reply streaming in.

The conversation is drawn by the single chat's own `ChatLog`, so a column
looks and scrolls like the chat a person knows. A reply is drawn as it
streams, when the screen calls `flush` (every `chat_log.FLUSH_S`, both columns in the
same tick; the pieces that arrive in between are drawn together): every
redraw of a growing reply lays out the whole screen, and two columns
redrawing at every token — or each on a timer of its own, out of step — kept
the event loop busy enough to slow both streams. The status line under it
says what this column's model is doing.

Only the last `SHOWN_TURNS` turns stay on screen, with a line saying how
many came before: Textual lays out every widget of a log at each redraw,
and a reply is a dozen of them (its paragraphs and list items), so after
twenty turns every streamed line cost the event loop about five times what
it did at the first, and the other model's prompt waited for the CPU. Each
column is a whole conversation in the private history: the single chat shows
all of it.
"""

from __future__ import annotations

import time

import anyio
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widget import AwaitMount
from textual.widgets import Static

from actors.chat.chat_format import describe_model
from actors.chat.pair import ColumnReply
from state.chat import ChatMessage

from .chat_log import AssistantSaid, ChatLog, ReplyStream, YouSaid

SHOWN_TURNS = 4
"""Turns of a column kept on screen; the earlier ones are counted in a line above them."""


def shown_from(messages: list[ChatMessage], turns: int | None = None) -> int:
    """The index of the first message to show: the start of the last ``turns`` turns (0 when fewer)."""
    turns = SHOWN_TURNS if turns is None else turns
    starts = [i for i, m in enumerate(messages) if m.role == "user"]
    return starts[-turns] if len(starts) > turns else 0


class EarlierTurns(Static):
    """The line above a column's log when its first turns are not shown."""

    DEFAULT_CSS = "EarlierTurns { color: $text-muted; margin: 1 2 0 2; text-style: italic; }"

    def __init__(self) -> None:
        super().__init__("", markup=False)
        self.turns = 0

    def count(self, turns: int) -> None:
        self.turns = turns
        plural = "" if turns == 1 else "s"
        self.update(f"{turns} earlier turn{plural} · the whole conversation is in the chat (esc, then ctrl+b)")


class ChatColumn(Vertical):
    DEFAULT_CSS = """
    ChatColumn { width: 1fr; height: 1fr; }
    ChatColumn .column-title { height: 1; padding: 0 1; background: $panel; text-style: bold;
                               text-wrap: nowrap; text-overflow: ellipsis; }
    ChatColumn .column-status { height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap;
                                text-overflow: ellipsis; }
    ChatColumn ChatLog { height: 1fr; }
    """

    def __init__(self, model: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.reply: AssistantSaid | None = None
        """The reply being written (None between replies)."""
        self._stream: ReplyStream | None = None
        self._ended = True
        """The reply has been drawn to its end (True between replies)."""
        self.replies_started = 0
        self._said = ""
        self._drawn = anyio.Event()
        self._drawn.set()
        self.first_piece_at: float | None = None
        """`time.perf_counter()` when this reply's first piece reached the column (None before)."""
        self.heard_from = anyio.Event()
        """Set once this reply's model has answered: its first piece, or its end (see `draw_turn`)."""

    def compose(self) -> ComposeResult:
        yield Static(describe_model(self.model), classes="column-title", markup=False)
        yield ChatLog()
        yield Static("", classes="column-status", markup=False)

    @property
    def chat_log(self) -> ChatLog:
        return self.query_one(ChatLog)

    def set_status(self, text: str) -> None:
        self.query_one(".column-status", Static).update(Content(text), layout=False)

    async def show(self, messages: list[ChatMessage]) -> None:
        """The conversation's last turns (see `SHOWN_TURNS`)."""
        start = shown_from(messages)
        await self.chat_log.show(messages[start:])
        await self._count_earlier(sum(1 for m in messages[:start] if m.role == "user"))

    async def _count_earlier(self, more: int) -> None:
        if not more:
            return
        log = self.chat_log
        line = next(iter(log.query(EarlierTurns)), None)
        if line is None:
            line = EarlierTurns()
            await log.mount(line, before=0)
        line.count(line.turns + more)

    async def _trim(self) -> None:
        """Unmount the turns before the last `SHOWN_TURNS` (they stay in the conversation)."""
        log = self.chat_log
        said = [w for w in log.children if isinstance(w, YouSaid)]
        if len(said) <= SHOWN_TURNS:
            return
        keep = said[-SHOWN_TURNS]
        old = []
        for widget in log.children:
            if widget is keep:
                break
            if not isinstance(widget, EarlierTurns):
                old.append(widget)
        await log.remove_children(old)
        await self._count_earlier(len(said) - SHOWN_TURNS)

    def begin_turn(self, text: str) -> None:
        """A new reply, ready to be written into at once, before anything is drawn (see `draw_turn`).

        The screen starts the models between the two: pieces that arrive before the reply is
        drawn wait in its stream for the next `flush`.
        """
        self.replies_started += 1
        self.reply = AssistantSaid("")
        self._stream = ReplyStream(self.reply)
        self._ended = False
        self.first_piece_at = None
        self.heard_from = anyio.Event()
        self._said = text
        self._drawn = anyio.Event()
        self.set_status("thinking…")

    def draw_turn(self) -> AwaitMount:
        """The person's message with the empty reply under it, in one mount (`ChatLog.add_turn`).

        Call `turn_drawn` once the mount has been awaited: a reply that ends before then (a
        model that fails at once) waits for it, so its note lands under the message.
        """
        assert self.reply is not None, "begin_turn first"
        return self.chat_log.add_turn(self._said, self.reply)

    def turn_drawn(self) -> None:
        self._drawn.set()

    async def write(self, piece: str) -> None:
        """Take a piece; it is drawn at the next `flush` with the others that arrived (see the module docstring)."""
        if self._stream is None:
            return
        if not self._stream.written:
            self.first_piece_at = time.perf_counter()
            self.heard_from.set()
            self.set_status("writing…")
        self._stream.write(piece)

    async def flush(self) -> None:
        """Draw what arrived since the last flush (nothing once the reply has ended)."""
        if not self._ended and self._stream is not None:
            await self._stream.flush()

    async def end_reply(self, reply: ColumnReply, *, started: int | None = None) -> None:
        """Stop writing; a failure shows its reason in place of the reply, and a note says how it ended.

        Once per reply: called when the column's model finishes, and again when the turn ends.
        ``started``: the `replies_started` count of the reply meant (a late call ends no later one).
        """
        if not self._drawn.is_set():
            await self._drawn.wait()
        if self._ended or (started is not None and started != self.replies_started):
            return
        self._ended = True
        if self._stream is not None:
            await self._stream.stop()
        if self.reply is not None and not reply.text and reply.failed:
            self.reply.add_class("-error")
            await self.reply.update(f"_{reply.note}_")
        elif reply.note:
            await self.chat_log.add_note(f"{describe_model(reply.model)} · {reply.note}")
        self.reply, self._stream = None, None
        self.set_status(reply.note if reply.stopped or reply.failed else "")
        await self._trim()
