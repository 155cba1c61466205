"""The background jobs of this workspace: which run, how each ended, and the last lines the highlighted one printed.

Jobs are read from their folders (`actors.usecases.jobs`), so a job started
by an app that has since closed is listed like one started a second ago.
The panel hides itself while the workspace has none.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from actors.usecases.jobs import Job, exit_text, log_tail

from ..formatting import duration
from .keyed_table import KeyedTable

STATE_STYLE = {
    "running": "green",
    "stopping": "yellow",
    "finished": "bold",
    "failed": "red",
    "stopped": "yellow",
}
LOG_LINES = 3


def state_text(job: Job) -> Text:
    return Text(job.state, style=STATE_STYLE.get(job.state, ""))


def _elapsed(job: Job) -> str:
    start = job.started_at or job.created_at
    if start is None:
        return "–"
    end = job.ended_at or (datetime.now(UTC) if job.running else None)
    return duration((end - start).total_seconds()) if end else "–"


def _started(job: Job) -> str:
    if job.created_at is None:
        return "?"
    local = job.created_at.astimezone()
    today = datetime.now().astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%m-%d %H:%M")


class JobsTable(KeyedTable):
    DEFAULT_CSS = "JobsTable { height: auto; max-height: 4; }"
    COLUMNS = ("what", "status", "exit", "started", "time", "job")

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self._shown: list[tuple] | None = None
        for column in self.COLUMNS:
            self.add_column(column, key=column)

    @staticmethod
    def cells(job: Job) -> tuple:
        code = "" if job.running else exit_text(job.exit_code)
        return (job.title, state_text(job), code, _started(job), _elapsed(job), job.id)

    def show(self, jobs: list[Job]) -> None:
        """Replace the rows when anything drawn changed; the cursor stays on the job it was on."""
        rows = [(job.id, *map(str, self.cells(job))) for job in jobs]
        if rows == self._shown:
            return
        keep = self.selected_key
        self._shown = rows
        self.clear()
        for job in jobs:
            self.add_row(*self.cells(job), key=job.id)
        self.keep_cursor_on(keep)


class JobsPanel(Vertical):
    DEFAULT_CSS = """
    JobsPanel { height: auto; border-top: hkey $foreground 20%; }
    JobsPanel #job-log { height: auto; max-height: 4; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.jobs: list[Job] = []
        """The jobs listed, newest first."""

    def compose(self) -> ComposeResult:
        yield JobsTable(id="jobs-table")
        yield Static("", id="job-log")

    def on_mount(self) -> None:
        self.display = False

    @property
    def selected(self) -> Job | None:
        chosen = self.query_one(JobsTable).selected_key
        return next((j for j in self.jobs if j.id == chosen), None)

    def show(self, jobs: list[Job]) -> None:
        self.jobs = list(jobs)
        self.display = bool(jobs)
        self.query_one(JobsTable).show(jobs)
        self.show_log()

    def show_log(self) -> None:
        job = self.selected
        if job is None:
            self.query_one("#job-log", Static).update("")
            return
        lines = [state_text(job)]
        if not job.running:
            lines[0].append(f" · exit {exit_text(job.exit_code)}", style="red" if job.exit_code else "")
        lines[0].append(f" · {job.title}", style="bold")
        if job.note:
            lines[0].append(f" · {job.note}", style="yellow")
        lines[0].append(f"  {job.command}", style="dim")
        style = "red" if job.state == "failed" else ""
        lines += [Text(line, style=style) for line in log_tail(job.log, LOG_LINES)]
        self.query_one("#job-log", Static).update(Text("\n").join(lines))  # one screen line each (CSS)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.show_log()
