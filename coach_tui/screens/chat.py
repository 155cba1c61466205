"""Offline self-care chat with a local GGUF model (or a run config's server).

The reply streams in token by token from a worker: the model itself runs in
llama.cpp's worker thread (see the backend), so typing, scrolling and
switching screens stay instant while it writes. Each conversation is saved
after every turn to the user's private data folder (`state.chat`), never to
the workspace. Every message the person sends is checked by the pack's safety
net (`actors.safety`, with the person's previous messages as context) before
the model answers. A signal opens the support panel with the lines of the
person's country whatever the model then says, adds the pack's crisis
instruction to that turn's prompt, and is recorded only in the private chat
file; the conversation is never blocked. This holds for every way a reply
comes about: a new message, an edited one, a regenerated reply, any model.

The model belongs to the conversation: reopening it (after a restart too)
uses the model it was on, every message records its model, and choosing
another model mid-conversation moves the conversation to it and says so in
the log. A GGUF is prompted in the chat format `actors.chat.chat_format`
decides before it loads (its own template, else its training run's or
Modelfile's, else a clear refusal).
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
from textual.widgets import Footer, Input, OptionList, Static
from textual.worker import Worker, WorkerState

from actors import heap
from actors.backends.bundled import BUNDLED
from actors.backends.errors import BackendError
from actors.chat.chat_format import PromptFormat, describe_model, is_server_model, resolve_chat_format
from actors.chat.engine import REPLY_MAX_TOKENS, ChatEngine, tailored
from actors.chat.markdown import export_markdown
from actors.chat.models import export_records, load_server_config
from actors.chat.settings import DEFAULT_TEMPERATURE, effective
from actors.safety import SafetyNet, load_safety_net
from state.chat import Conversation
from state.errors import CoachError

from ..widgets.app_header import AppHeader
from ..widgets.chat_log import FLUSH_S, ChatLog, ReplyStream
from ..widgets.conversation_list import ConversationList
from ..widgets.crisis_panel import CrisisPanel
from .chat_dialogs import ChatSettingsDialog, RenameDialog, SearchDialog
from .confirm import Confirm
from .country_picker import CountryPicker
from .model_picker import ModelPicker
from .side_by_side import open_side_by_side


def chat_note(notice: str) -> Content:
    """The pack's own notice (what the assistant is and is not), then what holds in every domain."""
    lead = Content.from_markup("[b]$notice[/b] ", notice=notice) if notice else Content("")
    return lead + Content.from_markup("Private, offline. Crisis? [b]ctrl+r[/b] support lines")


