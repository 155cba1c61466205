"""Snapshots of every screen at the smallest (80×24) and a large (160×45) terminal.

Why: the pilot tests check what a screen says, not how it is laid out; a stylesheet change that
clips a panel or wraps the footer at 80 columns passes them all. These SVGs catch it. Update them
with `pytest tests/test_snapshots.py --snapshot-update` after a deliberate change, and look at the
report of the differences before accepting it.

Deterministic by construction: scripted backends, the CPU/memory figures pinned, and a workspace
whose shortened path (the header shows its last 24 characters) is the same in every tmp folder.
"""

from __future__ import annotations

import anyio
import pytest

from coach_tui.widgets import run_bar
from tests.tui_support import make_app, wait_for

PINNED_USAGE = (7.0, 123 * 2**20)
"""CPU percent and resident bytes, as `ProcessUsage.sample` returns them."""
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 45), id="160x45")]


def screen_is(name: str):
    """A run_before that presses `keys` and waits until the screen named `name` is on top."""

    def make(keys: tuple[str, ...]):
        async def run_before(pilot) -> None:
            app = pilot.app
            await wait_for(pilot, lambda: type(app.screen).__name__ == "MonitorScreen")
            # The figures appear on the monitor's first one-second tick: drawn now, the same as every
            # later tick draws them, whether or not a tick comes before the snapshot.
            app.screen.query_one(run_bar.RunBar).show_usage(*PINNED_USAGE)
            if keys:
                await pilot.press(*keys)
            await wait_for(pilot, lambda: type(app.screen).__name__ == name)
            await pilot.pause()
            await app.workers.wait_for_complete()
            # A toast (the chat's "Chat format: …" after its warm-up) lasts seconds: whether it is
            # still up depends on the machine's speed, so none is in a snapshot.
            app.clear_notifications()
            # A blinking cursor is on or off by the clock: held steady (shown) in every text field.
            for field in app.screen.query("Input, TextArea"):
                field.cursor_blink = False
            await pilot.pause()

        return run_before

    return make


SCREENS = [
    pytest.param((), "MonitorScreen", id="monitor"),
    pytest.param(("2",), "ReviewScreen", id="review"),
    # The Chat screen and the side-by-side chat: `test_chat_snapshot` below, which waits for their warm-ups.
    pytest.param(("4",), "TrainScreen", id="train"),
    pytest.param(("5",), "EvalScreen", id="eval"),
    pytest.param(("6",), "OptimizeScreen", id="optimize"),
    pytest.param(("question_mark",), "HelpScreen", id="help"),
    pytest.param(("n",), "RunForm", id="run-form"),
]


@pytest.fixture
def pinned_usage(monkeypatch):
    """The monitor's CPU and memory figures are this process's own: pinned, or every snapshot differs."""
    monkeypatch.setattr(run_bar.ProcessUsage, "sample", lambda self: PINNED_USAGE)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("keys", "screen"), SCREENS)
def test_screen_snapshot(snap_compare, tmp_path, pinned_usage, keys, screen, size):
    # The header shortens the workspace to its last 24 characters: this tail is all that shows.
    app = make_app(tmp_path, workspace=tmp_path / "snapshot-workspace-folder" / "ws")
    assert snap_compare(app, terminal_size=size, run_before=screen_is(screen)(keys))


# --- the chat and the side-by-side chat -----------------------------------------------------

CHAT_DAY = "2026-01-05T09:30:00+00:00"
"""Every seeded message and conversation is dated this (the conversation list shows the date)."""
CHAT_TURN = (
    "Work has been a lot this week and I keep sleeping badly.",
    "**That sounds heavy.** A few things that often help:\n\n"
    "- Pick *one* task for the morning.\n- Take the walk after lunch, even ten minutes of it.\n\n"
    "What would feel like enough for this week?",
    "first token 0.41s · 38 tokens · 52 tok/s",
)


def seeded(conversation, model: str):
    """One exchange, with the note and dates fixed (a live reply's note carries its own timings)."""
    words, reply, note = CHAT_TURN
    conversation.add("user", words, model=model)
    conversation.add("assistant", reply, model=model, note=note)
    for message in conversation.messages:
        message.at = CHAT_DAY
    conversation.created_at = conversation.updated_at = CHAT_DAY
    return conversation


async def until(condition, timeout: float = 300) -> None:
    """Let the app run until ``condition()`` holds: plain sleeps, not `pilot.pause`.

    `pilot.pause` fails when a screen has not emptied its queue for 30 s, which the chat does
    while it loads the crisis net (its messages wait for it) on a heavily loaded machine.
    """
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


def chat_ready(side_by_side: bool):
    """A run_before: the chat (and, if asked, a side-by-side pair), once every warm-up has ended.

    The chat warms its model in the background after it opens, and says so in the status line
    (and, for a GGUF, in a toast): the snapshot waits for the screen's own `warmed`, not a time.
    """

    async def run_before(pilot) -> None:
        from actors.chat.pair import ChatPair
        from coach_tui.screens.chat import ChatScreen
        from coach_tui.screens.side_by_side import SideBySideScreen

        app = pilot.app
        await until(lambda: type(app.screen).__name__ == "MonitorScreen")
        app.switch_mode("chat")
        await until(lambda: isinstance(app.screen, ChatScreen) and app.screen.warmed)
        if side_by_side:
            chat = app.screen
            models = ("smollm2-135m-instruct", "gemma3-270m")
            pair = ChatPair(app.chat_store, chat.safety, [seeded(app.chat_store.new(model=m), m) for m in models])
            app.push_screen(SideBySideScreen(pair))
            await until(lambda: isinstance(app.screen, SideBySideScreen) and app.screen.warmed)
        await app.workers.wait_for_complete()
        app.clear_notifications()
        for field in app.screen.query("Input, TextArea"):
            field.cursor_blink = False
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("side_by_side", [pytest.param(False, id="chat"), pytest.param(True, id="side-by-side")])
def test_chat_snapshot(snap_compare, tmp_path, pinned_usage, side_by_side, size):
    from state.chat import ChatStore

    store = ChatStore(tmp_path / "chats")  # the app's private history (see `make_app`): one conversation in it
    conversation = store.new(model="smollm2-135m-instruct")
    conversation.id = "20260105-093000-abcdef"
    store.save(seeded(conversation, conversation.model))
    app = make_app(tmp_path, workspace=tmp_path / "snapshot-workspace-folder" / "ws")
    assert snap_compare(app, terminal_size=size, run_before=chat_ready(side_by_side))
