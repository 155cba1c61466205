"""What the monitor draws, folded from pipeline events: plain Python, no Textual.

Why a separate fold: events arrive in bursts (64 transcripts in flight on a
fast backend produce thousands a second) while the screen redraws at most
ten times a second. The controller folds each burst into this object and
hands the monitor only *what changed* (`Changes`), so a redraw touches the
rows that moved and nothing else. Loading the same object from the store is
how an existing run is shown (or a hidden monitor catches up): one code path
for "live" and "from disk". A run another process owns is followed by folding
its stored event rows, read back as the same typed events.

Besides the rows, the fold keeps what makes the monitor honest about time:
a `Meter` per kind of work (exchanges written, criteria judged) gives each stage a rate that keeps moving and an ETA; the reply
being streamed for a followed transcript; and a bounded log of recent events.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from actors.events import (
    AssessmentDone,
    AssessmentProgress,
    BackendErrorEvent,
    DecisionMade,
    ExchangeAdded,
    FixupProposed,
    PersonaReady,
    PipelineEvent,
    ReplyChunk,
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
LIVE = ("running", "elsewhere")
"""Run statuses in which work is going on, so rates and ETAs mean something."""
LOG_LINES = 200
"""Recent events kept for the event log: enough to read back a minute of a busy run, and bounded."""
RATE_WINDOW_S = 60.0
RATE_MIN_UNITS = 5


@dataclass
class TranscriptRow:
    id: str
    status: str = TranscriptStatus.PLANNED
    exchanges: int = 0
    target: int = 0
    score: float | None = None
    passed: bool | None = None
    judged: int | None = None
    """Judge calls answered in the judging under way (None when it is not being judged)."""
    judge_total: int | None = None
    """Judge calls that judging needs in all (None when not known: a run followed from the store)."""


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
    streamed: set[str] = field(default_factory=set)
    """Transcripts whose reply being written grew (`RunState.streaming`)."""
    log: int = 0
    """Lines added to the event log."""

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
            or self.streamed
            or self.log
        )


@dataclass(frozen=True)
class LogLine:
    at: float
    """Wall-clock time of the event (seconds since the epoch)."""
    transcript_id: str | None
    text: str
    error: bool = False


class Meter:
    """Units of one kind of work and when each was done: a rate that keeps moving, and so an ETA.

    The rate counts the units of the last minute (at least the last `RATE_MIN_UNITS`) over the time
    from the unit before them, or from the start, until now. So it never sticks at a value once
    work stops or slows (it decays as time passes), and a slow stage — one judge call a minute —
    still has a rate.
    """

    def __init__(self) -> None:
        self.started: float | None = None
        self.times: deque[float] = deque(maxlen=2000)

    def start(self, now: float) -> None:
        if self.started is None:
            self.started = now

    def add(self, now: float, units: int = 1) -> None:
        self.start(now)
        self.times.extend([now] * min(units, 500))

    def per_minute(self, now: float) -> float | None:
        times = self.times
        if not times:
            return None
        recent = sum(1 for t in times if now - t <= RATE_WINDOW_S)
        n = min(len(times), max(recent, RATE_MIN_UNITS))
        before = len(times) - n - 1
        since = times[before] if before >= 0 else (self.started if self.started is not None else times[0])
        return n * 60.0 / max(now - since, 1.0)


@dataclass(frozen=True)
class StageProgress:
    """One stage of the pipeline: how far, how fast, and how long to go."""

    name: str
    unit: str
    done: int
    total: int | None
    """None when not known (a judging followed from the store says what it has done, not of how much)."""
    active: int = 0
    """Transcripts in this stage now."""
    per_minute: float | None = None
    eta_s: float | None = None
    transcripts_done: int | None = None
    transcripts_total: int | None = None


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
    streaming: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per transcript, the reply being written: (exchange number, text so far)."""
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    meters: dict[str, Meter] = field(default_factory=lambda: {k: Meter() for k in ("exchanges", "criteria")})
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

    @property
    def live(self) -> bool:
        return self.status in LIVE

    def stages(self, now: float | None = None) -> list[StageProgress]:
        """Generating (exchanges), curating (transcripts in it) and assessing (judge calls), with rates and ETAs.

        A stage is listed once it has work: generating whenever exchanges are planned, curating
        while transcripts are in it, assessing once judging began. Rates and ETAs only while the
        run is live: a stopped run has no pace.
        """
        now = time.monotonic() if now is None else now
        live = self.live
        counts = self.status_counts()
        out: list[StageProgress] = []
        written, planned = self.exchanges
        if planned:
            rate = self.meters["exchanges"].per_minute(now) if live else None
            left = planned - written
            out.append(
                StageProgress(
                    "generating",
                    "exch",
                    written,
                    planned,
                    active=counts.get(TranscriptStatus.GENERATING, 0),
                    per_minute=rate if left > 0 else None,
                    eta_s=_eta(left, rate) if left > 0 else None,
                )
            )
        curating = counts.get(TranscriptStatus.CURATING, 0) + counts.get(TranscriptStatus.FIXING, 0)
        if curating:
            out.append(StageProgress("curating", "transcripts", 0, None, active=curating))
        assessing = [r for r in self.rows.values() if r.status == TranscriptStatus.ASSESSING]
        meter = self.meters["criteria"]
        if assessing or self.assessed or meter.times:
            # Judgings under way say how far they are; a transcript queued for the assessor has not begun.
            begun = [r for r in assessing if r.judge_total is not None or r.judged]
            queued = len(assessing) - len(begun)
            judged = sum(r.judged or 0 for r in begun)
            known = all(r.judge_total is not None for r in begun)
            total = sum(r.judge_total or 0 for r in begun) if known and begun else None
            rate = meter.per_minute(now) if live else None
            eta = None
            if live and total is not None and rate:
                # What the transcripts still to come will need: as much as those judged so far did.
                sizes = [r.judge_total for r in self.rows.values() if r.judge_total]
                waiting = queued + sum(1 for r in self.rows.values() if r.status in _BEFORE_JUDGING)
                to_come = waiting * (sum(sizes) / len(sizes)) if sizes else 0.0
                eta = _eta(total - judged + to_come, rate)
            out.append(
                StageProgress(
                    "assessing",
                    "criteria",
                    judged,
                    total,
                    active=len(assessing),
                    per_minute=rate,
                    eta_s=eta,
                    transcripts_done=self.assessed,
                    transcripts_total=len(self.rows),
                )
            )
        return out

    # --- from the store -------------------------------------------------------------------

    @classmethod
    def load(
        cls, store: Store, run_id: str, *, owner: str | None = None, judging: dict[str, int] | None = None
    ) -> RunState:
        """The run as the store has it (statuses, exchange counts, latest scores, rejection reasons).

        ``owner`` names the live owner when another process works on the run; a run the store calls
        `running` with no live owner was killed, and is shown as `interrupted`. ``judging``: verdicts
        stored so far per transcript being judged (`state.run_activity.judging_counts`).
        """
        found = run_overview(store, run_id)
        state = cls(run_id=run_id, status=found.run.status if found.run else "idle")
        for t in found.transcripts:
            state.rows[t.id] = TranscriptRow(t.id, t.status, found.exchanges.get(t.id, 0), t.target_exchanges or 0)
        for tid, judged in (judging or {}).items():
            if tid in state.rows:
                state.rows[tid].judged = judged
        for tid, score, passed in found.assessments:
            row = state.rows.get(tid)
            if row is not None:
                row.score, row.passed = score, passed
            state._record_score(score, passed)
        state.reload_rejections(store)
        state.total = len(state.rows)
        state.set_owner(owner)
        return state

    def set_owner(self, owner: str | None, stored_status: str | None = None) -> None:
        """Say who works on the run: another process (`elsewhere`), or nobody, by the store's status.

        A run the store calls `running` with no live owner was killed: `interrupted`.
        """
        status = stored_status or (self.status if self.status not in ("elsewhere", "interrupted") else "running")
        if owner is not None:
            self.status, self.owner = "elsewhere", owner
        else:
            self.status, self.owner = ("interrupted" if status == "running" else status), None
        if not self.live:
            self.streaming.clear()

    def judging_from_store(self, judging: dict[str, int], changes: Changes) -> None:
        """Verdicts stored so far per transcript being judged (a followed run publishes no progress)."""
        for tid, judged in judging.items():
            row = self.rows.get(tid)
            if row is not None and row.status == TranscriptStatus.ASSESSING and row.judged != judged:
                if row.judged is not None and judged > row.judged:
                    self.meters["criteria"].add(time.monotonic(), judged - row.judged)
                row.judged = judged
                changes.rows.add(tid)

    def note(self, events: Iterable[PipelineEvent]) -> None:
        """Put events in the log only (the newest of a run opened from the store: its state is loaded already)."""
        for ev in events:
            line = _log_line(ev, self.rows.get(ev.transcript_id or ""))
            if line is not None:
                self.log.append(line)

    # --- live events ----------------------------------------------------------------------

    def apply(self, events: Iterable[PipelineEvent], now: float | None = None) -> Changes:
        """Fold a burst of events in; return what changed."""
        changes = Changes()
        now = time.monotonic() if now is None else now
        for ev in events:
            if self.run_id is not None and ev.run_id not in (None, self.run_id):
                continue
            line = _log_line(ev, self.rows.get(ev.transcript_id or ""))
            if line is not None:
                self.log.append(line)
                changes.log += 1
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
                self.meters["exchanges"].start(now)
                changes.run = True
            case RunFinished(status=status, error=error):
                self.status = status
                self.streaming.clear()
                if error:
                    self.errors.append(error)
                    changes.errors.append(error)
                changes.run = True
            case RunStatusChanged(status=status):
                self.status = status
                if status == "running":  # a pass began (how a followed run says so)
                    self.meters["exchanges"].start(now)
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
            case ReplyChunk(number=number, text=text):
                self.streaming[tid] = (number, text)
                changes.streamed.add(tid)
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
                self.meters["exchanges"].add(now)
                if self.streaming.get(tid, (0, ""))[0] <= number:
                    self.streaming.pop(tid, None)
                changes.exchanges.add(tid)
            case TranscriptStatusChanged(status=status) | TranscriptFinished(status=status):
                row = self._row(tid, changes)
                if status == TranscriptStatus.ASSESSING and row.status != status:
                    row.judged, row.judge_total = 0, None  # a new judging: its progress starts over
                    self.meters["criteria"].start(now)
                elif status != TranscriptStatus.ASSESSING:
                    row.judged = None
                row.status = status
                changes.run = True
            case AssessmentProgress(judged=judged, total=total):
                row = self._row(tid, changes)
                if judged > (row.judged or 0):
                    self.meters["criteria"].add(now, judged - (row.judged or 0))
                else:
                    self.meters["criteria"].start(now)
                row.judged, row.judge_total = judged, total
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


