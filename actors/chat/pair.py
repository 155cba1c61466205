"""One message to two models at once: the side-by-side chat's turn (the base model and the fine-tuned, say).

Why two linked conversations rather than one holding two kinds of reply: each
column is a whole conversation of its own model, so its prompt is exactly the
history that model's KV cache already holds (only the newest message is read,
see `engine`), and each can be reopened alone in the single chat, searched
and exported like any other. The two name each other (`Conversation.pair`),
which is how the side-by-side view finds both again.

The person's message is read by the crisis net once, with their earlier
messages as context, and recorded in both conversations with the same
signal; the pack's crisis instruction steers both replies. Nothing is ever
blocked, as in the single chat.

Both replies stream at the same time, in one anyio task group. `stop` (Esc)
cancels the group's scope: each column keeps what it had written, saved and
marked "stopped". A column whose model cannot answer says why and does not
stop the other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio

from actors.backends.base import Backend
from actors.backends.bundled import BUNDLED
from actors.backends.errors import BackendError
from actors.safety import SafetyNet
from state.chat import ChatStore, Conversation
from state.errors import CoachError

from .chat_format import PromptFormat, is_server_model, resolve_chat_format
from .engine import ChatEngine, tailored
from .settings import effective

STOPPED = "stopped"
"""The note of a reply cut short, as the single chat writes it."""

Write = Callable[[int, str], Awaitable[object]]
"""Called with (column, piece) for each piece of either reply, as it arrives."""
Ended = Callable[[int, "ColumnReply"], object]
"""Called with (column, reply) as soon as that column's reply has ended and been saved."""


@dataclass(frozen=True)
class PairTurn:
    """The person's message as recorded in both conversations, and what the crisis net made of it."""

    text: str
    categories: tuple[str, ...] = ()
    steering: str = ""
    """The pack's crisis instruction for both replies; "" when the message carried no signal."""

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


@dataclass
class ColumnReply:
    """How one column's reply ended: what was written (as saved), and whether it was stopped or failed."""

    model: str
    pieces: list[str] = field(default_factory=list, repr=False)
    note: str = ""
    done: bool = False
    stopped: bool = False
    failed: bool = False
    first_token_s: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces).strip()


def prompt_format(model: str, exports: list[dict[str, Any]] | None = None) -> PromptFormat | None:
    """A GGUF path's chat format (blocking: reads its header); None for bundled and server models.

    The same rule as the single chat: a bundled model speaks the format its backend knows, a
    server applies its own template, any other GGUF must name one (else a clear `CoachError`).
    """
    if model in BUNDLED or is_server_model(model):
        return None
    return resolve_chat_format(model, exports=exports)


def engine_for(
    backend: Backend, settings: dict, pack_system_prompt: str, fmt: PromptFormat | None = None
) -> ChatEngine:
    """A chat engine for one column: its model's backend in its format, with the conversation's settings."""
    wanted = effective(settings, pack_system_prompt)
    backend = tailored(backend, chat_format=fmt.chat_format if fmt else None, n_ctx=wanted.context_length)
    return ChatEngine(
        backend,
        wanted.system_prompt,
        max_tokens=wanted.max_tokens,
        temperature=wanted.temperature,
        context_length=wanted.context_length,
        stops=fmt.stops if fmt else (),
    )


