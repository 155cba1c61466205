"""Side by side: one message to two models, such as the base and the fine-tuned, in two streaming columns.

This is why a person fine-tunes: to see their model and the one it came from
answer the same words. The screen only draws; the turn is the use case's
(`actors.chat.pair`): the crisis net reads the message once, both
conversations record it, and both replies stream at the same time, each into
its column. Esc stops both (what each had written is kept, marked
"stopped"); Esc again goes back to the single chat.

Each column is a conversation of its own in the private history, linked to
the other: reopening either one in the chat and pressing the side-by-side key
again brings the pair back. Models are built as the single chat builds them
(a GGUF is prompted in the format `chat_format` decides, before it loads) and
warmed while the person types, both at once.

A turn asks the models first and draws second: laying out the screen costs more
the more turns are on it, and a prompt that waited behind it (five trips
between the event loop and a worker thread, three layouts) reached the model
later the longer the conversation — the time to the first token at turn 20 was
1.8× turn 1's though llama.cpp read only the newest message. Now the prompt is
handed over within a trip, and the message drawn (one mount per column) while
the models read it.

While the replies stream, one timer draws what both columns received since
its last tick (`chat_log.FLUSH_S`): two columns drawn in the same tick cost one
layout of the screen, two columns on timers of their own cost two.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import anyio
import anyio.to_thread
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from actors.backends.errors import BackendError
from actors.chat.chat_format import describe_model
from actors.chat.engine import ChatEngine
from actors.chat.models import export_records
from actors.chat.pair import ChatPair, ColumnReply, PairTurn, engine_for, prompt_format
from state.errors import CoachError

from ..widgets.app_header import AppHeader
from ..widgets.chat_column import ChatColumn
from ..widgets.chat_log import FLUSH_S
from ..widgets.crisis_panel import CrisisPanel

DRAW_WAIT_S = 0.4
"""The longest a sent message waits to be drawn for both models to answer (usually 0.15–0.3 s)."""


class SideBySideScreen(Screen):
    DEFAULT_CSS = """
    SideBySideScreen #pair-columns { height: 1fr; }
    SideBySideScreen #pair-columns ChatColumn:first-of-type { border-right: vkey $foreground 20%; }
    SideBySideScreen #pair-note { height: 1; padding: 0 1; background: $primary 15%; text-wrap: nowrap;
                                  text-overflow: ellipsis; }
    SideBySideScreen #pair-input { margin: 0 1; }
    SideBySideScreen #pair-status { height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap;
                                    text-overflow: ellipsis; }
    """
    BINDINGS = [
        Binding("escape", "escape", "Stop/leave", tooltip="stop both replies; again: back to the single chat"),
        Binding("ctrl+r", "toggle_resources", "Support lines", priority=True),
        Binding("i", "focus_input", "Write", show=False),
    ]

    generating: reactive[bool] = reactive(False)

    def __init__(self, pair: ChatPair, *, typed: str = "", send_typed: bool = False) -> None:
        super().__init__()
        self.pair = pair
        self.engines: list[ChatEngine] | None = None
        self._engine_lock = anyio.Lock()
        self._reply_worker: Worker | None = None
        self._flusher: Timer | None = None
        self._columns: tuple[ChatColumn, ...] = ()
        self.warmed = False
        """Both models' warm-up has ended (ready, or each column said why not)."""
        self._typed, self._send_typed = typed, send_typed
        """Keys typed while the model picker was closing: they belong in this screen's input."""

    @property
    def columns(self) -> list[ChatColumn]:
        """The two columns, left then right (kept, not queried: the flush timer asks ten times a second)."""
        return list(self._columns)

    def compose(self) -> ComposeResult:
        yield AppHeader("chat")
        left, right = self.pair.models
        note = Content.from_markup(
            "[b]Side by side[/b] · esc stops both, again leaves · crisis? [b]ctrl+r[/b] support lines"
        )
        yield Static(note, id="pair-note")
        self._columns = (ChatColumn(left, id="column-left"), ChatColumn(right, id="column-right"))
        with Horizontal(id="pair-columns"):
            yield from self._columns
        yield CrisisPanel("", id="crisis")
        yield Input(placeholder="Write here — enter sends to both models", id="pair-input")
        yield Static("", id="pair-status")
        yield Footer()

    async def on_mount(self) -> None:
        for column, conversation in zip(self.columns, self.pair.conversations, strict=True):
            await column.show(conversation.messages)
        self._show_crisis()
        self._flusher = self.set_interval(FLUSH_S, self._flush_columns, pause=True)
        box = self.query_one("#pair-input", Input)
        box.focus()
        self._status()
        self.warm()
        if self._typed or self._send_typed:
            box.insert_text_at_cursor(self._typed)
            if self._send_typed:
                self.call_later(box.action_submit)

    # --- the models -----------------------------------------------------------------------

    async def _ready_engines(self) -> list[ChatEngine]:
        """One engine per column, built once (a GGUF's format is read off the loop)."""
        async with self._engine_lock:
            if self.engines is None:
                exports = export_records(self.app.store)
                engines = []
                for conversation in self.pair.conversations:
                    fmt = await anyio.to_thread.run_sync(prompt_format, conversation.model, exports)
                    backend = self.app.make_chat_backend(conversation.model)
                    engines.append(engine_for(backend, conversation.settings, self.app.pack.system_prompt, fmt))
                self.engines = engines
            return self.engines

    @work(exclusive=True, group="pair-warm", exit_on_error=False)
    async def warm(self) -> None:
        """Load both models and read their system prompts at the same time, while the person types."""
        self._status("warming up both models…")
        try:
            engines = await self._ready_engines()
            async with anyio.create_task_group() as group:
                for column, engine in zip(self.columns, engines, strict=True):
                    group.start_soon(self._warm_one, column, engine)
        except (BackendError, CoachError) as err:
            self.notify(f"The models are not available: {err}", severity="error", timeout=12)
        finally:
            if not self.generating:
                self._status()
            self.warmed = True

    async def _warm_one(self, column: ChatColumn, engine: ChatEngine) -> None:
        try:
            load = getattr(engine.backend, "pool", None) or getattr(engine.backend, "loaded", None)
            if load is not None:
                await self.app.load_model(load)
            await engine.warm()
        except (BackendError, CoachError) as err:
            column.set_status(f"not available: {err}")

    # --- a turn ---------------------------------------------------------------------------

    @on(Input.Submitted, "#pair-input")
    async def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.generating:
            self.notify("The models are still writing — esc stops them.", severity="warning")
            return
        event.input.value = ""
        await self.send(text)

    async def send(self, text: str) -> None:
        """Record the message in both conversations (read once by the crisis net), start both replies, draw.

        The message is drawn when both models have answered (their first pieces, drawn with it), or
        after `DRAW_WAIT_S`; each column says "thinking…" at once. Drawing lays out the whole
        screen, which costs more the more turns are on it: drawn while the models read the prompt,
        it took the cores from them, and by turn 20 the first token came 1.5–2× later than at
        turn 1 on two cores. Drawn after, the first token's time grows only with the model's own
        work (a longer context to attend to).
        """
        turn = self.pair.send(text)
        self.generating = True  # from the moment the message is recorded until both replies are drawn
        for column in self.columns:
            column.begin_turn(text)
        self._reply_worker = self.respond(turn)
        if turn.flagged:
            self._show_crisis()  # the support lines come first, whatever the models write
        with anyio.move_on_after(DRAW_WAIT_S):  # a model that is slow to start does not hold the screen
            for column in self.columns:
                await column.heard_from.wait()
        mounts = [column.draw_turn() for column in self.columns]  # both before either is awaited: one layout
        for mounted in mounts:
            await mounted
        for column in self.columns:
            column.turn_drawn()

    @work(exclusive=True, group="pair-reply", exit_on_error=False)
    async def respond(self, turn: PairTurn) -> None:
        """Both replies at once, each streaming into its column (begun by `send`); saved as each ended."""
        columns = self.columns
        self._streaming(True)
        self._status("thinking…")

        async def write(index: int, piece: str) -> None:
            await columns[index].write(piece)
            if not writing:
                writing.append(index)
                self._status("writing…")

        def ended(index: int, reply: ColumnReply) -> None:
            """A column whose model has finished says so now, while the other may still be writing."""
            column = columns[index]
            column.heard_from.set()
            self.call_later(partial(column.end_reply, reply, started=column.replies_started))

        writing: list[int] = []
        try:
            engines = await self._ready_engines()
            replies = await self.pair.reply(engines, turn, write, ended)
        except (BackendError, CoachError) as err:  # a model that cannot even be built: both say why
            self.pair.clear_stop()
            note = f"The model could not answer: {err}"
            replies = tuple(ColumnReply(m, note=note, failed=True) for m in self.pair.models)
        self._streaming(False)
        for column, reply in zip(columns, replies, strict=True):
            await column.end_reply(reply)
        # Only now, with no await between: a message sent meanwhile waited rather than cut this
        # turn's drawing short, and an esc pressed meanwhile stops nothing of the next turn.
        self.pair.clear_stop()
        self.generating = False
        self._status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._reply_worker:
            return
        if event.state in (WorkerState.CANCELLED, WorkerState.ERROR):
            self._streaming(False)
            self.pair.clear_stop()
            self.generating = False
            if event.state == WorkerState.ERROR:
                self.notify(f"Side by side failed: {event.worker.error}", severity="error")
            self._status()

    def _streaming(self, on: bool) -> None:
        """Start (or stop) drawing both columns' new pieces every `FLUSH_S`."""
        if self._flusher is None:
            return
        if on:
            self._flusher.resume()
        else:
            self._flusher.pause()

    async def _flush_columns(self) -> None:
        """Both columns' pieces since the last tick, drawn in one batch (one layout, not two)."""
        with self.app.batch_update():
            for column in self.columns:
                await column.flush()

    # --- what is shown --------------------------------------------------------------------

    def _show_crisis(self, *, force: bool = False) -> None:
        """The lines of the person's country for the signals their messages carried (in both columns)."""
        chat_store = self.app.chat_store
        safety = self.pair.safety
        country = chat_store.settings().get("country") or safety.default_country()
        categories = self.pair.crisis_categories()
        panel = self.query_one(CrisisPanel)
        panel.set_text(safety.resources(country, categories))
        panel.show(bool(categories) or force)

    def _status(self, activity: str = "") -> None:
        left, right = self.pair.models
        turns = self.pair.turns
        parts = [Content.styled(activity, "bold")] if activity else []
        parts.append(Content(f"{describe_model(left)} | {describe_model(right)}"))
        parts.append(Content(f"{turns} turn{'' if turns == 1 else 's'}"))
        self.query_one("#pair-status", Static).update(Content(" · ").join(parts), layout=False)

    # --- actions --------------------------------------------------------------------------

    def action_escape(self) -> None:
        if self.generating:
            self.pair.stop()
            self.notify("Stopped both.", timeout=1.5)
        else:
            self.dismiss(None)

    def action_toggle_resources(self) -> None:
        panel = self.query_one(CrisisPanel)
        panel.show(not panel.shown)

    def action_focus_input(self) -> None:
        self.query_one("#pair-input", Input).focus()


