"""What the monitor draws, folded from pipeline events: plain Python, no Textual.

Why a separate fold: events arrive in bursts (64 transcripts in flight on a
fast backend produce thousands a second) while the screen redraws at most
ten times a second. The controller folds each burst into this object and
hands the monitor only *what changed* (`Changes`), so a redraw touches the
rows that moved and nothing else. Loading the same object from the store is
how an existing run is shown (or a hidden monitor catches up): one code path
for "live" and "from disk".
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from actors.events import (
    AssessmentDone,
    BackendErrorEvent,
    DecisionMade,
    ExchangeAdded,
    FixupProposed,
    PersonaReady,
    PipelineEvent,
    RunFinished,
    RunStarted,
    RunStatusChanged,
    StepFailed,
    TranscriptFinished,
    TranscriptRejected,
    TranscriptStatusChanged,
    UserMessage,
)
from state.run_overview import rejection_reasons, run_overview
from state.status import DONE_FOR_NOW, TranscriptStatus
from state.store import Store

FINISHED = DONE_FOR_NOW
"""Statuses that count as done for this pass (failed is retried on resume; review waits for a person)."""


@dataclass
class TranscriptRow:
    id: str
    status: str = TranscriptStatus.PLANNED
    exchanges: int = 0
    target: int = 0
    score: float | None = None
    passed: bool | None = None


@dataclass
class Changes:
    """What one burst of events touched; the monitor redraws only these parts."""

    rows: set[str] = field(default_factory=set)
    new_rows: bool = False
    exchanges: set[str] = field(default_factory=set)
    assessed: set[str] = field(default_factory=set)
    fixups: bool = False
    run: bool = False
    rejections: bool = False
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.rows
            or self.new_rows
            or self.exchanges
            or self.assessed
            or self.fixups
            or self.run
            or self.rejections
            or self.errors
        )


@dataclass
class RunState:
    run_id: str | None = None
    status: str = "idle"
    """idle | starting | running | paused | stopping | finished | stopped | failed | interrupted | elsewhere"""
    owner: str | None = None
    """Who works on the run when another process does ("host pid 123 since …"); status is then `elsewhere`."""
    total: int = 0
    rows: dict[str, TranscriptRow] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    score_passed: list[bool] = field(default_factory=list)
    pass_history: list[float] = field(default_factory=list)
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    started_at: float | None = None
    _exchange_times: deque[float] = field(default_factory=lambda: deque(maxlen=5000))

    # --- derived figures ------------------------------------------------------------------

    @property
    def status_text(self) -> str:
        if self.status == "elsewhere":
            return f"running in another process ({self.owner})"
        return self.status

    @property
    def done(self) -> int:
        return sum(1 for r in self.rows.values() if r.status in FINISHED)

    @property
    def exchanges(self) -> tuple[int, int]:
        """(exchanges written, exchanges planned) over the whole run."""
        return (
            sum(min(r.exchanges, r.target or r.exchanges) for r in self.rows.values()),
            sum(r.target for r in self.rows.values()),
        )

    @property
    def passed(self) -> int:
        """Transcripts whose latest assessment passed."""
        return sum(1 for r in self.rows.values() if r.passed)

    @property
    def assessed(self) -> int:
        return sum(1 for r in self.rows.values() if r.passed is not None)

    @property
    def pass_rate(self) -> float | None:
        assessed = self.assessed
        return sum(1 for r in self.rows.values() if r.passed) / assessed if assessed else None

    def throughput(self, now: float | None = None, window_s: float = 60.0) -> float:
        """Exchanges per minute over the last ``window_s`` seconds (or since the start, if shorter)."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self._exchange_times if now - t <= window_s]
        if not recent:
            return 0.0
        span = min(window_s, now - (self.started_at or recent[0])) or 1e-9
        return len(recent) * 60.0 / max(span, 1.0)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.rows.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    # --- from the store -------------------------------------------------------------------

    @classmethod
    def load(cls, store: Store, run_id: str, *, owner: str | None = None) -> RunState:
        """The run as the store has it (statuses, exchange counts, latest scores, rejection reasons).

        ``owner`` names the live owner when another process works on the run; a run the store calls
        `running` with no live owner was killed, and is shown as `interrupted`.
        """
        found = run_overview(store, run_id)
        state = cls(run_id=run_id, status=found.run.status if found.run else "idle")
        for t in found.transcripts:
            state.rows[t.id] = TranscriptRow(t.id, t.status, found.exchanges.get(t.id, 0), t.target_exchanges or 0)
        for tid, score, passed in found.assessments:
            row = state.rows.get(tid)
            if row is not None:
                row.score, row.passed = score, passed
            state._record_score(score, passed)
        state.reload_rejections(store)
        state.total = len(state.rows)
        if owner is not None:
            state.status, state.owner = "elsewhere", owner
        elif state.status == "running":  # not live in this app, and no other process holds it: killed
            state.status = "interrupted"
        return state

    # --- live events ----------------------------------------------------------------------

    def apply(self, events: Iterable[PipelineEvent], now: float | None = None) -> Changes:
        """Fold a burst of events in; return what changed."""
        changes = Changes()
        now = time.monotonic() if now is None else now
        for ev in events:
            if self.run_id is not None and ev.run_id not in (None, self.run_id):
                continue
            self._apply_one(ev, changes, now)
        return changes

    def _row(self, tid: str, changes: Changes) -> TranscriptRow:
        row = self.rows.get(tid)
        if row is None:
            row = self.rows[tid] = TranscriptRow(tid)
            changes.new_rows = True
        changes.rows.add(tid)
        return row

    def _apply_one(self, ev: PipelineEvent, changes: Changes, now: float) -> None:
        tid = ev.transcript_id
        match ev:
            case RunStarted():
                self.status, self.started_at = "running", now
                changes.run = True
            case RunFinished(status=status, error=error):
                self.status = status
                if error:
                    self.errors.append(error)
                    changes.errors.append(error)
                changes.run = True
            case RunStatusChanged(status=status):
                self.status = status
                changes.run = True
            case BackendErrorEvent(actor=actor, error=error) | StepFailed(actor=actor, error=error):
                where = f"{tid}: " if tid else ""
                if tid:
                    self._row(tid, changes)
                self.errors.append(f"{where}{actor}: {error}")
                changes.errors.append(self.errors[-1])
            case _ if tid is None:
                return
            case PersonaReady():
                self._row(tid, changes).status = TranscriptStatus.GENERATING
            case UserMessage():
                changes.exchanges.add(tid)
                self._row(tid, changes)
            case ExchangeAdded(number=number, target=target):
                row = self._row(tid, changes)
                row.exchanges = max(row.exchanges, number)
                row.target = target or row.target
                if row.status == TranscriptStatus.PLANNED:
                    row.status = TranscriptStatus.GENERATING
                self._exchange_times.append(now)
                changes.exchanges.add(tid)
            case TranscriptStatusChanged(status=status) | TranscriptFinished(status=status):
                self._row(tid, changes).status = status
                changes.run = True
            case AssessmentDone(score=score, passed=passed):
                row = self._row(tid, changes)
                row.score, row.passed = score, passed
                self._record_score(score, passed)
                changes.assessed.add(tid)
                changes.rejections = changes.rejections or not passed
            case TranscriptRejected():
                changes.rejections = True  # the reasons are re-read from the store (see reload_rejections)
            case FixupProposed() | DecisionMade():
                changes.fixups = True
                changes.exchanges.add(tid)

    def _record_score(self, score: float, passed: bool) -> None:
        self.scores.append(score)
        self.score_passed.append(bool(passed))
        previous = self.pass_history[-1] * (len(self.pass_history)) if self.pass_history else 0.0
        self.pass_history.append((previous + (1.0 if passed else 0.0)) / (len(self.pass_history) + 1))

    def reload_rejections(self, store: Store) -> None:
        """Count rejection and truncation reasons from the store (one query; the store is the record)."""
        reasons: dict[str, int] = {}
        for action, reason_kind, reason in rejection_reasons(store, self.run_id):
            for part in (reason or reason_kind or "?").split(","):
                key = part.strip() if action == "rejected" else f"{action}: {part.strip()}"
                reasons[key] = reasons.get(key, 0) + 1
        self.rejection_reasons = reasons
