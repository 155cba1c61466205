"""The crisis net is loaded once, in the background, as `coach` starts: the chat finds it ready.

Why it matters: loading the six lexicons and the classifier takes seconds on a small CPU, and the
chat waits for the net before it sends anything, so the first press of 3 used to freeze the chat
for that long. Two callers at once must share one load, not race two.
"""

from __future__ import annotations

import shutil
import threading

import pytest

import coach_tui.app as app_module
from actors.safety import loader
from actors.safety.loader import BUNDLED_SAFETY, cached_net_at
from coach_tui.app import CoachApp, run_app
from coach_tui.context import AppContext
from tests.tui_support import make_app, wait_for

pytestmark = pytest.mark.anyio


def test_two_callers_at_once_share_one_load(tmp_path, monkeypatch):
    safety = tmp_path / "safety"
    shutil.copytree(BUNDLED_SAFETY.parent, safety)
    loads = []
    real = loader.load_net_at

    def counted(path, **kwargs):
        loads.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(loader, "load_net_at", counted)
    nets = []
    callers = [threading.Thread(target=lambda: nets.append(cached_net_at(safety / "safety.yaml"))) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(loads) == 1
    assert nets[0] is nets[1]


async def test_the_app_loads_the_net_in_a_thread_after_its_first_screen(tmp_path, monkeypatch):
    started = []
    real = app_module.preload_safety_net

    def recorded(pack):
        thread = real(pack)
        started.append((pack, thread))
        return thread

    monkeypatch.setattr(app_module, "preload_safety_net", recorded)
    app = make_app(tmp_path)
    app.preload_safety = True
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: started)
        (pack, thread), *more = started
        assert not more
        assert pack is app.pack
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert str(loader.safety_file_of(app.pack).resolve()) in {key[0] for key in loader._CACHE}


async def test_an_app_in_a_test_does_not_preload(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(app_module, "preload_safety_net", started.append)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
    assert not started


def test_coach_asks_for_the_preload(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(CoachApp, "run", lambda self: seen.setdefault("preload", self.preload_safety))
    run_app(AppContext(workspace_option=str(tmp_path / "ws")))
    assert seen == {"preload": True}
