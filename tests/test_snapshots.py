"""Snapshots of every screen at the smallest (80×24) and a large (160×45) terminal.

Why: the pilot tests check what a screen says, not how it is laid out; a stylesheet change that
clips a panel or wraps the footer at 80 columns passes them all. These SVGs catch it. Update them
with `pytest tests/test_snapshots.py --snapshot-update` after a deliberate change, and look at the
report of the differences before accepting it.

Deterministic by construction: scripted backends, the CPU/memory figures pinned, and a workspace
whose shortened path (the header shows its last 24 characters) is the same in every tmp folder.
"""

from __future__ import annotations

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
    # The Chat screen is left out: its model warms up in a thread and announces the chat format in a
    # toast whose arrival, on a loaded machine, can fall after any point the test could wait for.
    pytest.param(("4",), "TrainScreen", id="train"),
    pytest.param(("5",), "EvalScreen", id="eval"),
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