def open_side_by_side(chat, on_close: Callable[[], object] | None = None) -> None:
    """From the single chat: reopen the open conversation's pair, else pick a second model for a new one.

    ``chat`` is the `ChatScreen`; the new pair's first column is its model, and both columns take
    its conversation's settings (system prompt, temperature…), so the two models are compared on
    the same terms.
    """
    from actors.chat.models import load_server_config

    from .model_picker import ModelPicker

    app = chat.app

    def closed(_: object = None) -> None:
        if on_close is not None:
            on_close()

    conversation = chat.conversation
    if conversation is not None and conversation.pair:
        pair = ChatPair.reopen(app.chat_store, chat.safety, conversation.id)
        if pair is not None:
            app.push_screen(SideBySideScreen(pair), closed)
            return
    first = chat.model
    settings = dict(conversation.settings) if conversation is not None else {}
    typed: list[str] = []
    submit: list[bool] = []

    def chosen(model: str | None) -> None:
        if not model:
            return
        pair = ChatPair.start(app.chat_store, chat.safety, (first, model), settings)
        app.push_screen(SideBySideScreen(pair, typed="".join(typed), send_typed=bool(submit)), closed)

    def on_typed(text: str, send: bool) -> None:
        typed.append(text)
        if send:
            submit.append(True)

    run_config, problem = load_server_config(app.config_path)
    if problem:
        app.notify(f"Server models are not offered: {problem}", severity="warning", timeout=8)
    picker = ModelPicker(
        first,
        app.context.workspace,
        exports=export_records(app.store),
        run_config=run_config,
        on_typed=on_typed,
        title=f"Side by side with {describe_model(first)}: choose the second model",
    )
    app.push_screen(picker, chosen)
