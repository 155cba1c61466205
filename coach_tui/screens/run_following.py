"""A screen showing runs that another process may still be writing (`coach train`, `coach eval`).

Such runs reach the screen through the store alone. The screen reads it
when shown and, while the run on screen is live and the screen visible,
every POLL_S seconds; each subclass asks first whether its run moved at all
(`state.run_index.run_marker`) and redraws only if it did. The timer stops as soon as
the run ends or the screen is left.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer

from ..widgets.run_list import RunList

POLL_S = 2.0


class RunFollowingScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]

    selected: var[str | None] = var(None)
    """The run shown below the list."""
    live: var[bool] = var(False)
    """The shown run may still change: poll the store while this holds and the screen is visible."""

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None

    def reload(self) -> None:  # pragma: no cover - every subclass says
        """Re-read the list of runs and the one highlighted."""
        raise NotImplementedError

    async def poll(self) -> None:  # pragma: no cover - every subclass says
        """Redraw the shown run if the store says it moved."""
        raise NotImplementedError

    def on_screen_resume(self) -> None:
        self.query_one(RunList).focus()
        self.reload()
        self._poll_while(self.live)

    def on_screen_suspend(self) -> None:
        self._poll_while(False)

    def watch_live(self, live: bool) -> None:
        self._poll_while(live and self.is_current)

    def _poll_while(self, on: bool) -> None:
        if on and self._timer is None:
            self._timer = self.set_interval(POLL_S, self.poll)
        elif not on and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def action_refresh(self) -> None:
        self.reload()
