"""The TUI's plain-Python parts without a screen: the run-state fold, the private chat store,
the chat engine's stable prompt window, and the command palette's reach."""

from __future__ import annotations

import itertools
import os
import stat

import pytest

from actors.chat.engine import ChatEngine
from actors.events import ExchangeAdded, event_from
from coach_tui.run_state import RunState
from state.chat import CHAT_DIR_ENV, ChatMessage, ChatStore, default_chat_dir
from tests.scripted import ScriptedBackend
from tests.tui_support import make_app, wait_for

pytestmark = pytest.mark.anyio


def ev(kind, tid=None, **data):
    return event_from(kind, "r1", tid, data)


def test_run_state_folds_a_burst_into_what_changed():
    state = RunState(run_id="r1")
    changes = state.apply(
        [
            ev("RunStarted", transcripts=2),
            ev("PersonaReady", "r1-t0000"),
            ev("ExchangeAdded", "r1-t0000", number=1, target=2),
            ev("ExchangeAdded", "r1-t0000", number=2, target=2),
            ev("ExchangeAdded", "r1-t0001", number=1, target=3),
        ],
        now=100.0,
    )
    assert changes.run and changes.new_rows and changes.exchanges == {"r1-t0000", "r1-t0001"}
    assert state.exchanges == (3, 5) and state.status == "running"
    changes = state.apply(
        [
            ev("AssessmentDone", "r1-t0000", score=0.9, passed=True),
            ev("TranscriptFinished", "r1-t0000", status="passed"),
            ev("AssessmentDone", "r1-t0001", score=0.4, passed=False),
            ExchangeAdded(run_id="other-run", transcript_id="o-t0", number=1),
        ],
        now=101.0,
    )
    assert changes.assessed == {"r1-t0000", "r1-t0001"} and changes.rejections
    assert "o-t0" not in state.rows
    assert state.passed == 1 and state.assessed == 2 and state.pass_rate == 0.5
    assert state.scores == [0.9, 0.4] and state.score_passed == [True, False] and state.pass_history == [1.0, 0.5]
    assert state.done == 1
    assert state.throughput(now=101.0) > 0
    assert not state.apply([], now=102.0)


def test_chat_store_is_private_and_survives_a_bad_file(tmp_path, monkeypatch):
    monkeypatch.setenv(CHAT_DIR_ENV, str(tmp_path / "private" / "chats"))
    assert default_chat_dir() == tmp_path / "private" / "chats"
    store = ChatStore()
    conversation = store.new(model="smollm2")
    conversation.add("user", "A long first message about work, sleep and my sister's move next month")
    conversation.add("assistant", "**Work:** …")
    path = store.save(conversation)
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (store.root / "broken.json").write_text("{not json")
    [summary] = store.list()
    assert summary.turns == 1 and summary.title.endswith("…") and len(summary.title) <= 40
    assert store.load(conversation.id).messages[1].content == "**Work:** …"
    store.delete(conversation.id)
    assert store.list() == []
    with pytest.raises(ValueError):
        store.load("../escape")
    assert not [p for p in os.listdir(store.root) if p.endswith(".tmp")]


def history(turns: int, words: int = 60) -> list[ChatMessage]:
    out = []
    for i in range(turns):
        out += [ChatMessage("user", f"message {i} " + "word " * words), ChatMessage("assistant", "reply " * words)]
    return [*out, ChatMessage("user", "latest")]


async def test_chat_window_moves_rarely_and_far_so_the_prefix_stays_stable():
    backend = ScriptedBackend("chat", context_window=2_000)
    engine = ChatEngine(backend, "system prompt", max_tokens=200)
    starts = []
    for turns in range(1, 30):
        messages = await engine.fit(history(turns))
        assert messages[0].role == "system" and messages[-1].content == "latest"
        assert messages[1].role == "user"
        assert backend.count_tokens(messages) <= 2_000 - 200 - 16
        starts.append(engine.window_start)
    moves = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    assert starts[-1] > 0 and moves <= len(starts) // 4  # most turns reuse the previous prefix
    engine.reset()
    assert engine.window_start == 0


