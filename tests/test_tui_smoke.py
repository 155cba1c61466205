"""The real app in a real terminal: start `coach` in tmux, drive it with keys, read the screen.

What a pilot test cannot see: the console entry point, the terminal driver,
the stylesheet at 100×30, and that nothing is printed over the screen.
Skipped (with the reason) where tmux is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install -y tmux)")


def _tmux(*args: str) -> str:
    return subprocess.run([TMUX, *args], check=True, capture_output=True, text=True).stdout


def _wait_for_screen(session: str, *needles: str, timeout: float = 60.0) -> str:
    """The screen once every needle is on it (a capture can catch a half-drawn frame)."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if all(needle in screen for needle in needles):
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{needles!r} never all appeared on the screen; last screen:\n{screen}")


def test_coach_opens_on_the_monitor_switches_to_chat_and_quits(tmp_path: Path):
    session = f"coach-smoke-{os.getpid()}"
    coach = Path(sys.executable).with_name("coach")
    command = [str(coach)] if coach.exists() else [sys.executable, "-m", "coach_tui"]
    env = {
        "COACH_WORKSPACE": str(tmp_path / "ws"),
        "COACH_CHAT_DIR": str(tmp_path / "chats"),
        "TERM": "xterm-256color",
    }
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    script = f"{exports} {' '.join(command)}; echo COACH-EXITED-$?; sleep 120"
    _tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", script)
    try:
        screen = _wait_for_screen(session, "1 Monitor", "no run", "No run yet", "Transcript", "New run")
        assert "3 Chat" in screen and "scores" in screen
        _tmux("send-keys", "-t", session, "3")
        _wait_for_screen(session, "Coaching, not therapy", "New chat", "Say what's on your mind")
        _tmux("send-keys", "-t", session, "Escape")
        time.sleep(0.5)
        _tmux("send-keys", "-t", session, "1")
        _wait_for_screen(session, "No run yet", "New run")
        _tmux("send-keys", "-t", session, "q")
        # Quit while the chat may still be warming its model in a thread: the exit must wait for
        # it, not free the model under it (that crashed with 139 on a slow machine).
        screen = _wait_for_screen(session, "COACH-EXITED-")
        assert "COACH-EXITED-0" in screen, screen
        assert "Traceback" not in screen
        assert not (tmp_path / "ws" / "chats").exists()
    finally:
        subprocess.run([TMUX, "kill-session", "-t", session], capture_output=True)
