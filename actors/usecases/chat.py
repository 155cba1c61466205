"""A chat outside the app (`coach chat`): the Chat screen's turn, without the screen.

Why a use case and not the engine alone: a turn is more than a streamed
reply. The person's message is read by the pack's crisis net first (with
their earlier messages as context); a signal is recorded in the private chat
file, the support lines of their country are shown whatever the model says,
and the pack's crisis instruction steers that one reply. The reply is saved
after it ends, or what came of it before a stop, marked "stopped". The Chat
screen does exactly this; here it is once, for any face that is not Textual.

The history is the app's own `ChatStore` (the user's private data folder,
0700/0600, never the workspace), so a conversation held in the terminal is
listed in the app's Chat screen too.

Models are named as the app's model picker offers them: a bundled model, a
GGUF exported into the workspace (by file name), or the path of any GGUF.
An unknown name is refused here, before anything loads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from actors.backends.base import Backend
from actors.backends.bundled import BUNDLED
from actors.backends.errors import BackendError
from actors.chat.chat_format import PromptFormat, is_server_model, resolve_chat_format
from actors.chat.engine import DEFAULT_CHAT_MODEL, REPLY_MAX_TOKENS, ChatEngine, chat_backend
from actors.chat.models import ModelOption, model_options, server_options
from actors.pack.domain_pack import DomainPack
from actors.safety import SafetyNet, load_safety_net
from actors.training.records import exported_models
from state.chat import ChatStore, Conversation
from state.errors import CoachError
from state.workspace import ENV_DB_URL, NoWorkspace, open_store, workspace_exists

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_TEMPERATURE",
    "REPLY_MAX_TOKENS",
    "ChatModel",
    "ChatSession",
    "Reply",
    "Turn",
    "UnknownChatModel",
    "chat_model_options",
    "require_workspace",
    "resolve_chat_model",
]

DEFAULT_TEMPERATURE = 0.7
"""The app's chat temperature (`ChatEngine`'s default)."""
STOPPED = "stopped"
"""The note a reply cut short carries, as the Chat screen writes it."""


class UnknownChatModel(CoachError):
    """The model named is none the picker offers, nor a GGUF file."""

    exit_code = 2  # a usage mistake, like click's own


@dataclass(frozen=True)
class ChatModel:
    """The model to chat with, as a conversation records it, and the workspace's export records."""

    id: str
    """A bundled name, an absolute GGUF path, or ``server:NAME``."""
    exports: tuple[dict[str, Any], ...] = ()
    """For a GGUF with no template of its own: the training run that exported it names its format."""


def workspace_exports(workspace: Path, db_url: str | None = None) -> list[dict[str, Any]]:
    """The GGUFs training exported, from the workspace's records; none when there is no workspace.

    Chatting needs no workspace, so a missing one is not an error here (and is never created).
    """
    if not (db_url or os.environ.get(ENV_DB_URL)) and not workspace_exists(workspace):
        return []
    return exported_models(open_store(workspace, db_url, create=False))


def require_workspace(workspace: Path, db_url: str | None = None) -> None:
    """`NoWorkspace` when a workspace named on purpose (``-w``) holds none, as every reading command says.

    The chat needs no workspace otherwise: with none named, a missing default is no error.
    """
    if not (db_url or os.environ.get(ENV_DB_URL)) and not workspace_exists(workspace):
        raise NoWorkspace(workspace)


def _run_config_or_none() -> Any:
    """The run config in force, for its server models; None when it cannot be read (then none are offered)."""
    from actors.run_config import load_run_config

    try:
        return load_run_config()
    except CoachError:
        return None


def chat_model_options(workspace: Path, db_url: str | None = None) -> list[ModelOption]:
    """What the app's model picker offers: bundled, exported, GGUFs in the workspace, the run config's servers."""
    return model_options(workspace, exports=workspace_exports(workspace, db_url), run_config=_run_config_or_none())


def _looks_like_a_path(model: str) -> bool:
    return model.endswith(".gguf") or "/" in model or "\\" in model or model.startswith(("~", "."))


def resolve_chat_model(model: str | None, workspace: Path, db_url: str | None = None) -> ChatModel:
    """The model `model` names, as the picker would give it; `UnknownChatModel` lists what there is.

    Accepted: a bundled name (the default when none), what the picker lists (an exported GGUF by
    file name, ``server:NAME``), or the path of any GGUF. Only names, records and headers are
    read: nothing loads, so a mistake is reported at once. A bundled model needs no workspace.
    """
    model = model or DEFAULT_CHAT_MODEL
    if model in BUNDLED:
        return ChatModel(model)
    if is_server_model(model):
        from actors.run_config import load_run_config

        servers = [o.id for o in server_options(load_run_config())]
        if model not in servers:
            raise UnknownChatModel(
                f"no server model {model!r} in the run config ($COACH_RUN_CONFIG); "
                f"server models: {', '.join(servers) or 'none'}"
            )
        return ChatModel(model)
    exports = tuple(workspace_exports(workspace, db_url))
    options = model_options(workspace, exports=list(exports), run_config=_run_config_or_none())
    for option in options:
        if option.kind in ("exported", "file") and model in (option.name, Path(option.name).stem):
            return ChatModel(option.id, exports)
    if _looks_like_a_path(model):
        path = Path(model).expanduser().resolve()
        if not path.is_file():
            raise UnknownChatModel(f"no GGUF file at {path}")
        return ChatModel(str(path), exports)
    listing = "; ".join(f"{o.id if o.kind == 'server' else o.name} ({o.detail})" for o in options)
    raise UnknownChatModel(f"unknown model {model!r}. Available: {listing}; or the path of any .gguf file")


