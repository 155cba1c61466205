"""Asked before quitting while a run is live: quitting stops it (nothing is lost; it can be resumed)."""

from __future__ import annotations

from .confirm import Confirm


class ConfirmQuit(Confirm):
    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"Run [b]{run_id}[/b] is live. Quitting stops it: the calls in flight end, "
            "every finished step is kept, and [b]u[/b] (or `coach run --resume`) continues it later.",
            yes="Stop and quit",
            no="Cancel",
        )
        self.run_id = run_id
