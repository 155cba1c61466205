"""A runs screen that also starts background jobs and follows them (the Train and Eval screens).

The jobs live in files under the workspace (`actors.usecases.jobs`), so this
screen only looks: every JOB_POLL_S while it is visible it reads them, says
when one ends, and asks its subclass whether the run list moved (`runs_moved`)
— a job's command records its run in the store a while after it starts, and
the new run should appear without a key press.
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from textual.binding import Binding, BindingType
from textual.timer import Timer

from actors.usecases.jobs import Job, JobPlan, exit_text, jobs, start_job, stop_job
from state.errors import CoachError

from ..widgets.jobs_panel import JobsPanel
from .confirm import Confirm
from .job_forms import JobForm, stop_question
from .run_following import RunFollowingScreen

JOB_POLL_S = 1.0


class JobHostScreen(RunFollowingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "stop_job", "Stop job", tooltip="stop the highlighted background job (asks first; again: kill)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._jobs_timer: Timer | None = None
        self._job_states: dict[str, str] | None = None
        """Each listed job's state at the last look (None before the first): an ending is told once."""
        self._told_problem = False

    # --- following -------------------------------------------------------------------------

    def on_screen_resume(self) -> None:
        if self._jobs_timer is None:
            self._jobs_timer = self.set_interval(JOB_POLL_S, self.follow_jobs)
        self.call_later(self.follow_jobs)

    def on_screen_suspend(self) -> None:
        if self._jobs_timer is not None:
            self._jobs_timer.stop()
            self._jobs_timer = None

    async def follow_jobs(self) -> None:
        """Read the jobs, tell what ended, redraw the panel; then let the subclass look at its runs."""
        try:
            found = await anyio.to_thread.run_sync(jobs, self.app.context.workspace)
            if not self.is_attached:
                return
            self._tell_endings(found)
            self.query_one(JobsPanel).show(found)
            moved = await self.runs_moved()
        except Exception as err:  # noqa: BLE001 - one bad look (a locked database, an odd file) must not end the app
            if not self._told_problem:
                self._told_problem = True
                self.notify(f"Could not read the jobs or runs: {type(err).__name__}: {err}", severity="warning")
            return
        if moved and self.is_attached:
            self.reload()

    async def runs_moved(self) -> bool:
        """Whether the run list differs from what is shown (a run appeared, or one changed status)."""
        return False

    def _tell_endings(self, found: list[Job]) -> None:
        before, self._job_states = self._job_states, {j.id: j.state for j in found}
        if before is None:
            return
        for j in found:
            was = before.get(j.id)
            if was in ("running", "stopping") and not j.running:
                severity = "information" if j.state == "finished" else "warning" if j.state == "stopped" else "error"
                self.notify(f"Job {j.title}: {j.state} (exit {exit_text(j.exit_code)})", severity=severity, timeout=6)

    # --- starting and stopping --------------------------------------------------------------

    def open_form(self, form: JobForm) -> None:
        def chosen(plan: JobPlan | None) -> None:
            if plan is not None:
                self.start(plan)

        self.app.push_screen(form, chosen)

    def start(self, plan: JobPlan) -> Job | None:
        context = self.app.context
        try:
            started = start_job(context.workspace, plan, domain=context.domain_option, db_url=context.db_url)
        except CoachError as err:
            self.notify(str(err), severity="error", timeout=8)
            return None
        self.notify(f"Started job {started.id}: {plan.title} (x stops it; it keeps running if you quit)", timeout=6)
        self.call_later(self.follow_jobs)
        return started

    def action_stop_job(self) -> None:
        panel = self.query_one(JobsPanel)
        chosen = panel.selected
        target = chosen if chosen is not None and chosen.running else next((j for j in panel.jobs if j.running), None)
        if target is None:
            self.notify("No job is running.", severity="warning")
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self.stop(target.id)

        question = stop_question(target.id, target.title, target.stop_signal, target.stop_requests)
        title = "Kill the job?" if target.stop_requests else "Stop the job?"
        self.app.push_screen(Confirm(question, title=title, yes="Stop", no="Keep it running"), answered)

    def stop(self, job_id: str) -> None:
        try:
            stopped = stop_job(self.app.context.workspace, job_id)
        except CoachError as err:
            self.notify(str(err), severity="warning")
            return
        self.notify(f"Stopping job {job_id} ({stopped.state})…", timeout=4)
        self.call_later(self.follow_jobs)