class ChatScreen(Screen):
    BINDINGS = [
        Binding("ctrl+n", "new_conversation", "New chat", priority=True),
        Binding("ctrl+r", "toggle_resources", "Support lines", priority=True),
        Binding("ctrl+l", "choose_country", "Country", show=False, priority=True),
        Binding(
            "ctrl+o",
            "choose_model",
            "Model",
            priority=True,
            tooltip="choose the model: bundled, exported, server, any GGUF",
        ),
        Binding("ctrl+b", "toggle_sidebar", "Chats", priority=True),
        Binding(
            "ctrl+y",
            "side_by_side",
            "Side by side",
            priority=True,
            tooltip="side by side: one message to two models in two columns (this chat's pair, else pick the second)",
        ),
        Binding("ctrl+f", "search", "Search", priority=True, tooltip="search every conversation's words"),
        Binding("ctrl+g", "regenerate", "Again", show=False, priority=True, tooltip="write the last reply again"),
        Binding("up", "edit_last", "Edit", show=False, tooltip="in the empty input: edit your last message"),
        Binding(
            "ctrl+t",
            "settings",
            "Settings",
            show=False,
            priority=True,
            tooltip="this chat's system prompt, temperature, max tokens, context length",
        ),
        Binding("f2", "rename", "Rename", show=False, tooltip="rename the conversation"),
        Binding("ctrl+s", "export", "Export", show=False, priority=True, tooltip="export the conversation to Markdown"),
        Binding("escape", "escape", "Stop/leave", show=False),
        Binding("i", "focus_input", "Write", show=False),
    ]

    generating: reactive[bool] = reactive(False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.steering = ""
        """The safety net's instruction for the reply being written (empty when the message had no signal)."""
        self.conversation: Conversation | None = None
        self.engine: ChatEngine | None = None
        self.engine_for: tuple[str, int | None] | None = None
        """(model, context length) the engine was built for: another of either needs another engine."""
        self.prompt_format: PromptFormat | None = None
        self.editing: int | None = None
        """Index of the person's last message while they edit it (enter replaces it and what followed)."""
        self._engine_lock = anyio.Lock()
        self._reply_worker: Worker | None = None
        self._started = False
        """`on_mount` has finished (and started the first warm-up)."""
        self.warmed = False
        """The latest warm-up has ended (the model is ready, or said why not): nothing more arrives by itself."""
        self._warm_round = 0

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

    @property
    def model(self) -> str:
        """The model of the open conversation (the app's current model before one is open)."""
        if self.conversation is not None and self.conversation.model:
            return self.conversation.model
        return self.app.chat_model

    def compose(self) -> ComposeResult:
        yield AppHeader("chat")
        with Horizontal(id="chat-body"):
            with Vertical(id="chat-sidebar"):
                yield Static("[b]Conversations[/b]  [dim]del · f2[/dim]", id="chat-sidebar-title")
                yield ConversationList(id="conversations")
            with Vertical(id="chat-main"):
                yield Static(chat_note(self.app.pack.manifest.chat_notice), id="chat-note")
                yield ChatLog(id="chat-log")
                yield CrisisPanel("", id="crisis")
                yield Input(placeholder="Write here — enter sends · esc, then 1–6 switches screens", id="chat-input")
                yield Static("", id="chat-status")
        yield Footer()

    async def on_mount(self) -> None:
        # Before anything is sent: a message submitted meanwhile waits in this screen's queue.
        # `coach` loads the net as it starts (`preload_safety_net`), so this wait is usually over.
        self._status("loading the crisis net…")
        await anyio.to_thread.run_sync(self._ready_safety_net)
        heap.settle()  # the net's patterns and classifier live as long as the app: out of the collector's sight
        self._refresh_list()
        recent = self.app.chat_store.list()
        if recent:
            await self.open(recent[0].id)
        else:
            await self.new_conversation()
        self.query_one("#chat-input", Input).focus()
        self._started = True
        self.warm()

    # --- the model ------------------------------------------------------------------------

    def _prompt_format(self, model: str) -> PromptFormat | None:
        """A GGUF path's chat format (blocking: reads its header); None for bundled and server models."""
        if model in BUNDLED or is_server_model(model):
            return None
        return resolve_chat_format(model, exports=export_records(self.app.store))

    async def _ready_engine(self) -> ChatEngine:
        """The engine for the open conversation's model and settings, built (off the loop) when either changed."""
        async with self._engine_lock:
            assert self.conversation is not None
            model = self.model
            settings = effective(self.conversation.settings, self.app.pack.system_prompt)
            wanted = (model, settings.context_length)
            if self.engine is None or self.engine_for != wanted:
                prompt_format = await anyio.to_thread.run_sync(self._prompt_format, model)
                backend = self.app.make_chat_backend(model)
                backend = tailored(
                    backend,
                    chat_format=prompt_format.chat_format if prompt_format else None,
                    n_ctx=settings.context_length,
                )
                self.engine = ChatEngine(
                    backend, settings.system_prompt, stops=prompt_format.stops if prompt_format else ()
                )
                self.engine_for, self.prompt_format = wanted, prompt_format
            engine = self.engine
            engine.system_prompt = settings.system_prompt
            engine.temperature = settings.temperature
            engine.max_tokens = settings.max_tokens
            engine.context_length = settings.context_length
            return engine

    @work(exclusive=True, group="warm", exit_on_error=False)
    async def warm(self) -> None:
        """Get the model ready in the background (see `ChatEngine.warm`); typing is never blocked."""
        self.warmed = False
        self._warm_round += 1
        round_ = self._warm_round
        self._status("warming up the model…")
        try:
            engine = await self._ready_engine()
            load = getattr(engine.backend, "pool", None) or getattr(engine.backend, "loaded", None)
            if load is not None:
                await self.app.load_model(load)
            await engine.warm()
            if self.prompt_format is not None:
                self.notify(f"Chat format: {self.prompt_format.source}.", timeout=4)
        except (BackendError, CoachError) as err:
            self.notify(f"The chat model is not available: {err}", severity="error", timeout=12)
        finally:
            if not self.generating:
                self._status()
            if round_ == self._warm_round:  # not when a newer warm-up took over from this one
                self.warmed = True

    # --- conversations --------------------------------------------------------------------

    def _refresh_list(self) -> None:
        current = self.conversation.id if self.conversation is not None else None
        self.query_one(ConversationList).show(self.app.chat_store.list(), current)

    async def new_conversation(self) -> None:
        self.conversation = self.app.chat_store.new(model=self.app.chat_model)
        self.editing = None
        if self.engine is not None:
            self.engine.reset()
        await self.query_one(ChatLog).show([])
        self._show_crisis_for(self.conversation)
        self._refresh_list()
        self._status()

    async def open(self, conversation_id: str) -> None:
        try:
            conversation = self.app.chat_store.load(conversation_id)
        except (OSError, ValueError, KeyError, TypeError) as err:
            self.notify(f"Could not open that conversation: {err}", severity="error")
            return
        self.conversation = conversation
        self.editing = None
        if self.engine is not None:
            self.engine.reset()
        if not conversation.model:
            conversation.model = self.app.chat_model
        if conversation.model != self.app.chat_model:
            # The conversation's own model, not whichever was used last (after a restart too).
            self.app.chat_model = conversation.model
            if self._started:
                self.warm()
        await self.query_one(ChatLog).show(conversation.messages)
        self._show_crisis_for(conversation)
        self._refresh_list()
        self._status()

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

    def _title_of(self, conversation_id: str) -> str:
        if self.conversation is not None and self.conversation.id == conversation_id:
            return self.conversation.title
        return next((c.title for c in self.app.chat_store.list() if c.id == conversation_id), conversation_id)

    @on(ConversationList.Delete)
    def _delete(self, event: ConversationList.Delete) -> None:
        """Asks first: a deleted conversation is gone from the private history for good."""
        if self.generating:
            self.notify("Wait for the reply to finish (or esc to stop it).", severity="warning")
            return
        conversation_id = event.conversation_id

        async def answered(yes: bool | None) -> None:
            if yes:
                await self._delete_now(conversation_id)

        question = Content.from_markup(
            "Delete [b]$title[/b]? Its file is removed from your private history; this cannot be undone.",
            title=self._title_of(conversation_id),
        )
        self.app.push_screen(Confirm(question, title="Delete conversation", yes="Delete", no="Keep"), answered)

    async def _delete_now(self, conversation_id: str) -> None:
        self.app.chat_store.delete(conversation_id)
        self.notify("Conversation deleted.", timeout=2)
        if self.conversation is not None and self.conversation.id == conversation_id:
            await self.new_conversation()
        else:
            self._refresh_list()

    @on(ConversationList.Rename)
    def _rename_listed(self, event: ConversationList.Rename) -> None:
        self.action_rename(event.conversation_id)

    def action_rename(self, conversation_id: str | None = None) -> None:
        """Give the open conversation (or the one highlighted in the list) a title of the person's own."""
        if self.conversation is None:
            return
        target = conversation_id or self.conversation.id

        def renamed(title: str | None) -> None:
            if title is None:
                return
            if self.conversation is not None and target == self.conversation.id:
                self.conversation.rename(title)
                if self.conversation.messages:
                    self.app.chat_store.save(self.conversation)
                name = self.conversation.title
            else:
                try:
                    name = self.app.chat_store.rename(target, title).title
                except (OSError, ValueError, KeyError) as err:
                    self.notify(f"Could not rename that conversation: {err}", severity="error")
                    return
            self._refresh_list()
            self.notify(f"Renamed: {name}", timeout=3)

        self.app.push_screen(RenameDialog(self._title_of(target)), renamed)

    def action_search(self) -> None:
        """Full-text search over every conversation; enter opens the one picked."""

        async def picked(conversation_id: str | None) -> None:
            if not conversation_id:
                return
            if self.generating:
                self.notify("Wait for the reply to finish (or esc to stop it).", severity="warning")
                return
            if self.conversation is None or conversation_id != self.conversation.id:
                await self.open(conversation_id)
            self.query_one("#chat-input", Input).focus()

        self.app.push_screen(SearchDialog(self.app.chat_store), picked)

    def action_export(self) -> None:
        """The open conversation as Markdown in the workspace (0600); the path is shown."""
        if self.conversation is None or not self.conversation.messages:
            self.notify("Nothing to export yet.", severity="warning")
            return
        try:
            path = export_markdown(
                self.conversation,
                self.app.context.workspace,
                user_label="You",
                assistant_label=self.app.pack.manifest.assistant_label,
            )
        except CoachError as err:
            self.notify(str(err), severity="error", timeout=10)
            return
        self.notify(f"Exported to {path}", timeout=12)
        self.run_worker(self.query_one(ChatLog).add_note(f"Exported to {path}"), group="note")

    def action_settings(self) -> None:
        """This conversation's system prompt, temperature, reply length and context length."""
        if self.conversation is None:
            return

        def saved(settings: dict | None) -> None:
            if settings is None or self.conversation is None:
                return
            self.conversation.settings = settings
            if self.conversation.messages:
                self.app.chat_store.save(self.conversation)
            self.notify("Settings saved for this conversation.", timeout=3)
            self.warm()  # a new context length means another model context: get it ready now

        defaults = {
            "temperature": f"{DEFAULT_TEMPERATURE:g}",
            "max_tokens": str(REPLY_MAX_TOKENS),
            "context_length": "the model's",
        }
        dialog = ChatSettingsDialog(
            dict(self.conversation.settings), default_prompt=self.app.pack.system_prompt, defaults=defaults
        )
        self.app.push_screen(dialog, saved)

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
        if self.editing is not None and self.conversation is not None:
            # The edited message replaces the last one, and the reply to it goes too.
            index, self.editing = self.editing, None
            del self.conversation.messages[index:]
            await self.query_one(ChatLog).show(self.conversation.messages)
            self._show_crisis_for(self.conversation)
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
        self._start_reply()

    def _start_reply(self) -> None:
        self.generating = True
        self._reply_worker = self.respond()

    async def action_regenerate(self) -> None:
        """Write the last reply again: the old one goes, the person's message is read by the net again."""
        if self.generating:
            self.notify("The coach is still writing — esc stops it.", severity="warning")
            return
        conversation = self.conversation
        if conversation is None or not any(m.role == "user" for m in conversation.messages):
            self.notify("No reply to write again yet.", severity="warning")
            return
        self.editing = None
        while conversation.messages[-1].role == "assistant":
            conversation.messages.pop()
        self.app.chat_store.save(conversation)
        await self.query_one(ChatLog).show(conversation.messages)
        *earlier, last = [m.content for m in conversation.messages if m.role == "user"]
        self.steering = self.safety.steering(self.safety.check(last, history=earlier))
        self._start_reply()

    def action_edit_last(self) -> None:
        """Up in the empty input: the last message comes back to be edited (enter sends it in its place)."""
        box = self.query_one("#chat-input", Input)
        if self.generating or box.value or self.focused is not box or self.conversation is None:
            return
        users = [i for i, m in enumerate(self.conversation.messages) if m.role == "user"]
        if not users:
            return
        index = users[-1]
        self.editing = index
        box.value = self.conversation.messages[index].content
        box.cursor_position = len(box.value)
        self._status()

    @work(exclusive=True, group="reply", exit_on_error=False)
    async def respond(self) -> None:
        """Stream the coach's reply into the log; save it (or what came before a stop)."""
        conversation = self.conversation
        assert conversation is not None
        model = conversation.model or self.app.chat_model
        log = self.query_one(ChatLog)
        reply = await log.add_reply()
        stream = ReplyStream(reply)
        flusher = self.set_interval(FLUSH_S, stream.flush)  # drawn in batches: see `ReplyStream`
        text, note, failed = "", "", False
        self._status("thinking…")
        try:
            engine = await self._ready_engine()
            async for piece in engine.reply(conversation.messages, steering=self.steering):
                if not text:
                    self._status("writing…")
                text += piece
                stream.write(piece)
            note = engine.last.describe()
        except (BackendError, CoachError) as err:
            failed = True
            note = f"The model could not answer: {err}"
        except asyncio.CancelledError:
            note = "stopped"
            raise
        finally:
            await stream.stop()  # after a flush still drawing, so the timer stops between two
            flusher.stop()
            if text.strip():
                conversation.add("assistant", text.strip(), model=model, note=note)
                self.app.chat_store.save(conversation)
            elif failed:
                reply.add_class("-error")
                await reply.update(f"_{note}_")
            self.generating = False
            if note:
                await log.add_note(f"{describe_model(model)} · {note}" if not failed else note)
            self._status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "reply" or event.worker is not self._reply_worker:
            return  # an earlier reply's worker ending must not mark the current one done
        if event.state in (WorkerState.CANCELLED, WorkerState.ERROR):
            self.generating = False
            if event.state == WorkerState.ERROR:
                self.notify(f"Chat failed: {event.worker.error}", severity="error")
            self._status()

    def _status(self, activity: str = "") -> None:
        """Activity, the conversation's model and its turns (the messages the person sent)."""
        turns = self.conversation.turns if self.conversation is not None else 0
        parts: list[Content] = []
        if activity:
            parts.append(Content.styled(activity, "bold"))
        if self.editing is not None:
            parts.append(Content.styled("editing your last message (enter sends · esc cancels)", "bold"))
        parts.append(Content(f"model {describe_model(self.model)}"))
        parts.append(Content(f"{turns} turn{'' if turns == 1 else 's'}"))
        self.query_one("#chat-status", Static).update(Content(" · ").join(parts), layout=False)

    # --- actions --------------------------------------------------------------------------

    async def action_new_conversation(self) -> None:
        if self.generating:
            self.notify("Wait for the reply to finish (or esc to stop it).", severity="warning")
            return
        await self.new_conversation()
        self.query_one("#chat-input", Input).focus()

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
        box = self.query_one("#chat-input", Input)
        if self.generating:
            self.workers.cancel_group(self, "reply")
            self.notify("Stopped.", timeout=1.5)
        elif self.editing is not None:
            self.editing = None
            box.value = ""
            self._status()
        elif self.focused is box:
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
        run_config, problem = load_server_config(self.app.config_path)
        if problem:
            self.notify(f"Server models are not offered: {problem}", severity="warning", timeout=8)
        picker = ModelPicker(
            self.model,
            self.app.context.workspace,
            exports=export_records(self.app.store),
            run_config=run_config,
            on_choose=self._model_chosen,
            on_typed=self._typed_after_pick,
        )
        self.app.push_screen(picker)

    def _model_chosen(self, model: str) -> None:
        """The conversation moves to ``model`` now (before any key typed after the choice is handled)."""
        self.query_one("#chat-input", Input).focus()
        before = self.model
        if self.conversation is None or model == before:
            return
        self.app.chat_model = model
        self.conversation.model = model
        if self.conversation.messages:
            self.app.chat_store.save(self.conversation)
            self.query_one(ChatLog).add_switch(before, model)
        self.notify(f"Chat model: {describe_model(model)}", timeout=3)
        self._status()
        self.warm()

    def action_side_by_side(self) -> None:
        """One message to two models in two streaming columns (`side_by_side`)."""
        if self.generating:
            self.notify("Wait for the reply to finish (or esc to stop it).", severity="warning")
            return
        open_side_by_side(self, on_close=self._refresh_list)

    def _typed_after_pick(self, text: str, submit: bool) -> None:
        """Keys typed while the picker was closing: into the chat's input, in order; enter sends."""
        box = self.query_one("#chat-input", Input)
        if text:
            box.insert_text_at_cursor(text)
        if submit:
            self.call_later(box.action_submit)
