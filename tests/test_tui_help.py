"""The help screen: `?` and F1 anywhere, every screen's own keys (built from their BINDINGS, so it
cannot drift), the palette finds it, and the README's keys table is the same table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.screen import Screen

from coach_tui.app import CoachApp
from coach_tui.screens.help import HelpScreen, binding_rows, key_label, keys_markdown
from coach_tui.screens.review import ReviewScreen
from tests.tui_support import make_app, text_of, wait_for

pytestmark = pytest.mark.anyio

README = Path(__file__).parents[1] / "README.md"


def shown(app) -> str:
    return "\n".join(text_of(s) for s in app.screen.query(".help-section"))


async def test_question_mark_and_f1_show_each_screens_keys_with_this_screen_first(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = shown(app)
        assert text.lstrip().startswith("Monitor  (this screen)")
        for title, _ in CoachApp.HELP_SCREENS:
            assert title in text
        assert "Everywhere" in text and "ctrl+p" in text and "?/F1" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = shown(app)
        assert text.lstrip().startswith("Review  (this screen)") and "Undo the selected decision" in text
        await pilot.press("q")  # closes the help, does not quit
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen))
        assert app.is_running
        # F1 also over a form (a modal hides the app's keys), and F1 again closes the help.
        await pilot.press("1", "n")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunForm")
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert shown(app).lstrip().startswith("New run form  (this screen)")
        await pilot.press("f1")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunForm")


async def test_the_palette_finds_help(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"help")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))


def test_every_binding_of_every_screen_is_in_the_help():
    """Built from BINDINGS: a key added to a screen appears without anyone writing help text."""
    sections = {s.title: s for s in CoachApp.help_sections()}
    for title, cls in CoachApp.HELP_SCREENS:
        listed = {key for keys, _ in sections[title].rows for key in keys.split("/")}
        for klass in cls.__mro__:
            for binding in klass.__dict__.get("BINDINGS", ()) if klass.__module__.startswith("coach_tui") else ():
                assert {key_label(k) for k in binding.key.split(",")} <= listed, (title, binding)
    new = type(
        "NewScreen", (Screen,), {"__module__": "coach_tui.screens.new", "BINDINGS": [Binding("z", "zap", "Zap")]}
    )
    assert binding_rows(new) == (("z", "Zap"),)
    assert binding_rows(type("Theirs", (Screen,), {"BINDINGS": [Binding("z", "zap", "Zap")]})) == ()


def test_the_readme_keys_table_is_the_help_screen():
    """Regenerate it with: python -c 'from coach_tui.app import CoachApp; from coach_tui.screens.help
    import keys_markdown; print(keys_markdown(CoachApp.help_sections()))'"""
    readme = README.read_text(encoding="utf-8")
    table = keys_markdown(CoachApp.help_sections())
    found = re.search(r"^\| where \| keys \|\n(?:\|.*\|\n?)+", readme, re.M)
    assert found, "README has no keys table (| where | keys |)"
    assert found.group(0).strip() == table
