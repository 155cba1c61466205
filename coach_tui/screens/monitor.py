"""The monitor: a run as it happens — workers, progress, transcripts, the conversation, its grades.

Everything drawn here comes from two places: the app's `RunController`
(live: folded events, at most ten bursts a second; or a run followed from
the store) and the store (a transcript's text). The screen never polls: it
redraws what a burst says changed, and catches up in one go when it becomes
visible again after another screen was in front. Once a second it redraws
the figures that move with time alone (rates, ETAs, the app's CPU and memory).

The transcript shown is the one the run streams: the controller is told
(`watch`), and its reply fills in as the model writes it.
"""

from __future__ import annotations

import time

import anyio
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, TabbedContent, TabPane

from actors.usecases.workers import run_workers
from state import pipeline as db
from state.status import WORKING

from ..run_state import Changes
from ..widgets.app_header import AppHeader
from ..widgets.event_log import EventLog
from ..widgets.rejection_summary import RejectionSummary
from ..widgets.rubric_pane import RubricPane
from ..widgets.run_bar import ProcessUsage, RunBar
from ..widgets.run_workers import RunWorkers
from ..widgets.runs_table import RunsTable
from ..widgets.score_plot import ScorePlot
from ..widgets.transcript_table import TranscriptTable
from ..widgets.transcript_view import TranscriptView
from ..widgets.worker_table import WorkerTable

ACTIVE = WORKING
TABLE_INTERVAL_S = 0.25
"""The tables redraw at most four times a second: a DataTable re-renders every visible cell when any
cell changes, and with a busy run that is the most expensive part of a frame."""
TABS = {"t": "tab-transcript", "r": "tab-rubric", "a": "tab-workers", "e": "tab-rejections", "h": "tab-history"}


