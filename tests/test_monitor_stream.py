"""The reply streams into the monitor as the model writes it, and the reply stored is the one a plain call
gives: the supervisor streams only the transcript a face follows, and falls back to the plain call (with
its retries) when a stream fails.

`HeldBackend` is shared by the monitor tests: scripted answers that can be held part-way until the test
lets them go. The hold is a `threading.Event` because a run works on a thread and event loop of its own.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence

import anyio
import anyio.to_thread
import pytest

from actors.backends.errors import BackendError
from actors.backends.router import ModelRouter
from actors.events import EventBus, ReplyChunk
from actors.generation.run_plan import persona_records, plan_run
from actors.run_config import RunConfig
from actors.supervisor import Supervisor
from coach_tui.app import CoachApp
from coach_tui.context import AppContext
from coach_tui.run_control import RunRequest
from coach_tui.widgets.transcript_view import AssistantTurn, TranscriptView
from state import pipeline as db
from state.chat import ChatStore
from tests.scripted import ScriptedBackend
from tests.tui_support import StreamingBackend, text_of, wait_for

pytestmark = pytest.mark.anyio

Hold = Callable[[Sequence, dict | None], bool]


def is_assistant(messages, schema) -> bool:
    return schema is None and messages[0].role == "system"


def is_judge(messages, schema) -> bool:
    return schema is not None and "## The criterion:" in messages[-1].content


def reply_number(messages) -> int:
    return len(messages) // 2


class HeldBackend(ScriptedBackend):
    """The scripted answers; calls that `hold` selects wait until `release()` (streams: after a few words).

    ``let_through`` calls that `hold` selects are answered at once before holding starts.
    """

    def __init__(
        self,
        hold: Hold | None = None,
        *,
        let_through: int = 0,
        words_before_hold: int = 4,
        fail_stream: bool = False,
        empty_stream: bool = False,
        **kwargs,
    ) -> None:
        super().__init__("embedded", **kwargs)
        self.hold = hold
        self.let_through = let_through
        self.words_before_hold = words_before_hold
        self.fail_stream = fail_stream
        self.empty_stream = empty_stream
        self.released = threading.Event()
        self.holding = threading.Event()
        self.streams = 0
        self._lock = threading.Lock()

    def release(self) -> None:
        self.released.set()

    def _should_hold(self, messages, schema) -> bool:
        if self.hold is None or self.released.is_set() or not self.hold(messages, schema):
            return False
        with self._lock:
            if self.let_through > 0:
                self.let_through -= 1
                return False
        return True

    async def _wait(self) -> None:
        self.holding.set()
        await anyio.to_thread.run_sync(self.released.wait, abandon_on_cancel=True)

    async def complete(self, messages, *, schema=None, max_tokens=512, temperature=0.7, seed=None):
        if self._should_hold(messages, schema):
            await self._wait()
        return await super().complete(messages, schema=schema, max_tokens=max_tokens, temperature=temperature)

    async def stream(self, messages, *, max_tokens=512, temperature=0.7, seed=None):
        self.streams += 1
        if self.empty_stream:  # a server that ignores the request to stream: no pieces at all
            return
        hold = self._should_hold(messages, None)
        text = self.script(messages, None)
        words = text.split(" ")
        for i, word in enumerate(words):
            if i == self.words_before_hold:
                if self.fail_stream:
                    raise BackendError(self.name, "scripted stream cut")
                if hold:
                    await self._wait()
            yield word if i == len(words) - 1 else word + " "  # the pieces join to exactly the plain reply


def held_app(tmp_path, backend: ScriptedBackend) -> CoachApp:
    """The real app on a tmp workspace, every role on ``backend`` (through the real router)."""
    context = AppContext(workspace_option=str(tmp_path / "ws"))
    return CoachApp(
        context,
        context.pack(),
        router_factory=lambda: ModelRouter(RunConfig(), {"embedded": backend}),
        chat_backend_factory=lambda model: StreamingBackend(),
        chat_store=ChatStore(tmp_path / "chats"),
    )


LENGTHS = {"short": 3, "medium": 3, "long": 3, "very_long": 3}


async def test_the_reply_streams_into_the_transcript_pane_as_it_is_written(tmp_path):
    backend = HeldBackend(lambda m, s: is_assistant(m, s) and reply_number(m) == 2)
    app = held_app(tmp_path, backend)
    try:
        async with app.run_test(size=(110, 32)) as pilot:
            run_id = app.start_run(RunRequest(transcripts=1, seed=5, lengths=LENGTHS, in_flight=1))
            (tid,) = [t.id for t in db.run_transcripts(app.store, run_id)]
            await wait_for(pilot, lambda: app.controller.watched == tid)
            assert await anyio.to_thread.run_sync(backend.holding.wait, 120)
            view = app.screen.query_one(TranscriptView)
            # Exchange 2's reply is half-written: the pane shows its first words, the store has no reply yet.
            await wait_for(pilot, lambda: view.query("#a2") and "Week 2 sounds" in text_of(view.query_one("#a2")))
            shown = text_of(view.query_one("#a2", AssistantTurn))
            assert "writing…" in shown and "wind-down" not in shown
            assert db.exchanges(app.store, tid)[1].assistant == ""
            backend.release()
            await wait_for(pilot, lambda: not app.controller.active, timeout=20)
            await wait_for(pilot, lambda: "wind-down" in text_of(view.query_one("#a2")))
            assert "writing…" not in text_of(view.query_one("#a2"))
            assert backend.streams >= 1  # the followed transcript's replies were streamed
    finally:
        backend.release()


def planned_run(store, pack, run_id: str, *, n: int = 2, length: int = 3) -> str:
    lengths = dict.fromkeys(("short", "medium", "long", "very_long"), length)
    plan = plan_run(pack, run_id, transcripts=n, seed=3, lengths=lengths)
    db.create_run(
        store,
        run_id,
        kind="generate",
        domain=pack.name,
        seed=3,
        config={},
        personas=persona_records(pack, plan),
        transcripts=[(t.transcript_id, t.persona_id, t.target_exchanges) for t in plan.transcripts],
    )
    return run_id


def stored_replies(store, run_id: str) -> list[tuple[int, str, str]]:
    out = []
    for t in db.run_transcripts(store, run_id):
        out += [(r.number, r.user, r.assistant) for r in db.exchanges(store, t.id)]
    return out


async def run_supervised(store, pack, backend, *, streamed: bool) -> tuple[Supervisor, list]:
    run_id = planned_run(store, pack, "r")
    bus = EventBus()
    seen = bus.subscribe()
    supervisor = Supervisor(store, ModelRouter(RunConfig(), {"embedded": backend}), pack, bus=bus)
    if streamed:
        supervisor.stream_replies = lambda tid: True
    await supervisor.run(run_id)
    bus.close()
    return supervisor, [ev async for ev in seen]


async def test_a_streamed_run_stores_exactly_what_a_plain_run_stores(tmp_path, pack):
    from state.store import Store

    plain_store, streamed_store = Store.for_workspace(tmp_path / "a"), Store.for_workspace(tmp_path / "b")
    plain, _ = await run_supervised(plain_store, pack, ScriptedBackend("embedded"), streamed=False)
    # The stock scripted stream ends every word with a space: the reply stored is still the plain one.
    streamed, events = await run_supervised(streamed_store, pack, ScriptedBackend("embedded"), streamed=True)
    assert stored_replies(streamed_store, "r") == stored_replies(plain_store, "r")
    chunks = [ev for ev in events if isinstance(ev, ReplyChunk)]
    assert chunks and all(ev.text for ev in chunks)
    assert streamed.stats["assistant"].calls == plain.stats["assistant"].calls
    assert streamed.stats["assistant"].completion_tokens > 0 and streamed.stats["assistant"].prompt_tokens > 0


@pytest.mark.parametrize("broken", ["fail_stream", "empty_stream"])
async def test_a_stream_that_fails_or_gives_nothing_is_asked_again_plainly_and_that_reply_is_stored(
    tmp_path, pack, broken
):
    from state.store import Store

    plain_store, streamed_store = Store.for_workspace(tmp_path / "a"), Store.for_workspace(tmp_path / "b")
    await run_supervised(plain_store, pack, ScriptedBackend("embedded"), streamed=False)
    backend = HeldBackend(**{broken: True})
    supervisor, _ = await run_supervised(streamed_store, pack, backend, streamed=True)
    assert backend.streams == 2 * 3  # every reply was streamed first, and cut part-way (or empty)
    assert stored_replies(streamed_store, "r") == stored_replies(plain_store, "r")
    assert not db.status_counts(streamed_store, "r").get("failed")
    assert supervisor.stats["assistant"].errors == 0  # no step failed: the plain call answered


async def test_reply_chunks_are_coalesced_to_ten_a_second():
    """A fast stream publishes its first piece at once, then at most one chunk per 100 ms."""
    from actors.backends.types import Message

    class Router:
        def backend_for(self, role):
            return ScriptedBackend("embedded")

        async def stream(self, role, messages, **kwargs):
            for i in range(150):
                await anyio.sleep(0.004)
                yield f"w{i} "

    bus = EventBus()
    seen = bus.subscribe(buffer=1000)
    supervisor = Supervisor(None, Router(), None, bus=bus)
    supervisor.run_id = "r"
    started = anyio.current_time()
    reply = await supervisor._streamed("assistant", "assistant", "t", 1, [Message(role="user", content="hi")])
    elapsed = anyio.current_time() - started
    bus.close()
    chunks = [ev async for ev in seen]
    assert reply.text == "".join(f"w{i} " for i in range(150))
    assert chunks[0].text == "w0 "  # the first piece at once
    assert 2 <= len(chunks) <= elapsed / 0.1 + 1  # ~150 pieces, but at most ten chunks a second
    assert all(len(a.text) < len(b.text) for a, b in itertools.pairwise(chunks))
    assert supervisor.stats["assistant"].completion_tokens == 150