_BEFORE_JUDGING = frozenset(
    {TranscriptStatus.PLANNED, TranscriptStatus.GENERATING, TranscriptStatus.CURATING, TranscriptStatus.FIXING}
)
"""Statuses of transcripts that will still be judged in this pass."""


def _eta(left: float, per_minute: float | None) -> float | None:
    return left * 60.0 / per_minute if per_minute else None


def _log_line(ev: PipelineEvent, row: TranscriptRow | None) -> LogLine | None:
    """The event log's line for an event, or None for the chatter it leaves out (messages, chunks, progress)."""
    tid = ev.transcript_id
    match ev:
        case RunStarted(transcripts=n):
            text = f"run started: {n} transcript{'s' if n != 1 else ''} to work on"
        case RunStatusChanged(status=status):
            text = f"run {status}"
        case RunFinished(status=status, counts=counts, error=error):
            summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            text = f"run {status}" + (f": {summary}" if summary else "") + (f" — {error}" if error else "")
            return LogLine(ev.at, None, text, error=bool(error) or status == "failed")
        case PersonaReady(name=name) if tid:
            text = f"persona {name} ready" if name else "persona ready"
        case ExchangeAdded(number=number, target=target) if tid:
            target = target or (row.target if row is not None else 0)
            text = f"exchange {number}/{target}" if target else f"exchange {number}"
        case TranscriptStatusChanged(status=status) if tid:
            text = f"→ {status}"
        case TranscriptFinished(status=status, error=error) if tid:
            if row is not None and row.status == status and not error:
                return None  # its move was logged already
            return LogLine(ev.at, tid, f"done: {status}" + (f" ({error})" if error else ""), error=bool(error))
        case AssessmentDone(score=score, passed=passed, failed_checks=failed) if tid:
            verdict = "PASS" if passed else "FAIL" + (f" ({', '.join(failed[:6])})" if failed else "")
            text = f"judged {score:.2f} {verdict}"
        case TranscriptRejected(action=action, reason=reason) if tid:
            text = f"{action}" + (f": {reason}" if reason else "")
        case FixupProposed(exchange=exchange, reason=reason) if tid:
            text = f"fixup proposed for exchange {exchange}: {reason}"
        case DecisionMade(decision=decision, by=by) if tid:
            text = f"fixup {decision}" + (f" by {by}" if by else "")
        case BackendErrorEvent(actor=actor, error=error) | StepFailed(actor=actor, error=error):
            return LogLine(ev.at, tid, f"{actor} failed: {error}", error=True)
        case _:
            return None
    return LogLine(ev.at, tid, text)
