"""A chat turn's work before its first token does not grow with the conversation (issue 15's benchmark c).

The time to the first token at turn 20 was 1.8× turn 1's although llama.cpp read only the
newest message each time (`benchmarks/bench_tui.py --only c`): the rest of the turn grew.
Measured along the path, three things did, each pinned here by counting work, not time:

* each column tokenized its whole conversation twice per turn (once to fit the window, once
  to stream it);
* the prompt went through five trips between the event loop and a worker thread before the
  model started, and each trip waited for whatever the loop was doing: laying out the screen
  for the message just sent, which costs more the more turns are on it;
* each column drew the message and the empty reply in two mounts, each a layout of the screen,
  before the models were even asked.

The local model is the real `LlamaCppBackend` on a stand-in pool (no GGUF is loaded): it
renders and tokenizes through the pool's formatter and tokenizer and streams from its slot.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import anyio
import anyio.to_thread
import pytest
from llama_cpp.llama_chat_format import ChatFormatterResponse
from textual.widgets import Input

from actors.backends.llama_cpp_backend import LlamaCppBackend
from actors.backends.types import Message
from actors.chat.engine import ChatEngine
from actors.chat.pair import ChatPair
from actors.run_config import LlamaCppConfig
from actors.safety.verdict import NOT_FLAGGED
from coach_tui.screens.side_by_side import DRAW_WAIT_S, SideBySideScreen
from coach_tui.widgets.chat_log import ChatLog, YouSaid
from state.chat import ChatMessage
from tests.tui_support import StreamingBackend, make_app, wait_for

pytestmark = pytest.mark.anyio


class StandInPool:
    """What `LlamaCppBackend` uses of a model pool, counting the prompts it renders and tokenizes."""

    def __init__(self) -> None:
        self.n_ctx = 8192
        self.closing = threading.Event()
        self.renders = 0
        self.tokenized = 0
        self.primary = self
        self.llm = self

    def formatter(self, *, messages, **_):
        self.renders += 1
        prompt = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"
        return ChatFormatterResponse(prompt=prompt, stop=["</assistant>"])

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        self.tokenized += 1
        return [len(word) for word in text.split()]

    @contextmanager
    def checkout(self, tokens, *_, **__):
        yield self

    def create_completion(self, **_):
        yield from ({"choices": [{"text": word}]} for word in ("Hello", " there", "."))


def local_engine() -> tuple[ChatEngine, StandInPool]:
    pool = StandInPool()
    backend = LlamaCppBackend("chat", LlamaCppConfig(model="/nowhere/model.gguf", n_ctx=8192))
    backend.pool = lambda: pool  # the stand-in for the loaded GGUF
    return ChatEngine(backend, "You are a coach.", max_tokens=24), pool


def conversation(turns: int) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for i in range(turns - 1):
        out += [ChatMessage("user", f"message {i} about my week"), ChatMessage("assistant", f"reply {i} with a step")]
    return [*out, ChatMessage("user", "what helps most?")]


async def first_piece(engine: ChatEngine, history: list[ChatMessage]) -> str:
    async for piece in engine.reply(history):
        return piece
    raise AssertionError("no reply")


@pytest.mark.parametrize("turns", [1, 20])
async def test_a_turn_renders_and_tokenizes_its_prompt_once_however_long_the_conversation(turns):
    engine, pool = local_engine()
    assert await first_piece(engine, conversation(turns)) == "Hello"
    assert (pool.renders, pool.tokenized) == (1, 1)


async def test_a_new_prompt_is_tokenized_anew_not_served_from_the_last_one():
    engine, pool = local_engine()
    await first_piece(engine, conversation(3))
    history = conversation(4)
    await first_piece(engine, history)
    assert pool.tokenized == 2
    expected = engine.backend.tokenize(engine.messages(history))[0]
    other = [Message(role="system", content="another prompt")]
    assert engine.backend.tokenize(other)[0] != expected
    assert pool.tokenized == 3


@pytest.mark.parametrize("turns", [1, 20])
async def test_a_turn_reaches_its_first_token_in_two_trips_to_a_worker_thread(turns, monkeypatch):
    """One to fit the window (and tokenize), one for the first token; it was five, each waiting on the loop."""
    trips = []
    real = anyio.to_thread.run_sync

    async def counted(func, *args, **kwargs):
        trips.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    engine, _ = local_engine()
    await first_piece(engine, conversation(turns))
    assert len(trips) == 2, trips


async def test_each_column_draws_a_turn_in_one_mount_whatever_the_history(tmp_path, monkeypatch):
    """Before the first token, each column mounts the message and its empty reply together (one layout)."""
    left, right = StreamingBackend("Left reply words"), StreamingBackend("Right reply words")
    app = make_app(tmp_path, chat_backend=left)
    app.make_chat_backend = {"smollm2-135m-instruct": left, "gemma3-270m": right}.__getitem__
    mounts: list[ChatLog] = []
    real_mount = ChatLog.mount

    def counted(self, *widgets, **kwargs):
        mounts.append(self)
        return real_mount(self, *widgets, **kwargs)

    monkeypatch.setattr(ChatLog, "mount", counted)
    async with app.run_test(size=(160, 45)) as pilot:
        pair = ChatPair.start(app.chat_store, _QuietNet(), ("smollm2-135m-instruct", "gemma3-270m"))
        screen = SideBySideScreen(pair)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.warmed and not screen.workers, timeout=60)
        per_turn = []
        for turn in range(6):
            for backend in (left, right):
                backend.pause_after = "reply"  # hold each reply after its first pieces
            mounts.clear()
            box = screen.query_one("#pair-input", Input)
            box.value = f"message {turn}"
            await box.action_submit()
            await wait_for(
                pilot,
                lambda turn=turn: (
                    screen.pair.turns > turn and all(c.first_piece_at is not None for c in screen.columns)
                ),
                timeout=30,
            )
            per_turn.append(sorted(mounts.count(column.chat_log) for column in screen.columns))
            for backend in (left, right):
                backend.resume()
            await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert per_turn == [[1, 1]] * 6


class _Watching(StreamingBackend):
    """A scripted stream that notes how many of the person's messages are drawn as its model is asked
    and as it sends its first piece, which comes ``first_after_s`` after it is asked."""

    def __init__(self, reply: str, first_after_s: float = 0.0) -> None:
        super().__init__(reply)
        self.first_after_s = first_after_s
        self.screen: SideBySideScreen | None = None
        self.drawn_when_asked: list[int] = []
        self.drawn_at_first_piece: list[int] = []

    def _drawn(self) -> int:
        return len(self.screen.query(YouSaid))

    async def stream(self, messages, **kwargs):
        watched = self.screen is not None
        if watched:
            self.drawn_when_asked.append(self._drawn())
        await anyio.sleep(self.first_after_s if watched else 0)
        first = watched
        async for piece in super().stream(messages, **kwargs):
            if first:
                self.drawn_at_first_piece.append(self._drawn())
                first = False
            yield piece


async def _three_turns(tmp_path, left: _Watching, right: _Watching) -> None:
    app = make_app(tmp_path, chat_backend=left)
    app.make_chat_backend = {"smollm2-135m-instruct": left, "gemma3-270m": right}.__getitem__
    async with app.run_test(size=(160, 45)) as pilot:
        pair = ChatPair.start(app.chat_store, _QuietNet(), ("smollm2-135m-instruct", "gemma3-270m"))
        screen = SideBySideScreen(pair)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.warmed and not screen.workers, timeout=60)
        left.screen = right.screen = screen
        for turn in range(3):
            box = screen.query_one("#pair-input", Input)
            box.value = f"message {turn}"
            await box.action_submit()
            await wait_for(pilot, lambda turn=turn: screen.pair.turns > turn and not screen.generating, timeout=30)
        assert len(screen.query(YouSaid)) == 6


async def test_the_message_is_drawn_once_both_models_have_answered(tmp_path):
    """Drawing lays out the screen (longer the more turns are on it); it no longer competes with the prompt.

    Both models are asked, and both send their first piece (0.2 s later here), before either
    column draws the message: the drawing waits for the models, not the models for the drawing.
    """
    left, right = _Watching("Left reply", first_after_s=0.2), _Watching("Right reply", first_after_s=0.2)
    await _three_turns(tmp_path, left, right)
    # Two columns: each turn's message was drawn in neither when the models were asked, nor when they answered.
    assert left.drawn_when_asked == right.drawn_when_asked == [0, 2, 4]
    assert left.drawn_at_first_piece == right.drawn_at_first_piece == [0, 2, 4]


async def test_a_model_slow_to_answer_does_not_hold_the_message_back(tmp_path):
    """The drawing waits at most `DRAW_WAIT_S` for the models: a slow one answers under a message already shown."""
    left, right = _Watching("Left reply"), _Watching("Right reply", first_after_s=DRAW_WAIT_S + 0.6)
    await _three_turns(tmp_path, left, right)
    assert right.drawn_when_asked == [0, 2, 4]
    assert right.drawn_at_first_piece == [2, 4, 6]  # both columns had drawn the message by then


class _QuietNet:
    """A crisis net that flags nothing (this test is about drawing, not safety)."""

    def check(self, text, history=()):
        return NOT_FLAGGED

    def default_country(self) -> str:
        return "GB"

    def resources(self, country, categories):
        return ""
