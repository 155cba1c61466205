"""Shared helpers for the TUI tests: an app on a tmp workspace with scripted models.

The app is the real one (screens, controller, supervisor, store, chat store);
only the models are scripted, so flows run in milliseconds and every answer
is known.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from actors.backends.router import ModelRouter
from actors.run_config import RunConfig
from coach_tui.app import CoachApp
from coach_tui.context import AppContext
from state.chat import ChatStore
from tests.scripted import ScriptedBackend

SMALL_LENGTHS = {"short": 2, "medium": 2, "long": 3, "very_long": 3}


def scripted_router(**kwargs) -> ModelRouter:
    """Every role on one scripted backend, through the real router."""
    return ModelRouter(RunConfig(), {"embedded": ScriptedBackend("embedded", **kwargs)})


class StreamingBackend(ScriptedBackend):
    """Streams a fixed reply word by word, waiting ``gap_s`` between words (so a pilot sees it grow).

    With ``pause_after``, the stream stops after the first word containing it until the test
    calls ``resume()``: a reply seen half-written, however slow the machine.
    """

    def __init__(
        self,
        reply: str = "**Work:** That sounds like a heavy week. One small step could help.",
        gap_s: float = 0.0,
        pause_after: str | None = None,
    ) -> None:
        super().__init__("chat")
        self.reply = reply
        self.gap_s = gap_s
        self.pause_after = pause_after
        self._resumed: anyio.Event | None = None
        self.prompts: list = []

    def resume(self) -> None:
        self.pause_after = None
        if self._resumed is not None:
            self._resumed.set()

    async def stream(self, messages, *, max_tokens=512, temperature=0.7, seed=None) -> AsyncIterator[str]:
        self.prompts.append(list(messages))
        for word in self.reply.split(" ")[:max_tokens]:
            if self.gap_s:
                await anyio.sleep(self.gap_s)
            yield word + " "
            if self.pause_after and self.pause_after in word:
                self._resumed = anyio.Event()
                await self._resumed.wait()


def make_app(
    tmp_path: Path,
    *,
    chat_backend: ScriptedBackend | None = None,
    router_kwargs: dict | None = None,
    workspace: Path | None = None,
) -> CoachApp:
    context = AppContext(workspace_option=str(workspace or tmp_path / "ws"))
    backend = chat_backend or StreamingBackend()
    return CoachApp(
        context,
        context.pack(),
        router_factory=lambda: scripted_router(**(router_kwargs or {})),
        chat_backend_factory=lambda model: backend,
        chat_store=ChatStore(tmp_path / "chats"),
    )


async def wait_for(pilot, condition, timeout: float = 10.0, step: float = 0.05) -> None:
    """Let the app run until ``condition()`` holds (fails the test after ``timeout`` seconds)."""
    with anyio.fail_after(timeout):
        while not condition():
            await pilot.pause(step)


def text_of(widget) -> str:
    """The plain text a Static shows (markup, Content or any Rich renderable)."""
    content = widget.content
    if isinstance(content, str):
        from textual.content import Content

        return Content.from_markup(content).plain
    if hasattr(content, "plain"):
        return content.plain
    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    console.print(content)
    return console.export_text()
