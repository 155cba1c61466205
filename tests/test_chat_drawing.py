"""What keeps the screen responsive while replies stream (see `benchmarks/bench_tui.py`, figure b).

* Two columns streaming side by side are drawn in the same tick and one batch of updates: one
  layout of the screen per tick, not one per column (each column on a timer of its own drew
  out of step, twice the layouts).
* The single chat draws a reply in batches too, not at every piece.
* The app uses the collector's thresholds of `actors.heap`, and the crisis net, loaded for
  the whole session when the chat opens, is frozen out of the collector's sight.
"""

from __future__ import annotations

import gc

import pytest

from actors import heap
from actors.chat.pair import ChatPair
from actors.safety import load_safety_net
from coach_tui.screens.side_by_side import SideBySideScreen
from coach_tui.widgets.chat_column import ChatColumn
from coach_tui.widgets.chat_log import AssistantSaid
from tests.test_chat_side_by_side import GEMMA, SMOL, open_chat, say, two_model_app, until
from tests.test_tui_chat import say as say_in_chat
from tests.tui_support import StreamingBackend, make_app, wait_for

pytestmark = pytest.mark.anyio

REPLY = " ".join(f"word{n}" for n in range(40))


async def open_pair(pilot) -> SideBySideScreen:
    app = pilot.app
    chat = await open_chat(pilot)
    app.push_screen(SideBySideScreen(ChatPair.start(app.chat_store, chat.safety, (SMOL, GEMMA))))
    await until(lambda: isinstance(app.screen, SideBySideScreen) and app.screen.warmed)
    return app.screen


def recording_appends(monkeypatch, app) -> list[tuple[int, bool]]:
    """Every append to a reply: (id of the reply, whether it was made inside a batch of updates)."""
    calls: list[tuple[int, bool]] = []
    original = AssistantSaid.append

    def append(self, markdown):
        calls.append((id(self), app._batch_count > 0))
        return original(self, markdown)

    monkeypatch.setattr(AssistantSaid, "append", append)
    return calls


async def test_both_columns_are_drawn_in_the_same_batch_while_they_stream(tmp_path, monkeypatch):
    left, right = StreamingBackend(REPLY, gap_s=0.01), StreamingBackend(REPLY, gap_s=0.01)
    app = two_model_app(tmp_path, left, right)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_pair(pilot)
        calls = recording_appends(monkeypatch, app)
        await say(pilot, screen, "Work is a lot.")
        await wait_for(pilot, lambda: not screen.generating)
        replies = [id(column.query(AssistantSaid).last()) for column in screen.query(ChatColumn)]
        assert all(column.query(AssistantSaid).last().source.strip() == REPLY for column in screen.query(ChatColumn))
    while_streaming = calls[:-2]  # each column's last append comes as its reply ends
    assert {reply for reply, _ in while_streaming} == set(replies)
    assert all(batched for _, batched in while_streaming)
    assert len(calls) < len(REPLY.split()) * 2  # pieces drawn together, not one append each


async def test_the_single_chat_draws_a_reply_in_batches_not_at_every_piece(tmp_path, monkeypatch):
    backend = StreamingBackend(REPLY, gap_s=0.002)
    app = make_app(tmp_path, chat_backend=backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_chat(pilot)
        calls = recording_appends(monkeypatch, app)
        await say_in_chat(pilot, screen, "Work is a lot.")
        await wait_for(pilot, lambda: not screen.generating)
        assert screen.query(AssistantSaid).last().source.strip() == REPLY
    # 40 pieces 2 ms apart: a few ticks of the flush timer, however fast the machine draws.
    assert 1 <= len(calls) <= 10


async def test_the_collector_is_tuned_and_the_crisis_net_frozen_once_the_chat_opens(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_chat(pilot)
        assert gc.get_threshold() == heap.THRESHOLDS
        net = load_safety_net(app.pack)
        # Frozen objects are in no generation the collector walks.
        assert not any(obj is net for obj in gc.get_objects())
