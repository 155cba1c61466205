"""The run's headline and progress: what is running, how far, how fast, how well."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Static

from state.status import TranscriptStatus

from ..run_state import RunState

STATUS_STYLE = {
    "running": "bold green",
    "starting": "green",
    "paused": "bold yellow",
    "stopping": "yellow",
    "finished": "bold",
    "stopped": "yellow",
    "failed": "bold red",
    "interrupted": "yellow",
    "idle": "dim",
    "elsewhere": "bold cyan",
}


class RunBar(Vertical):
    DEFAULT_CSS = """
    RunBar { height: 2; padding: 0 1; }
    RunBar #headline { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    RunBar Horizontal { height: 1; }
    RunBar Label { width: auto; color: $text-muted; }
    RunBar ProgressBar { width: 1fr; }
    RunBar ProgressBar Bar { width: 1fr; }
    RunBar ProgressBar PercentageStatus { width: 5; text-align: right; }
    """

    def compose(self) -> ComposeResult:
        yield Static("No run yet — press [b]n[/b] to start one, or [b]h[/b] to pick one from History.", id="headline")
        with Horizontal():
            yield Label("transcripts ")
            yield ProgressBar(total=1, id="bar-transcripts", show_eta=False)
            yield Label(" exchanges ")
            yield ProgressBar(total=1, id="bar-exchanges", show_eta=False)

    def show(self, state: RunState) -> None:
        if state.run_id is None:
            return
        style = STATUS_STYLE.get(state.status, "")
        done, total = state.done, len(state.rows)
        written, planned = state.exchanges
        rate = state.pass_rate
        status = escape(state.status_text)
        parts = [f"[b]{state.run_id}[/b]", f"[{style}]{status}[/]" if style else status, f"{done}/{total} done"]
        if state.status in ("running", "paused", "starting"):
            parts.append(f"{state.throughput():.1f} exch/min")
        if rate is not None:
            parts.append(f"pass {rate:.0%} ({state.passed}/{state.assessed})")
        counts = state.status_counts()
        if counts.get(TranscriptStatus.REVIEW):
            parts.append(f"[b yellow]{counts[TranscriptStatus.REVIEW]} await review[/] (2)")
        if counts.get(TranscriptStatus.FAILED):
            parts.append(f"[red]{counts[TranscriptStatus.FAILED]} failed[/]")
        self.query_one("#headline", Static).update(" · ".join(parts), layout=False)  # one fixed line
        self.query_one("#bar-transcripts", ProgressBar).update(total=max(total, 1), progress=done)
        self.query_one("#bar-exchanges", ProgressBar).update(total=max(planned, 1), progress=written)
