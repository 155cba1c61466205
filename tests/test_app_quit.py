"""Quitting the app in a real terminal while a run works on the bundled model: it asks first, then
stops the run and exits 0.

This used to end in a segmentation fault (exit 139): the run's thread was a daemon still inside
llama.cpp when the interpreter exited and tore the library down under it. The app now stops the run,
waits for its thread, and frees the models before it exits; this test runs the real `coach` in a
pseudo-terminal and reads its exit status, the only place that crash shows.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from actors.usecases import runs
from actors.usecases.run_settings import RunSettings
from state.store import Store

pytestmark = pytest.mark.slow


class Terminal:
    """`coach` on the slave side of a pty; everything it draws is kept (and must be read, or it blocks)."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coach_tui", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.screen = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.screen += chunk

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_for_text(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            assert self.proc.poll() is None, f"coach exited early ({self.proc.returncode})"
            assert time.monotonic() < deadline, f"{text!r} never drawn"
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)


def query(ws: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(ws / "coach.db", timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_quitting_mid_run_asks_then_stops_the_run_and_exits_0(tmp_path: Path, pack):
    ws = tmp_path / "ws"
    store = Store.for_workspace(ws)
    run_id, _ = runs.plan_new_run(
        store,
        pack,
        RunSettings(
            transcripts=2,
            seed=1,
            lengths={"short": 3, "medium": 3, "long": 3, "very_long": 3},
            max_tokens=24,
            in_flight=2,
        ),
        source="test",
    )
    store.close()
    env = {k: v for k, v in os.environ.items() if k != "COACH_RUN_CONFIG"}
    term = Terminal("-w", str(ws), env={**env, "TERM": "xterm-256color", "COLUMNS": "110", "LINES": "30"})
    try:
        term.wait_for_text(run_id, timeout=60)
        term.press("u")  # resume the run shown: the bundled SmolLM2 in this process
        deadline = time.monotonic() + 300
        while not query(ws, f"select 1 from event where run_id = '{run_id}' and kind = 'PersonaReady'"):
            assert term.proc.poll() is None and time.monotonic() < deadline, "the run never got going"
            time.sleep(0.2)
        term.press("q")
        term.wait_for_text("Stop and quit", timeout=30)
        term.press("y")
        code = term.proc.wait(timeout=120)
    finally:
        term.close()
    assert code == 0, f"coach exited with {code}" + (" (segmentation fault)" if code == -signal.SIGSEGV else "")
    assert query(ws, f"select status from run where id = '{run_id}'") == [("stopped",)]
    assert query(ws, "select count(*) from lease") == [(0,)]
    assert query(ws, "select transcript_id, number from exchange group by 1, 2 having count(*) > 1") == []
