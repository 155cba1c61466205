"""Why transcripts were rejected or truncated, most common reason first, plus recent backend errors."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..run_state import RunState


class RejectionSummary(VerticalScroll):
    DEFAULT_CSS = "RejectionSummary { height: 1fr; }"

    def compose(self):
        yield Static("Nothing rejected yet.", id="reasons")

    def show(self, state: RunState, criterion_names: dict[str, str] | None = None) -> None:
        names = criterion_names or {}
        text = Text()
        reasons = sorted(state.rejection_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        if reasons:
            top = reasons[0][1]
            text.append("Rejection and truncation reasons\n", style="bold")
            for reason, count in reasons:
                bar = "█" * max(1, round(count / top * 20))
                label = f"{reason} {names[reason]}" if reason in names else reason
                text.append(f"{count:>4} ", style="bold")
                text.append(f"{bar:<20} ", style="red")
                text.append(f"{label}\n")
        else:
            text.append("Nothing rejected yet.\n", style="dim")
        if state.errors:
            text.append("\nRecent backend errors\n", style="bold")
            for line in list(state.errors)[-10:]:
                text.append(f"• {line}\n", style="red")
        self.query_one("#reasons", Static).update(text)
