"""Offline self-care chat with a local GGUF model.

The reply streams in token by token from a worker: the model itself runs in
llama.cpp's worker thread (see the backend), so typing, scrolling and
switching screens stay instant while it writes. Each conversation is saved
after every turn to the user's private data folder (`state.chat`), never to
the workspace. Every message the person sends is checked by the pack's safety
net (`actors.safety`, with the person's previous messages as context) before
the model answers. A signal opens the support panel with the lines of the
person's country whatever the model then says, adds the pack's crisis
instruction to that turn's prompt, and is recorded only in the private chat
file; the conversation is never blocked.
"""

from __future__ import annotations

import asyncio

import anyio
import anyio.to_thread
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Input, Markdown, OptionList, Static
from textual.worker import Worker, WorkerState

from actors.backends.errors import BackendError
from actors.chat.engine import ChatEngine
from actors.safety import SafetyNet, load_safety_net
from state.chat import Conversation
from state.errors import CoachError

from ..widgets.app_header import AppHeader
from ..widgets.chat_log import ChatLog
from ..widgets.conversation_list import ConversationList
from ..widgets.crisis_panel import CrisisPanel
from .country_picker import CountryPicker
from .model_picker import ModelPicker


def chat_note(notice: str) -> Content:
    """The pack's own notice (what the assistant is and is not), then what holds in every domain."""
    lead = Content.from_markup("[b]$notice[/b] ", notice=notice) if notice else Content("")
    return lead + Content.from_markup("Private, offline. Crisis? [b]ctrl+r[/b] support lines")


