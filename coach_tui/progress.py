"""The headless progress view: one readable line per step that matters.

It listens to the same events the TUI draws, so `coach run` in a plain
terminal, a CI log or a pipe shows what the app would show.
"""

from __future__ import annotations

import time

import click

from actors.events import EventBus, PipelineEvent


class HeadlessProgress:
    def __init__(self, bus: EventBus, *, echo=click.echo) -> None:
        self.receive = bus.subscribe()
        self.echo = echo
        self.started = time.monotonic()
        self.exchanges = 0
        self.finished = 0
        self.total = 0

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.echo(f"[{elapsed:6.1f}s] {text}")

    def render(self, ev: PipelineEvent) -> None:
        d = ev.data
        tid = ev.transcript_id
        if ev.kind == "RunStarted":
            self.total = d["transcripts"]
            self._line(f"{self.total} transcript(s) to work on")
        elif ev.kind == "PersonaReady":
            self._line(f"{tid}: persona ready{' — ' + d['name'] if d.get('name') else ''}")
        elif ev.kind == "ExchangeAdded":
            self.exchanges += 1
            trimmed = f" (context trimmed by {d['trimmed']} messages)" if d.get("trimmed") else ""
            self._line(f"{tid}: exchange {d['number']}/{d['target']}{trimmed}")
        elif ev.kind == "AssessmentDone":
            verdict = "PASS" if d["passed"] else "FAIL"
            failed = f" failed: {', '.join(d['failed_checks'])}" if d["failed_checks"] else ""
            windows = f" ({d['windows']} windows)" if d.get("windows", 1) > 1 else ""
            self._line(f"{tid}: assessed {verdict} score {d['score']:.3f}{windows}{failed}")
        elif ev.kind == "TranscriptFinished":
            self.finished += 1
            self._line(f"{tid}: {d['status']} — {self.finished}/{self.total} done, {self.exchanges} exchanges")
        elif ev.kind == "BackendError":
            self._line(f"{tid}: backend error in {d['actor']}: {d['error']}")

    async def follow(self) -> None:
        async with self.receive:
            async for ev in self.receive:
                self.render(ev)