@dataclass(frozen=True)
class Turn:
    """The person's message as recorded, and what the crisis net made of it."""

    text: str
    categories: tuple[str, ...] = ()
    steering: str = ""
    """The pack's crisis instruction for this reply; "" when the message carried no signal."""
    support_lines: str = ""
    """Markdown, the support panel's text; "" when the message carried no signal."""

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


@dataclass
class Reply:
    """How a reply ended: its text (as saved), and whether it was stopped or failed."""

    text: str = ""
    note: str = ""
    stopped: bool = False
    failed: bool = False
    pieces: list[str] = field(default_factory=list, repr=False)


class ChatSession:
    """One conversation with one model, turn by turn, kept in the private chat history."""

    def __init__(
        self,
        pack: DomainPack,
        model: str = DEFAULT_CHAT_MODEL,
        *,
        system: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int = REPLY_MAX_TOKENS,
        exports: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (),
        store: ChatStore | None = None,
        backend_factory: Callable[..., Backend] | None = None,
    ) -> None:
        self.pack = pack
        self.model = model
        self.format: PromptFormat = resolve_chat_format(model, exports=list(exports))
        """How the model is prompted and where that was learned; refused here, before loading, when unknown."""
        self.system_prompt = system if system and system.strip() else pack.system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.store = store or ChatStore()
        self.conversation: Conversation = self.store.new(model=model)
        # Only what differs from the defaults, so the app reopens the conversation as it was held here.
        chosen = {
            "system_prompt": self.system_prompt if self.system_prompt != pack.system_prompt else None,
            "temperature": temperature if temperature != DEFAULT_TEMPERATURE else None,
            "max_tokens": max_tokens if max_tokens != REPLY_MAX_TOKENS else None,
        }
        self.conversation.settings = {k: v for k, v in chosen.items() if v is not None}
        self._backend_factory = backend_factory or chat_backend  # looked up now: tests may replace it
        self._engine: ChatEngine | None = None
        self._scope: anyio.CancelScope | None = None
        self._stop_asked = False

    # --- what the face shows ---------------------------------------------------------------

    @property
    def safety(self) -> SafetyNet:
        """The pack's crisis net, loaded once per pack (the app shares the cache)."""
        return load_safety_net(self.pack)

    @property
    def notice(self) -> str:
        """The pack's own line on what the assistant is and is not."""
        return self.pack.manifest.chat_notice

    @property
    def country(self) -> str:
        """The country whose lines are shown: the one chosen in the app, else the system's."""
        return self.store.settings().get("country") or self.safety.default_country()

    def support_lines(self) -> str:
        """The support panel's text for this conversation's signals (the general lines when none)."""
        categories = [c for m in self.conversation.messages if m.role == "user" for c in m.meta.get("crisis", ())]
        return self.safety.resources(self.country, list(dict.fromkeys(categories)))

    @property
    def history_file(self) -> Path:
        """Where this conversation is kept (written from its first message on)."""
        return self.store.root / f"{self.conversation.id}.json"

    @property
    def last_stats(self) -> str:
        return self._engine.last.describe() if self._engine is not None else ""

    # --- a turn ---------------------------------------------------------------------------

    def _engine_now(self) -> ChatEngine:
        if self._engine is None:
            backend = self._backend_factory(self.model, chat_format=self.format.chat_format)
            self._engine = ChatEngine(
                backend,
                self.system_prompt,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                stops=self.format.stops,
            )
        return self._engine

    async def warm(self) -> None:
        """Load the model and read the system prompt before the first message (see `ChatEngine.warm`)."""
        try:
            await self._engine_now().warm()
        except BackendError as err:
            raise CoachError(f"the chat model {self.model} is not available: {err}") from err

    def send(self, text: str) -> Turn:
        """Check the message with the crisis net, record it (with any signal) and save the conversation."""
        earlier = [m.content for m in self.conversation.messages if m.role == "user"]
        verdict = self.safety.check(text, history=earlier)
        meta = {}
        if verdict.flagged:
            meta = {"crisis": list(verdict.categories), "crisis_layers": sorted({s.layer for s in verdict.signals})}
        self.conversation.add("user", text, **meta)
        self.store.save(self.conversation)
        if not verdict.flagged:
            return Turn(text)
        return Turn(
            text,
            categories=tuple(verdict.categories),
            steering=self.safety.steering(verdict),
            support_lines=self.support_lines(),
        )

    async def reply(self, turn: Turn, write: Callable[[str], object] = lambda _: None) -> Reply:
        """Stream the answer to `turn` through `write`; save it, or what came before `stop()`.

        A model that cannot answer is a failed `Reply` with the reason in its
        note, not an exception: the conversation goes on, as in the app.
        """
        out = Reply()
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._stop_asked:  # asked between the turn's start and this
                scope.cancel()
            try:
                engine = self._engine_now()
                async with aclosing(engine.reply(self.conversation.messages, steering=turn.steering)) as pieces:
                    async for piece in pieces:
                        out.pieces.append(piece)
                        write(piece)
                out.note = engine.last.describe()
            except (BackendError, CoachError) as err:
                out.failed, out.note = True, f"The model could not answer: {err}"
            finally:
                self._scope, self._stop_asked = None, False
        if scope.cancelled_caught:
            out.stopped, out.note = True, STOPPED
        out.text = "".join(out.pieces).strip()
        if out.text:
            self.conversation.add("assistant", out.text, note=out.note)  # the conversation's model wrote it
            self.store.save(self.conversation)
        return out

    def stop(self) -> None:
        """Stop the reply being written, or the one about to start (call it on the reply's event loop).

        What was written is kept, marked stopped.
        """
        if self._scope is not None:
            self._scope.cancel()
        else:
            self._stop_asked = True
