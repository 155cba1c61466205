"""Optimize: the workspace's prompt optimisations, and the highlighted one's candidates, scores and front.

`coach optimize` runs in a process of its own and records each candidate and
each scored conversation as it goes (`state.optimization_records`); this
screen follows it from the store, as Train follows a training
(`RunFollowingScreen`: while the shown run is live it asks every couple of
seconds whether the run moved, and redraws only then). It also looks for new
optimisations every second while visible, so one started in a shell appears
and is selected without a key press. Everything is read through
`actors.usecases.optimizations`, off the event loop.

Shown per candidate: its score on each persona (validation personas first,
marked `*`: they decide the Pareto front), the validation mean GEPA ranks by,
the mean over every persona scored, and whether it is on the front or best.
Below: the budget spent, the judge's token cost, and the highlighted
candidate's failed criteria and prompt texts.
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from actors.usecases.optimizations import (
    CandidateRow,
    OptimizationSnapshot,
    OptimizeRunInfo,
    optimization_runs,
    optimization_snapshot,
    run_marker,
)

from ..widgets.app_header import AppHeader
from ..widgets.keyed_table import KeyedTable
from ..widgets.run_list import RunList, run_status_text
from .run_following import RunFollowingScreen

LOOK_S = 1.0
"""How often the list is checked for a new optimisation (one query) while the screen is visible."""
BAR_WIDTH = 20
TEXT_LINES = 12
"""Lines of each prompt text shown for the highlighted candidate (the rest is elided)."""
START_HINT = "coach optimize --component assistant --max-calls 24"


def score_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def progress_bar(done: int, budget: int, width: int = BAR_WIDTH) -> str:
    """`[██████░░░░] 3/10`: conversations judged out of the budget (GEPA may pass it by a batch: shown full)."""
    if budget <= 0:
        return f"{done} judged"
    filled = min(width, round(width * done / budget))
    return f"[{'█' * filled}{'░' * (width - filled)}] {done}/{budget}"


class OptimizeRunsTable(RunList):
    COLUMNS = ("run", "status", "pack", "optimises", "judged", "best")

    def cells(self, run: OptimizeRunInfo) -> tuple:
        return (
            run.id,
            run_status_text(run.status),
            run.pack,
            ", ".join(run.components),
            f"{run.rollouts}/{run.budget}" if run.budget else str(run.rollouts),
            score_text(run.best_score),
        )


class CandidatesTable(KeyedTable):
    """One row per candidate, one column per persona; rebuilt only when the snapshot changed."""

    DEFAULT_CSS = "CandidatesTable { height: auto; max-height: 9; }"

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self._personas: list[str] | None = None
        self._rows: list | None = None

    def show(self, snapshot: OptimizationSnapshot, keep: str | None) -> None:
        personas = snapshot.personas
        rows = [(c, tuple(c.scores.items())) for c in snapshot.candidates]
        if personas == self._personas and rows == self._rows:
            return
        if personas != self._personas:
            self.clear(columns=True)
            self.add_column("#", key="#")
            self.add_column("candidate", key="candidate")
            self.add_column("val", key="val")
            self.add_column("mean", key="mean")
            for persona in personas:
                label = f"{persona}*" if persona in snapshot.validation else persona
                self.add_column(label, key=persona)
            self.add_column("", key="marks")
            self._personas = list(personas)
        else:
            self.clear()
        self._rows = rows
        for c in snapshot.candidates:
            marks = " ".join(m for m, on in (("best", c.best), ("front", c.front)) if on)
            self.add_row(
                str(c.number),
                c.key,
                score_text(c.validation_mean),
                score_text(c.mean),
                *(score_text(c.scores.get(p)) for p in personas),
                Text(marks, style="bold green" if c.best else "green"),
                key=c.key,
            )
        self.keep_cursor_on(keep)


class OptimizeDetail(Static):
    """Progress of the shown optimisation, then the highlighted candidate: failed criteria and texts."""

    def show_empty(self) -> None:
        self.update(
            Text.assemble(
                ("No prompt optimisation in this workspace yet.\n\n", "bold"),
                "Start one from a shell; it appears here by itself and is followed while it runs:\n\n  ",
                (START_HINT, "bold"),
                "\n\nEach candidate prompt is scored on simulated personas by the rubric; "
                "the screen shows the scores, the Pareto front and the budget spent.",
            )
        )

    def show_problem(self, run_id: str, problem: str) -> None:
        self.update(Text.assemble((f"{run_id}\n\n", "bold"), problem))

    def show(self, snapshot: OptimizationSnapshot, candidate: CandidateRow | None) -> None:
        info = snapshot.info
        head = Text.assemble(
            ("Progress ", "bold"),
            progress_bar(info.rollouts, info.budget),
            f" judged · {len(snapshot.candidates)} candidate(s) · ",
            run_status_text(info.status),
        )
        parts: list = [head]
        sent, evaluated = snapshot.judge_prompt_tokens, snapshot.judge_evaluated_tokens
        if sent:
            parts.append(
                Text(
                    f"Judge tokens: {sent:,} sent, {evaluated:,} evaluated, not from the cache ({evaluated / sent:.2f})"
                )
            )
        front = [str(c.number) for c in snapshot.candidates if c.front]
        best = snapshot.best
        parts.append(
            Text(
                f"Pareto front: {', '.join(front) or '–'} · best: "
                + (f"{best.number} (validation {score_text(best.validation_mean)})" if best else "–")
                + ("" if snapshot.finished else " so far")
                + " · *: validation persona"
            )
        )
        if info.error and info.status != "running":
            parts.append(Text(f"Stopped: {info.error}", style="red"))
            parts.append(Text(f"coach optimize --resume {info.id} continues it", style="dim"))
        if candidate is not None:
            parts.append(Text(""))
            parts += self._candidate(candidate)
        self.update(Group(*parts))

    @staticmethod
    def _candidate(c: CandidateRow) -> list:
        marks = [m for m, on in (("on the front", c.front), ("best", c.best)) if on]
        lines: list = [
            Text.assemble(
                (f"Candidate {c.number} ", "bold"),
                f"({c.key}) · validation {score_text(c.validation_mean)} · mean {score_text(c.mean)}",
                f" · {', '.join(marks)}" if marks else "",
            )
        ]
        failed = ", ".join(f"{cid} ×{n}" for cid, n in c.failed.items())
        lines.append(Text(f"Failed criteria: {failed or 'none'}"))
        for name, text in c.texts.items():
            body = text.strip().splitlines()
            shown = "\n".join(body[:TEXT_LINES])
            more = f"\n… {len(body) - TEXT_LINES} more line(s)" if len(body) > TEXT_LINES else ""
            lines.append(Text(f"\n{name}:", style="bold"))
            lines.append(Text(shown + more, style="dim" if c.number == 0 else ""))
        return lines


class OptimizeScreen(RunFollowingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "app.focus_next", "Runs/candidates", show=False, tooltip="between the runs and the candidates"),
    ]

    DEFAULT_CSS = """
    OptimizeScreen #optimize-runs { border-bottom: hkey $foreground 20%; scrollbar-size-vertical: 1; max-height: 6; }
    OptimizeScreen.-wide #optimize-runs { max-height: 10; }
    OptimizeScreen #optimize-candidates { border-bottom: hkey $foreground 20%; scrollbar-size-vertical: 1; }
    OptimizeScreen.-wide #optimize-candidates { max-height: 14; }
    OptimizeScreen #optimize-body { height: 1fr; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.shown: OptimizationSnapshot | None = None
        """The optimisation on screen, for the poll and tests."""
        self.candidate: str | None = None
        """The highlighted candidate's key."""
        self._listed: list[tuple[str, str]] | None = None
        self._look_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield AppHeader("optimize")
        yield OptimizeRunsTable(id="optimize-runs")
        yield CandidatesTable(id="optimize-candidates")
        with VerticalScroll(id="optimize-body"):
            yield OptimizeDetail(id="optimize-detail")
        yield Footer()

    # --- following ------------------------------------------------------------------------

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._look_timer is None:
            self._look_timer = self.set_interval(LOOK_S, self.look_for_runs)

    def on_screen_suspend(self) -> None:
        super().on_screen_suspend()
        if self._look_timer is not None:
            self._look_timer.stop()
            self._look_timer = None

    async def look_for_runs(self) -> None:
        """A new optimisation, or one that changed status, reloads the list."""
        try:
            runs = await anyio.to_thread.run_sync(optimization_runs, self.app.store)
        except Exception:  # noqa: BLE001 - a locked database: the next look tries again
            return
        if self.is_attached and self._listed is not None and [(r.id, r.status) for r in runs] != self._listed:
            self.reload()

    def reload(self) -> None:
        """Re-read the list of optimisations and the one highlighted."""
        runs = optimization_runs(self.app.store)
        if self._listed is not None and runs and runs[0].id not in dict(self._listed):
            self.selected = runs[0].id  # one that just started is the one to watch
        self._listed = [(r.id, r.status) for r in runs]
        table = self.query_one(OptimizeRunsTable)
        table.display = bool(runs)
        self.query_one(CandidatesTable).display = bool(runs)
        table.show(runs, keep=self.selected)
        if not runs:
            self.selected, self.shown, self.live = None, None, False
            self.query_one(OptimizeDetail).show_empty()
            return
        self.selected = table.selected_key
        self.load_run(self.selected)

    @work(exclusive=True, group="optimize-run", exit_on_error=False)
    async def load_run(self, run_id: str) -> None:
        detail = self.query_one(OptimizeDetail)
        try:
            snap = await anyio.to_thread.run_sync(optimization_snapshot, self.app.store, run_id)
        except Exception as err:  # noqa: BLE001 - odd data in one run must not take the screen down
            snap, problem = None, f"Could not read this optimisation: {type(err).__name__}: {err}"
        else:
            problem = "This optimisation is no longer in the workspace (r refreshes the list)."
        if run_id != self.selected or not self.is_attached:
            return
        if snap is None:
            self.shown, self.live = None, False
            detail.show_problem(run_id, problem)
            return
        if self.shown is None or self.shown.info.id != run_id:
            self.candidate = None
        self.shown = snap
        table = self.query_one(CandidatesTable)
        keep = self.candidate or (snap.best.key if snap.best else None)
        table.show(snap, keep)
        self.candidate = table.selected_key
        detail.show(snap, self._row(self.candidate))
        self.live = snap.live

    def _row(self, key: str | None) -> CandidateRow | None:
        if self.shown is None:
            return None
        return next((c for c in self.shown.candidates if c.key == key), None)

    async def poll(self) -> None:
        """Every POLL_S while a live optimisation is shown: redraw only when the store says it moved."""
        shown = self.shown
        if not self.is_current or shown is None or shown.info.id != self.selected:
            return
        if await anyio.to_thread.run_sync(run_marker, self.app.store, shown.info.id) != shown.marker:
            self.reload()  # the list too: its count of conversations judged moved with it

    # --- events ---------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#optimize-runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value != self.selected:
            self.selected = event.row_key.value
            self.load_run(self.selected)

    @on(DataTable.RowHighlighted, "#optimize-candidates")
    def _candidate_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key != self.candidate and self.shown is not None:
            self.candidate = key
            self.query_one(OptimizeDetail).show(self.shown, self._row(key))
