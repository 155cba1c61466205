"""The run's headline and progress: what is running, how far, how fast, how well, and at what cost.

Three lines: the headline (run, status, transcripts done, pass rate); two
progress bars with the app's own CPU and memory use beside them; and one
line per stage under way — exchanges written, transcripts in curation,
criteria judged out of the total — each with its rate and ETA while the run
is live. Rates come from `RunState.stages`, which let them decay when work
stops, so a figure on this bar is never left over from an earlier moment.
"""

from __future__ import annotations

import os

import psutil
from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Static

from state.status import TranscriptStatus

from ..run_state import RunState, StageProgress

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


def duration(seconds: float) -> str:
    """`42s`, `4m12s`, `2h05m`: an ETA as short as it can be read."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _pace(stage: StageProgress) -> list[str]:
    parts = []
    if stage.per_minute is not None:
        parts.append(f"{stage.per_minute:.1f}/min" if stage.per_minute < 10 else f"{stage.per_minute:.0f}/min")
    if stage.eta_s is not None:
        parts.append(f"ETA {duration(stage.eta_s)}")
    return parts


def stage_text(stage: StageProgress) -> str:
    """One stage as words: `generating 18/40 exch · 5.2/min · ETA 4m12s`."""
    if stage.name == "generating":
        if stage.total is not None and stage.done >= stage.total:
            return f"generated {stage.done}/{stage.total} exch ✓"
        return " · ".join([f"generating {stage.done}/{stage.total} exch", *_pace(stage)])
    if stage.name == "curating":
        return f"curating {stage.active}"
    if stage.name == "assessing":
        judged = f"{stage.transcripts_done}/{stage.transcripts_total} judged"
        if not stage.active:
            return judged
        if stage.total is None and not stage.done:  # no verdict yet (queued for the assessor, or just begun)
            return f"assessing ({stage.active}) · {judged}"
        of = f"/{stage.total}" if stage.total is not None else ""
        return " · ".join([f"assessing {stage.done}{of} criteria ({stage.active})", *_pace(stage), judged])
    return stage.name


class ProcessUsage:
    """This app's own CPU (percent of one core, since the last look) and resident memory.

    Why the app's process: its event loop, the run's thread and the in-process models all live
    in it, so this is what a slow machine is spending on coach.
    """

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # the first reading only sets the baseline

    def sample(self) -> tuple[float, int]:
        with self._process.oneshot():
            return self._process.cpu_percent(None), self._process.memory_info().rss


def usage_text(cpu_percent: float, rss_bytes: int) -> str:
    mib = rss_bytes / 2**20
    memory = f"{mib / 1024:.1f} GB" if mib >= 1024 else f"{mib:.0f} MB"
    return f" cpu {cpu_percent:.0f}% · mem {memory}"


class RunBar(Vertical):
    DEFAULT_CSS = """
    RunBar { height: 3; padding: 0 1; }
    RunBar #headline, RunBar #stages { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    RunBar #stages { color: $text-muted; }
    RunBar Horizontal { height: 1; }
    RunBar Label { width: auto; color: $text-muted; }
    RunBar #usage { width: 23; text-wrap: nowrap; }
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
            yield Label("", id="usage")
        yield Static("", id="stages", markup=False)

    def show(self, state: RunState) -> None:
        if state.run_id is None:
            return
        style = STATUS_STYLE.get(state.status, "")
        done, total = state.done, len(state.rows)
        written, planned = state.exchanges
        rate = state.pass_rate
        status = escape(state.status_text)
        parts = [f"[b]{state.run_id}[/b]", f"[{style}]{status}[/]" if style else status, f"{done}/{total} done"]
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
        self.query_one("#stages", Static).update(" │ ".join(stage_text(s) for s in state.stages()), layout=False)

    def show_usage(self, cpu_percent: float, rss_bytes: int) -> None:
        self.query_one("#usage", Label).update(usage_text(cpu_percent, rss_bytes))