class ChatPair:
    """Two conversations that are sent the same messages, each answered by its own model."""

    def __init__(self, store: ChatStore, safety: SafetyNet, conversations: Sequence[Conversation]) -> None:
        left, right = conversations
        self.store = store
        self.safety = safety
        self.conversations: tuple[Conversation, Conversation] = (left, right)
        self._scope: anyio.CancelScope | None = None
        self._stop_asked = False

    @classmethod
    def start(
        cls, store: ChatStore, safety: SafetyNet, models: Sequence[str], settings: dict | None = None
    ) -> ChatPair:
        """Two new conversations, linked, one per model (written from the first message on).

        ``settings`` (a conversation's own: system prompt, temperature…) apply to both, so the
        two models are compared on the same terms.
        """
        left, right = (store.new(model=model) for model in models)
        left.pair, right.pair = right.id, left.id
        for conversation in (left, right):
            conversation.settings = dict(settings or {})
        return cls(store, safety, (left, right))

    @classmethod
    def reopen(cls, store: ChatStore, safety: SafetyNet, conversation_id: str) -> ChatPair | None:
        """The pair a conversation belongs to, itself on the left; None when it has none (or it is gone)."""
        try:
            first = store.load(conversation_id)
            if not first.pair:
                return None
            second = store.load(first.pair)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if second.pair != first.id:
            return None
        return cls(store, safety, (first, second))

    @property
    def models(self) -> tuple[str, str]:
        left, right = self.conversations
        return left.model, right.model

    @property
    def turns(self) -> int:
        return max(c.turns for c in self.conversations)

    def crisis_categories(self) -> list[str]:
        """Every crisis category the person's messages carried, in order, once each (for the panel)."""
        found = [
            category
            for conversation in self.conversations
            for message in conversation.messages
            if message.role == "user"
            for category in message.meta.get("crisis", ())
        ]
        return list(dict.fromkeys(found))

    def send(self, text: str) -> PairTurn:
        """Read the message with the crisis net once, record it in both conversations and save them."""
        left = self.conversations[0]
        earlier = [m.content for m in left.messages if m.role == "user"]
        verdict = self.safety.check(text, history=earlier)
        meta: dict[str, Any] = {}
        if verdict.flagged:
            meta = {"crisis": list(verdict.categories), "crisis_layers": sorted({s.layer for s in verdict.signals})}
        for conversation in self.conversations:
            conversation.add("user", text, **meta)
            self.store.save(conversation)
        if not verdict.flagged:
            return PairTurn(text)
        return PairTurn(text, tuple(verdict.categories), self.safety.steering(verdict))

    async def reply(
        self,
        engines: Sequence[ChatEngine],
        turn: PairTurn,
        write: Write | None = None,
        ended: Ended | None = None,
    ) -> tuple[ColumnReply, ColumnReply]:
        """Both models answer the last message at the same time; each reply is saved as it ends.

        ``write(column, piece)`` is awaited for every piece as it arrives; ``ended(column,
        reply)`` is called once a column's reply has ended and been saved, while the other may
        still be writing. Returns once both have ended, or at once after `stop`, with what each
        had written (a reply cut short is saved too, marked stopped).
        """
        replies = (ColumnReply(self.models[0]), ColumnReply(self.models[1]))
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._stop_asked:  # asked between the turn's start and this
                scope.cancel()
            try:
                async with anyio.create_task_group() as group:
                    for column, engine in enumerate(engines):
                        group.start_soon(self._answer, column, engine, turn.steering, write, replies[column], ended)
            finally:
                self._scope, self._stop_asked = None, False
        for column, reply in enumerate(replies):
            if not (reply.done or reply.failed or reply.stopped):  # stopped before it began
                reply.stopped, reply.note = True, STOPPED
                self._keep(column, reply)
        if ended is not None:
            for column, reply in enumerate(replies):
                if reply.stopped:
                    ended(column, reply)
        return replies

    async def _answer(
        self,
        column: int,
        engine: ChatEngine,
        steering: str,
        write: Write | None,
        out: ColumnReply,
        ended: Ended | None = None,
    ) -> None:
        history = self.conversations[column].messages
        try:
            async with aclosing(engine.reply(history, steering=steering)) as pieces:
                async for piece in pieces:
                    if not out.pieces:
                        out.first_token_s = engine.last.first_token_s
                    out.pieces.append(piece)
                    if write is not None:
                        await write(column, piece)
            out.done, out.note = True, engine.last.describe()
        except (BackendError, CoachError) as err:
            out.failed, out.note = True, f"The model could not answer: {err}"
        except anyio.get_cancelled_exc_class():
            out.stopped, out.note = True, STOPPED
            self._keep(column, out)  # no await here: the scope is cancelled
            raise
        self._keep(column, out)
        if ended is not None:
            ended(column, out)

    def _keep(self, column: int, reply: ColumnReply) -> None:
        """Save what the column's model wrote (nothing when it wrote nothing)."""
        conversation = self.conversations[column]
        if reply.text:
            conversation.add("assistant", reply.text, model=conversation.model, note=reply.note)
            self.store.save(conversation)

    def stop(self) -> None:
        """Stop both replies (or the pair about to start); call it on the replies' event loop."""
        if self._scope is not None:
            self._scope.cancel()
        else:
            self._stop_asked = True

    def clear_stop(self) -> None:
        """Forget a stop asked for a turn that never reached `reply` (its engines failed to load)."""
        self._stop_asked = False