class MonitorScreen(Screen):
    BINDINGS = [
        Binding("n", "new_run", "New run"),
        Binding("p", "pause", "Pause/Go"),
        Binding("s", "stop", "Stop"),
        Binding("u", "resume_run", "Resume"),
        Binding("f", "toggle_follow", "Follow"),
        *[Binding(key, f"tab('{tab}')", tab.removeprefix("tab-").title(), show=False) for key, tab in TABS.items()],
    ]

    follow: reactive[bool] = reactive(True)
    """Keep the transcript pane on a transcript that is being written (until you pick one yourself)."""

    def compose(self) -> ComposeResult:
        yield AppHeader("monitor")
        yield RunBar()
        with Horizontal(id="monitor-body"):
            with Vertical(id="monitor-left"):
                yield TranscriptTable(id="transcripts")
                yield WorkerTable(id="workers-side")
                yield ScorePlot()
            with TabbedContent(id="monitor-tabs"):
                with TabPane("[u]T[/u]ranscript", id="tab-transcript"):
                    yield TranscriptView(
                        id="transcript-view",
                        user_label=self.app.pack.manifest.user_label,
                        assistant_label=self.app.pack.manifest.assistant_label,
                    )
                with TabPane("[u]R[/u]ubric", id="tab-rubric"):
                    yield RubricPane()
                with TabPane("[u]A[/u]ctors", id="tab-workers"):
                    yield WorkerTable(id="workers")
                    yield RunWorkers(id="run-workers")
                    yield EventLog(id="event-log")
                with TabPane("R[u]e[/u]jects", id="tab-rejections"):
                    yield RejectionSummary()
                with TabPane("[u]H[/u]istory", id="tab-history"):  # "Runs" would need a key of its own
                    yield RunsTable(id="runs")
        yield Footer()

    # --- lifecycle ------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._stale = False
        self._selected: str | None = None
        self._shown_run: str | None = None
        self._pending_rows: set[str] = set()
        self._tables_drawn = 0.0
        self._personas: dict[str, str] = {}
        self._history_status: str | None = None
        self._usage = ProcessUsage()
        self.app.run_changes.subscribe(self, self.on_run_changes)
        controller = self.app.controller
        if controller.state.run_id is None:
            latest = db.latest_run(self.app.store)
            if latest is not None:
                controller.show(latest.id, pinned=False)  # the newest, until a newer one starts
        self._load_history()
        self.set_interval(1.0, self._tick)
        self.call_after_refresh(self.redraw_all)

    def on_screen_resume(self) -> None:
        if self._stale:
            self._stale = False
            self.call_after_refresh(self.redraw_all)

    async def redraw_all(self) -> None:
        """Draw everything from the controller's state (a new run, or catching up)."""
        controller = self.app.controller
        state = controller.state
        self._shown_run = state.run_id
        self.query_one(RunBar).show(state)
        table = self.query_one(TranscriptTable)
        table.show_all(state)
        self.query_one(ScorePlot).show(state)
        self._show_workers()
        self.query_one(RejectionSummary).show(state, self._criterion_names())
        self._show_log()
        if table.row_count and table.selected_key != self._selected:
            await self._load_selected(table.selected_key)
        elif self._selected:
            await self._refresh_selected(exchanges=True, rubric=True)
            self._show_header()

    def _criterion_names(self) -> dict[str, str]:
        return {c.id: c.name for c in self.app.pack.rubric.criteria}

    def _show_workers(self) -> None:
        controller = self.app.controller
        stats, paused, live = controller.stats(), controller.state.status == "paused", controller.active
        for table in self.query(WorkerTable):
            table.show(stats, paused=paused, live=live)
        self.query_one("#workers-side").set_class(not live, "-empty")  # nothing at work between runs

    def _show_log(self) -> None:
        """Write the new event-log lines, while the log is on screen (it catches up when shown)."""
        if self.query_one(TabbedContent).active == "tab-workers":
            self.query_one(EventLog).show(self.app.controller.state.log)

    @on(TabbedContent.TabActivated, "#monitor-tabs")
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-workers":
            self._show_log()

    def _tick(self) -> None:
        """Once a second: rates and ETAs move with time alone, and so do the app's CPU and memory use."""
        if not self.is_current:
            return
        bar = self.query_one(RunBar)
        bar.show_usage(*self._usage.sample())
        state = self.app.controller.state
        if state.run_id and self.query_one(TabbedContent).active == "tab-workers":
            self._read_run_workers(state.run_id)
        if self.app.controller.active or state.live:
            bar.show(state)
            self._flush_tables(force=True)

    def _flush_tables(self, force: bool = False) -> None:
        """Redraw the rows that changed and the worker counts, at most every `TABLE_INTERVAL_S`."""
        now = time.monotonic()
        if not force and now - self._tables_drawn < TABLE_INTERVAL_S:
            return
        self._tables_drawn = now
        if self._pending_rows:
            self.query_one(TranscriptTable).show_rows(self.app.controller.state, self._pending_rows)
            self._pending_rows = set()
        self._show_workers()

    # --- live bursts ----------------------------------------------------------------------

    async def on_run_changes(self, changes: Changes) -> None:
        if not self.is_current:
            self._stale = True
            return
        state = self.app.controller.state
        if state.run_id != self._shown_run:  # a different run than the one drawn: start over
            await self.redraw_all()
            return
        self.query_one(RunBar).show(state)
        table = self.query_one(TranscriptTable)
        if changes.new_rows or (changes.run and not table.row_count):
            table.show_all(state)
            self._pending_rows.clear()
        else:
            self._pending_rows |= changes.rows
        self._flush_tables(force=changes.run)
        if changes.assessed or changes.new_rows:
            self.query_one(ScorePlot).show(state)
        if changes.rejections or changes.errors:
            self.query_one(RejectionSummary).show(state, self._criterion_names())
        if changes.run and state.status != self._history_status:  # the run's own status moved: History says so
            self._load_history()
        if changes.log:
            self._show_log()
        if self.follow:
            self._follow(changes)
        selected = self._selected
        if selected is not None and (selected in changes.exchanges or selected in changes.assessed):
            await self._refresh_selected(exchanges=selected in changes.exchanges, rubric=selected in changes.assessed)
        if selected is not None and (selected in changes.rows or changes.run):
            self._show_header()
        if selected is not None and selected in changes.streamed and selected in state.streaming:
            self.query_one(TranscriptView).stream(selected, *state.streaming[selected])

    def _follow(self, changes: Changes) -> None:
        """Stay on a transcript being written; move on only when it is no longer active."""
        state = self.app.controller.state
        current = state.rows.get(self._selected or "")
        if current is not None and current.status in ACTIVE:
            return
        candidates = [
            tid for tid in sorted(changes.exchanges) if state.rows.get(tid) and state.rows[tid].status in ACTIVE
        ]
        if candidates:
            self.query_one(TranscriptTable).select(candidates[0])

    # --- selection ------------------------------------------------------------------------

    @on(TranscriptTable.UserMoved)
    def _user_moved(self) -> None:
        self.follow = False  # the person chose a transcript: stop moving it under them

    @on(DataTable.RowHighlighted, "#transcripts")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value != self._selected:
            self._load_selected_soon(event.row_key.value)

    @work(thread=True, exclusive=True, group="run-workers")
    def _read_run_workers(self, run_id: str) -> None:
        """Who works the run (shared runs), read off the loop: a look at the store, once a second at most."""
        try:
            hosts = run_workers(self.app.store, run_id)
        except Exception:  # noqa: BLE001 - a busy store: the next tick looks again
            return
        self.app.call_from_thread(self.query_one(RunWorkers).show, hosts)

    @work(exclusive=True, group="select")
    async def _load_selected_soon(self, transcript_id: str) -> None:
        # A short pause coalesces fast cursor movement into one load (exclusive cancels the rest).
        await anyio.sleep(0.08)
        await self._load_selected(transcript_id)

    async def _load_selected(self, transcript_id: str | None) -> None:
        self._selected = transcript_id
        self.app.controller.watch(transcript_id)
        view = self.query_one(TranscriptView)
        if transcript_id is None:
            await view.show(None, [])
            return
        store = self.app.store
        self._find_persona(transcript_id)
        await view.show(transcript_id, db.exchanges(store, transcript_id), self._header(transcript_id))
        streaming = self.app.controller.state.streaming.get(transcript_id)
        if streaming is not None:
            view.stream(transcript_id, *streaming)
        self.query_one(RubricPane).show(self.app.pack.rubric, db.latest_assessment(store, transcript_id))

    def _find_persona(self, transcript_id: str) -> None:
        """The persona's name for the header, once it has one (a planned transcript's persona has none yet)."""
        if transcript_id in self._personas:
            return
        store = self.app.store
        transcript = db.transcript(store, transcript_id)
        if transcript is not None and transcript.persona_id:
            persona = db.persona(store, transcript.persona_id)
            profile = (persona.data or {}).get("profile", {}) if persona else {}
            name = profile.get("name") if isinstance(profile, dict) else None
            if name:
                self._personas[transcript_id] = name

    def _header(self, transcript_id: str) -> str:
        """The transcript pane's header, from the state as it is now: persona, status, exchanges, judging."""
        header = transcript_id
        if name := self._personas.get(transcript_id):
            header += f" · persona {name}"
        row = self.app.controller.state.rows.get(transcript_id)
        if row is not None:
            header += f" · {row.status} · {row.exchanges}/{row.target} exchanges"
            if row.judged is not None:
                of = f"/{row.judge_total}" if row.judge_total is not None else ""
                header += f" · {row.judged}{of} criteria judged"
        return header

    def _show_header(self) -> None:
        if self._selected is not None:
            self.query_one(TranscriptView).set_header(self._header(self._selected))

    async def _refresh_selected(self, *, exchanges: bool, rubric: bool) -> None:
        store, tid = self.app.store, self._selected
        if tid is None:
            return
        if exchanges:
            self._find_persona(tid)
            await self.query_one(TranscriptView).sync(tid, db.exchanges(store, tid))
        if rubric:
            self.query_one(RubricPane).show(self.app.pack.rubric, db.latest_assessment(store, tid))

    @on(RunsTable.Chosen)
    async def _run_chosen(self, event: RunsTable.Chosen) -> None:
        if self.app.controller.active and event.run_id != self.app.controller.state.run_id:
            self.notify("A run is live; stop it (s) before viewing another.", severity="warning")
            return
        self.app.controller.show(event.run_id)
        self.app.refresh_context()
        self._selected = None
        await self.redraw_all()
        self.query_one(TabbedContent).active = "tab-transcript"
        self.query_one(TranscriptTable).focus()

    # --- actions --------------------------------------------------------------------------

    def _load_history(self) -> None:
        controller = self.app.controller
        self._history_status = controller.state.status
        self.query_one(RunsTable).load(self.app.store, controller.state.run_id if controller.active else None)

    def action_new_run(self) -> None:
        self.app.action_new_run()

    def action_pause(self) -> None:
        self.app.action_pause_run()

    def action_stop(self) -> None:
        self.app.action_stop_run()

    def action_resume_run(self) -> None:
        runs = self.query_one(RunsTable)
        tabs = self.query_one(TabbedContent)
        run_id = runs.selected_key if tabs.active == "tab-history" else self.app.controller.state.run_id
        self.app.resume_run(run_id)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.notify(
            "Following the transcripts being written." if self.follow else "Follow off: the pane stays put.", timeout=2
        )

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "tab-workers":
            self._show_log()
        if tab == "tab-history":
            self._load_history()
            self.query_one(RunsTable).focus()