async def test_palette_lists_actions_runs_and_conversations(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for expected in (
            "Go to Chat (3)",
            "New run…",
            "Stop the run",
            "Review: accept this fixup",
            "Chat: new conversation",
            "Chat: show or hide support lines",
        ):
            assert expected in titles
        from coach_tui.palette import ConversationsProvider, RunsProvider

        assert {RunsProvider, ConversationsProvider} <= set(app.COMMANDS)
        # Palette commands reach the screens: open the chat through one.
        next(c for c in app.get_system_commands(app.screen) if c.title == "Go to Chat (3)").callback()
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ChatScreen")
        # The chat focuses its input once drawn: an escape before that has nothing to leave, and the "1"
        # after it would be typed into the input (on a busy machine the focus comes late).
        await wait_for(pilot, lambda: getattr(app.focused, "id", None) == "chat-input")
        await pilot.press("escape", "1")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MonitorScreen")
        await pilot.press("5")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "EvalScreen")
        await pilot.press("4")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TrainScreen")
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"new run")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunForm")


def test_the_long_run_warning_is_for_local_models_only(tmp_path):
    from pathlib import Path

    from coach_tui.run_control import generates_locally

    assert generates_locally(None)  # the embedded default
    example = Path(__file__).parents[1] / "run-config.example.yaml"
    assert not generates_locally(example)  # simulator and assistant on Claude
    broken = tmp_path / "broken.yaml"
    broken.write_text("roles: [")
    assert not generates_locally(broken)


# --- the new-run form: minimum exchanges, and keys typed fast ---------------------------------------


async def open_form(pilot):
    from coach_tui.screens.run_form import RunForm

    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunForm))
    return pilot.app.screen


async def test_the_form_offers_min_exchanges_and_warns_when_lengths_fall_below_it(tmp_path):
    """Lengths of 3 with the default minimum of 10: every rejected fixup rejected a whole transcript, unwarned."""
    from tests.tui_support import text_of

    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await open_form(pilot)
        warning = form.query_one("#short-warning")
        assert text_of(warning) == ""  # the spec's lengths (20, 50, 75, 100) are all above 10
        form.query_one("#lengths").value = "short=3,medium=3,long=12,very_long=3"
        await pilot.pause()
        text = text_of(warning)
        assert "short=3, medium=3" in text and "Min exchanges 10" in text and "whole transcript" in text
        assert "long=12" not in text and "very_long" not in text  # 3 transcripts: no very long one planned
        assert "Lower Min exchanges to 2" in text
        form.query_one("#min-exchanges").value = "2"
        await pilot.pause()
        assert text_of(warning) == ""
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.controller.state.run_id is not None)
        from actors.usecases.run_settings import from_stored
        from state import pipeline as db

        run = db.get_run(app.store, app.controller.state.run_id)
        assert from_stored(run.config).min_exchanges == 2


async def test_a_character_typed_right_after_a_deletion_is_kept(tmp_path):
    """Backspace then a quick keystroke: the backspace used to be applied after the next character.

    A terminal delivers a fast burst of keys without waiting for the app, so the keys are sent to the
    driver all at once. Textual's Input inserts characters at once but sends bound keys (backspace) up
    to the app first; the next character overtook the backspace, which then deleted it instead.
    """
    from textual import events

    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await open_form(pilot)
        for field, start, expected in (("transcripts", "3", "57"), ("lengths", "short=2", "short=57")):
            box = form.query_one(f"#{field}")
            box.value = start
            box.focus()
            await pilot.pause()
            box.action_end()
            for key, char in (("backspace", None), ("5", "5"), ("6", "6"), ("backspace", None), ("7", "7")):
                event = events.Key(key, char)
                event.set_sender(app)
                app._driver.send_message(event)
            await wait_for(pilot, lambda box=box, expected=expected: box.value == expected, timeout=3)


# --- screenshots -------------------------------------------------------------------------------------


async def test_the_screenshot_command_saves_an_svg_in_the_workspace_and_says_where(tmp_path, monkeypatch):
    """It used to save into ~/Downloads, which a server or a fresh account lacks: "Failed to save screenshot"."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no Downloads folder, as on the machine that failed
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        command = next(c for c in app.get_system_commands(app.screen) if c.title.startswith("Screenshot"))
        assert [c.title for c in app.get_system_commands(app.screen)].count(command.title) == 1
        command.callback()
        folder = tmp_path / "ws" / "screenshots"
        await wait_for(pilot, lambda: folder.is_dir() and any(folder.glob("*.svg")), timeout=5)
        [svg] = folder.glob("*.svg")
        assert svg.name.startswith("coach-monitor-") and "<svg" in svg.read_text()
        messages = [str(n.message) for n in app._notifications]
        assert any(str(svg) in m for m in messages), messages