class ChatScreen(Screen):
    BINDINGS = [
        Binding("ctrl+n", "new_conversation", "New chat", priority=True),
        Binding("ctrl+r", "toggle_resources", "Support lines", priority=True),
        Binding("ctrl+l", "choose_country", "Country", show=False, priority=True),
        Binding("ctrl+o", "choose_model", "Model", priority=True),
        Binding("ctrl+b", "toggle_sidebar", "Chats", priority=True),
        Binding("escape", "escape", "Stop/leave", show=False),
        Binding("i", "focus_input", "Write", show=False),
    ]

    generating: reactive[bool] = reactive(False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.steering = ""
        """The safety net's instruction for the reply being written (empty when the message had no signal)."""

    @property
    def safety(self) -> SafetyNet:
        """The pack's net; loaded (with its classifier) in a thread by `on_mount`, then cached per pack."""
        return load_safety_net(self.app.pack)

    def _ready_safety_net(self) -> None:
        """Load the net and run it once, off the event loop (the first check imports the classifier's parts)."""
        self.safety.check("hello")

    @property
    def country(self) -> str:
        """The person's chosen country for support lines, else the one the system locale suggests."""
        return self.app.chat_store.settings().get("country") or self.safety.default_country()

    def compose(self) -> ComposeResult:
        yield AppHeader("chat")
        with Horizontal(id="chat-body"):
            with Vertical(id="chat-sidebar"):
                yield Static("[b]Conversations[/b]  [dim]del: delete[/dim]", id="chat-sidebar-title")
                yield ConversationList(id="conversations")
            with Vertical(id="chat-main"):
                yield Static(chat_note(self.app.pack.manifest.chat_notice), id="chat-note")
                yield ChatLog(id="chat-log")
                yield CrisisPanel("", id="crisis")
                yield Input(placeholder="Write here — enter sends · esc, then 1–5 switches screens", id="chat-input")
                yield Static("", id="chat-status")
        yield Footer()

    async def on_mount(self) -> None:
        self.conversation: Conversation | None = None
        self.engine: ChatEngine | None = None
        # Before anything is sent: a message submitted meanwhile waits in this screen's queue.
        await anyio.to_thread.run_sync(self._ready_safety_net)
        self._refresh_list()
        recent = self.app.chat_store.list()
        if recent:
            await self.open(recent[0].id)
        else:
            await self.new_conversation()
        self.query_one("#chat-input", Input).focus()
        self.warm()

    @work(exclusive=True, group="warm", exit_on_error=False)
    async def warm(self) -> None:
        """Get the model ready in the background (see `ChatEngine.warm`); typing is never blocked."""
        self._status("warming up the model…")
        try:
            engine = self._engine()
            load = getattr(engine.backend, "pool", None) or getattr(engine.backend, "loaded", None)
            if load is not None:
                await self.app.load_model(load)
            await engine.warm()
        except (BackendError, CoachError) as err:
            self.notify(f"The chat model is not available: {err}", severity="error", timeout=10)
        finally:
            if not self.generating:
                self._status()

    # --- conversations --------------------------------------------------------------------

    def _refresh_list(self) -> None:
        current = self.conversation.id if getattr(self, "conversation", None) else None
        self.query_one(ConversationList).show(self.app.chat_store.list(), current)

    async def new_conversation(self) -> None:
        self.conversation = self.app.chat_store.new(model=self.app.chat_model)
        if self.engine is not None:
            self.engine.reset()
        await self.query_one(ChatLog).show([])
        self._show_crisis_for(self.conversation)
        self._refresh_list()

    async def open(self, conversation_id: str) -> None:
        try:
            self.conversation = self.app.chat_store.load(conversation_id)
        except (OSError, ValueError) as err:
            self.notify(f"Could not open that conversation: {err}", severity="error")
            return
        if self.engine is not None:
            self.engine.reset()
        await self.query_one(ChatLog).show(self.conversation.messages)
        self._show_crisis_for(self.conversation)
        self._refresh_list()

    def _show_crisis_for(self, conversation: Conversation | None, *, force: bool = False) -> None:
        """The lines for the person's country and this conversation's signals (e.g. a violence line).

        Reopening a conversation that had crisis signals shows them again.
        """
        categories = [
            c
            for m in (conversation.messages if conversation else ())
            if m.role == "user"
            for c in m.meta.get("crisis", ())
        ]
        panel = self.query_one(CrisisPanel)
        panel.set_text(self.safety.resources(self.country, list(dict.fromkeys(categories))))
        panel.show(bool(categories) or force)

    @on(OptionList.OptionSelected, "#conversations")
    async def _picked(self, event: OptionList.OptionSelected) -> None:
        if self.generating:
            self.notify("Wait for the reply to finish (or esc to stop it).", severity="warning")
            return
        if event.option.id and (self.conversation is None or event.option.id != self.conversation.id):
            await self.open(event.option.id)
        self.query_one("#chat-input", Input).focus()

    @on(ConversationList.Delete)
    async def _delete(self, event: ConversationList.Delete) -> None:
        if self.generating:
            return
        self.app.chat_store.delete(event.conversation_id)
        self.notify("Conversation deleted.", timeout=2)
        if self.conversation is not None and self.conversation.id == event.conversation_id:
            await self.new_conversation()
        else:
            self._refresh_list()

    # --- a turn ---------------------------------------------------------------------------

    @on(Input.Submitted, "#chat-input")
    async def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.generating:
            self.notify("The coach is still writing — esc stops it.", severity="warning")
            return
        event.input.value = ""
        await self.send(text)

    async def send(self, text: str) -> None:
        """Record the message, check it with the safety net, and start the (steered) reply."""
        assert self.conversation is not None
        earlier = [m.content for m in self.conversation.messages if m.role == "user"]
        verdict = self.safety.check(text, history=earlier)
        meta = {}
        if verdict.flagged:
            meta = {"crisis": list(verdict.categories), "crisis_layers": sorted({s.layer for s in verdict.signals})}
        self.steering = self.safety.steering(verdict)
        self.conversation.add("user", text, **meta)
        self.app.chat_store.save(self.conversation)
        if verdict.flagged:
            self._show_crisis_for(self.conversation)
        await self.query_one(ChatLog).add_user(text)
        self._refresh_list()
        self.generating = True
        self.respond()

    def _engine(self) -> ChatEngine:
        if self.engine is None or self.engine.backend is None:
            backend = self.app.make_chat_backend(self.app.chat_model)
            self.engine = ChatEngine(backend, self.app.pack.system_prompt)
        return self.engine

    @work(exclusive=True, group="reply", exit_on_error=False)
    async def respond(self) -> None:
        """Stream the coach's reply into the log; save it (or what came before a stop)."""
        conversation = self.conversation
        log = self.query_one(ChatLog)
        reply = await log.add_reply()
        stream = Markdown.get_stream(reply)
        text, note, failed = "", "", False
        self._status("thinking…")
        try:
            engine = self._engine()
            async for piece in engine.reply(conversation.messages, steering=self.steering):
                if not text:
                    self._status("writing…")
                text += piece
                await stream.write(piece)
            note = engine.last.describe()
        except (BackendError, CoachError) as err:
            failed = True
            note = f"The model could not answer: {err}"
        except asyncio.CancelledError:
            note = "stopped"
            raise
        finally:
            await stream.stop()
            if text.strip():
                conversation.add("assistant", text.strip(), note=note)
                self.app.chat_store.save(conversation)
            elif failed:
                reply.add_class("-error")
                await reply.update(f"_{note}_")
            self.generating = False
            if note:
                await log.add_note(note)
            self._status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "reply" and event.state in (WorkerState.CANCELLED, WorkerState.ERROR):
            self.generating = False
            if event.state == WorkerState.ERROR:
                self.notify(f"Chat failed: {event.worker.error}", severity="error")
            self._status()

    def _status(self, activity: str = "") -> None:
        model = self.app.chat_model
        turns = len(self.conversation.messages) // 2 if getattr(self, "conversation", None) else 0
        parts = [f"model {model}", f"{turns} turn{'' if turns == 1 else 's'}"]
        if activity:
            parts.insert(0, f"[b]{activity}[/b]")
        self.query_one("#chat-status", Static).update(" · ".join(parts), layout=False)

    # --- actions --------------------------------------------------------------------------

    async def action_new_conversation(self) -> None:
        if self.generating:
            self.notify("Wait for the reply to finish (or esc to stop it).", severity="warning")
            return
        await self.new_conversation()
        self.query_one("#chat-input", Input).focus()
        self._status()

    def action_toggle_resources(self) -> None:
        panel = self.query_one(CrisisPanel)
        panel.show(not panel.shown)

    def action_choose_country(self) -> None:
        """Pick the country whose support lines the panel shows; saved with the private chat settings."""

        def chosen(code: str | None) -> None:
            if code:
                self.app.chat_store.save_settings(country=code)
                self.query_one(CrisisPanel).show(True)
                self._show_crisis_for(self.conversation, force=True)
                self.notify(f"Support lines for {code}.", timeout=3)

        names = {code: self.safety.country_name(code) for code in self.safety.countries}
        self.app.push_screen(CountryPicker(names, self.country), chosen)

    def action_escape(self) -> None:
        if self.generating:
            self.workers.cancel_group(self, "reply")
            self.notify("Stopped.", timeout=1.5)
        elif self.focused is self.query_one("#chat-input", Input):
            self.query_one(ChatLog).focus()

    def action_focus_input(self) -> None:
        self.query_one("#chat-input", Input).focus()

    def action_toggle_sidebar(self) -> None:
        """Show or hide the conversation list (shown by default only on wide screens)."""
        sidebar = self.query_one("#chat-sidebar")
        sidebar.toggle_class("-open")
        self.call_after_refresh(self._focus_after_toggle)

    def _focus_after_toggle(self) -> None:
        listing = self.query_one(ConversationList)
        if listing.is_on_screen and listing.region.width:
            listing.focus()
        else:
            self.query_one("#chat-input", Input).focus()

    def action_choose_model(self) -> None:
        def chosen(model: str | None) -> None:
            if model and model != self.app.chat_model:
                self.app.chat_model = model
                self.engine = None
                self.notify(f"Chat model: {model}", timeout=3)
                self.warm()

        self.app.push_screen(ModelPicker(self.app.chat_model, self.app.context.workspace), chosen)
