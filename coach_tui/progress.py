"""The headless progress views: bars on a terminal, plain lines in a log or a pipe.

`ProgressOutput` is where a long command (run, slice, train, export-model,
eval, calibrate) says how far it is. On a terminal it draws rich progress
bars and prints its lines above them; anywhere else (a CI log, a pipe, a
file, a test's CliRunner) it prints plain one-line messages, a few per stage
rather than one per item, so a log stays readable. With `--json` the
command's stdout carries only the JSON, and its progress goes to stderr.

`HeadlessProgress` listens to the same pipeline events the TUI draws, so
`coach run` in a plain terminal, a CI log or a pipe shows what the app would
show.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from actors.events import (
    AssessmentDone,
    BackendErrorEvent,
    EventBus,
    ExchangeAdded,
    PersonaReady,
    PipelineEvent,
    RunStarted,
    StepFailed,
    TranscriptFinished,
)

PLAIN_STEPS = 10
"""A plain progress message each time a stage passes another tenth of its items, and at its end."""


class _Count(ProgressColumn):
    """`done/total`, or only `done` when the total is not known (no `0/?` beside a spinner)."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        if task.total is None:
            return Text(str(done) if done else "", style="progress.download")
        return Text(f"{done}/{int(task.total)}", style="progress.download")


@dataclass
class _Plain:
    """What a plain-line task last said, so it speaks again only when there is news."""

    description: str
    total: int | None
    completed: int = 0
    said_step: int = -1
    said_description: str = ""
    lines: bool = True


class ProgressOutput:
    """One command's progress: rich bars when its stream is a terminal, plain one-line messages otherwise.

    Use it as a context manager around the long work. `line` prints a line
    (above the bars on a terminal); `task` adds a stage with its total (None
    when not known) and `update` moves it. A task made with `plain=False` is
    drawn on a terminal only: for commands that already print a line per
    event, whose bars would only repeat them in a log.
    """

    def __init__(self, *, err: bool = False, tty: bool | None = None, console: Any = None) -> None:
        self.err = err
        stream = sys.stderr if err else sys.stdout
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if tty is None else tty
        self._console = console
        self._bars: Any = None
        self._plain: dict[int, _Plain] = {}
        self.started = time.monotonic()

    # --- lifetime -----------------------------------------------------------------------------------

    def __enter__(self) -> ProgressOutput:
        if self.tty and self._bars is None:
            console = self._console or Console(stderr=self.err, highlight=False)
            self._bars = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                _Count(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    # --- what a command says ------------------------------------------------------------------------

    def line(self, text: str) -> None:
        """One line of the command's own output: above the bars on a terminal, as it is elsewhere."""
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            click.echo(text, err=self.err)

    def task(self, description: str, total: int | None = None, *, plain: bool = True) -> int:
        """A new stage; `total` None when the number of items is not known in advance."""
        if self._bars is not None:
            return int(self._bars.add_task(description, total=total))
        key = len(self._plain)
        self._plain[key] = _Plain(description, total, lines=plain)
        self._say(self._plain[key])
        return key

    def update(
        self,
        task: int,
        *,
        completed: int | None = None,
        advance: int = 0,
        total: int | None = None,
        description: str | None = None,
    ) -> None:
        if self._bars is not None:
            self._bars.update(task, completed=completed, advance=advance or None, total=total, description=description)
            return
        state = self._plain[task]
        state.completed = (state.completed if completed is None else completed) + advance
        state.total = state.total if total is None else total
        state.description = state.description if description is None else description
        self._say(state)

    def _say(self, state: _Plain) -> None:
        if not state.lines:
            return
        if state.total:
            step = min(state.completed * PLAIN_STEPS // state.total, PLAIN_STEPS)
            if step == state.said_step and state.description == state.said_description:
                return
            text = f"{state.description}: {state.completed}/{state.total}"
        else:
            if state.description == state.said_description and state.said_step >= 0:
                return
            step = 0
            text = f"{state.description}{f': {state.completed}' if state.completed else ' …'}"
        state.said_step, state.said_description = step, state.description
        click.echo(f"[{time.monotonic() - self.started:6.1f}s] {text}", err=self.err)


class HeadlessProgress:
    """`coach run`'s and `coach eval`'s view of the pipeline: one line per step that matters.

    With an `output` on a terminal, bars follow the transcripts (done of the
    run's total) and the exchanges written; the lines go above them.
    """

    def __init__(
        self,
        bus: EventBus | None = None,
        *,
        echo=click.echo,
        output: ProgressOutput | None = None,
        label: str = "transcripts",
    ) -> None:
        # Without a bus, a use case hands each event to `render` itself (its `on_event`).
        self.receive = bus.subscribe() if bus is not None else None
        self.echo = output.line if output is not None else echo
        self.output = output
        self.label = label
        self.started = time.monotonic()
        self.exchanges = 0
        self.finished = 0
        self.total = 0
        self._transcripts: int | None = None
        self._exchanges: int | None = None

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.echo(f"[{elapsed:6.1f}s] {text}")

    def _bars(self, ev: PipelineEvent) -> None:
        """Moves the bars (a terminal only: elsewhere the lines already say it all)."""
        out = self.output
        if out is None or not out.tty:
            return
        match ev:
            case RunStarted(transcripts=total):
                self._transcripts = out.task(self.label, total, plain=False)
                self._exchanges = out.task(f"{self.label}: exchanges", None, plain=False)
            case ExchangeAdded() if self._exchanges is not None:
                out.update(self._exchanges, completed=self.exchanges)
            case TranscriptFinished() if self._transcripts is not None:
                out.update(self._transcripts, completed=self.finished)

    def render(self, ev: PipelineEvent) -> None:
        tid = ev.transcript_id
        match ev:
            case RunStarted(transcripts=total):
                self.total = total
                self._line(f"{self.total} transcript(s) to work on")
            case PersonaReady(name=name):
                self._line(f"{tid}: persona ready{' — ' + name if name else ''}")
            case ExchangeAdded(number=number, target=target, trimmed=trimmed):
                self.exchanges += 1
                note = f" (context trimmed by {trimmed} messages)" if trimmed else ""
                self._line(f"{tid}: exchange {number}/{target}{note}")
            case AssessmentDone(passed=passed, score=score, failed_checks=failed_checks, windows=windows):
                verdict = "PASS" if passed else "FAIL"
                failed = f" failed: {', '.join(failed_checks)}" if failed_checks else ""
                spread = f" ({windows} windows)" if windows > 1 else ""
                self._line(f"{tid}: assessed {verdict} score {score:.3f}{spread}{failed}")
            case TranscriptFinished(status=status):
                self.finished += 1
                self._line(f"{tid}: {status} — {self.finished}/{self.total} done, {self.exchanges} exchanges")
            case BackendErrorEvent(actor=actor, error=error):
                self._line(f"{tid}: backend error in {actor}: {error}")
            case StepFailed(actor=actor, error_kind=kind, error=error):
                self._line(f"{tid}: {actor} failed: {kind}: {error}")
        self._bars(ev)

    async def follow(self) -> None:
        async with self.receive:
            async for ev in self.receive:
                self.render(ev)
