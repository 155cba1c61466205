"""The headless progress view: one readable line per step that matters.

It listens to the same events the TUI draws, so `coach run` in a plain
terminal, a CI log or a pipe shows what the app would show.
"""

from __future__ import annotations

import time

import click

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


class HeadlessProgress:
    def __init__(self, bus: EventBus | None = None, *, echo=click.echo) -> None:
        # Without a bus, a use case hands each event to `render` itself (its `on_event`).
        self.receive = bus.subscribe() if bus is not None else None
        self.echo = echo
        self.started = time.monotonic()
        self.exchanges = 0
        self.finished = 0
        self.total = 0

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.echo(f"[{elapsed:6.1f}s] {text}")

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

    async def follow(self) -> None:
        async with self.receive:
            async for ev in self.receive:
                self.render(ev)
