"""Typed events: what the TUI and the headless progress view draw.

Every event is a small frozen dataclass; a face matches on its type
(``case ExchangeAdded(number=n)``), so a misspelt kind or a missing field is
an error where the event is made, not a silent blank in a screen.

The durable record is the store (each step commits its own event row); this
bus only tells live subscribers, right after the commit, so the UI never
polls the database in a loop. A subscriber that falls far behind loses the
oldest live events, never the data. Stored rows keep a kind and a JSON
payload; `event_from` turns one back into its typed event (the class name is
the kind), which is how a run owned by another process is followed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

_ENVELOPE = frozenset({"run_id", "transcript_id", "at"})


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineEvent:
    """What every event carries: the run and transcript it is about, and when it happened."""

    run_id: str | None = None
    transcript_id: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def kind(self) -> str:
        """The class name: the `kind` of the stored event row."""
        return type(self).__name__

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields as a dict: the payload of its stored row, and what generic lines print."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _ENVELOPE}


# --- a run --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStarted(PipelineEvent):
    transcripts: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStatusChanged(PipelineEvent):
    """A run's status moved without ending (`running`, `stopping`)."""

    status: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFinished(PipelineEvent):
    """A pass over the run ended: `finished`, `stopped` or `failed`, with its counts."""

    status: str
    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    pass_rate: float | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerStatus(PipelineEvent):
    actor: str
    busy: int = 0
    workers: int = 0
    queued: int = 0
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


# --- a transcript -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class PersonaReady(PipelineEvent):
    name: str | None = None
    persona_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class UserMessage(PipelineEvent):
    number: int
    chars: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ExchangeAdded(PipelineEvent):
    number: int
    target: int | None = None
    trimmed: int = 0
    chars: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyChunk(PipelineEvent):
    """The assistant's reply to exchange `number` as generated so far, while a face follows the transcript.

    Why the whole text so far and not the newest piece: publishers coalesce (at most
    ~10 a second per transcript), so a subscriber that sees only some chunks still
    draws the right text. Never stored: the reply is stored once, complete
    (`ExchangeAdded` follows).
    """

    number: int
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TranscriptStatusChanged(PipelineEvent):
    status: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TranscriptFinished(PipelineEvent):
    """A transcript is done for this pass (decided, waiting for review, or failed)."""

    status: str
    error: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AssessmentDone(PipelineEvent):
    score: float
    passed: bool
    failed_checks: list[str] = field(default_factory=list)
    windows: int = 1
    judge_errors: list[str] = field(default_factory=list)
    """Criteria the judge could not answer (ERROR), as opposed to criteria it judged NO."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AssessmentProgress(PipelineEvent):
    """Judge calls answered so far for one transcript, out of all it needs (criteria × windows × judges).

    Verdicts reused from an interrupted judging count as answered. Published as the
    judging starts and after each judge call.
    """

    judged: int
    total: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FixupProposed(PipelineEvent):
    fixup_id: int
    exchange: int
    reason: str
    entailment_ok: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionMade(PipelineEvent):
    fixup_id: int
    decision: str
    by: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class TranscriptRejected(PipelineEvent):
    """A transcript was rejected or truncated; the reasons are in the store's rejection rows."""

    action: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class BackendErrorEvent(PipelineEvent):
    """A model call failed after its retries; the transcript it was for is `failed`."""

    actor: str
    error: str


@dataclass(frozen=True, kw_only=True, slots=True)
class StepFailed(PipelineEvent):
    """Any other exception in a step: the transcript is `failed` with this cause, the run goes on."""

    actor: str
    error_kind: str
    error: str


# --- training -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingNote(PipelineEvent):
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingData(PipelineEvent):
    report: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingRun(PipelineEvent):
    run_dir: str
    resumed_from: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingBegan(PipelineEvent):
    step: int
    max_steps: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingProgress(PipelineEvent):
    step: int
    max_steps: int
    loss: float
    lr: float = 0.0
    epoch: float = 0.0
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingEval(PipelineEvent):
    """The validation loss at an eval step (only when the run holds out a validation split)."""

    step: int
    max_steps: int
    eval_loss: float


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingCheckpoint(PipelineEvent):
    step: int
    path: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingFinished(PipelineEvent):
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    adapter: str | None = None


# --- from a kind and a payload ------------------------------------------------------------------

EVENT_TYPES: dict[str, type[PipelineEvent]] = {
    cls.__name__: cls
    for cls in (
        RunStarted,
        RunStatusChanged,
        RunFinished,
        WorkerStatus,
        PersonaReady,
        UserMessage,
        ReplyChunk,
        ExchangeAdded,
        TranscriptStatusChanged,
        TranscriptFinished,
        AssessmentProgress,
        AssessmentDone,
        FixupProposed,
        DecisionMade,
        TranscriptRejected,
        BackendErrorEvent,
        StepFailed,
        TrainingNote,
        TrainingData,
        TrainingRun,
        TrainingBegan,
        TrainingProgress,
        TrainingEval,
        TrainingCheckpoint,
        TrainingFinished,
    )
}
STORED_ALIASES = {
    "TranscriptStatus": TranscriptStatusChanged,
    "RunStatus": RunStatusChanged,
    "Rejection": TranscriptRejected,
    "BackendError": BackendErrorEvent,
}
"""Kinds the store's event rows use for the same facts under an older name."""


def event_from(
    kind: str,
    run_id: str | None = None,
    transcript_id: str | None = None,
    payload: dict[str, Any] | None = None,
    *,
    strict: bool = True,
) -> PipelineEvent | None:
    """The typed event for a kind and its payload (a stored row, or a publisher that speaks kinds).

    Payload keys the event does not have are dropped (stored rows carry extra
    facts, such as ids, for the log). An unknown kind raises unless ``strict``
    is off, when it gives None: a follower skips rows it has nothing to draw for.
    """
    cls = EVENT_TYPES.get(kind) or STORED_ALIASES.get(kind)
    if cls is None:
        if strict:
            raise ValueError(f"no event type {kind!r}")
        return None
    payload = payload or {}
    names = {f.name for f in dataclasses.fields(cls)} - _ENVELOPE
    try:
        return cls(
            run_id=run_id,
            transcript_id=transcript_id or payload.get("transcript_id"),
            **{k: v for k, v in payload.items() if k in names},
        )
    except TypeError:  # a stored row that lacks a field this type needs
        if strict:
            raise
        return None


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[MemoryObjectSendStream[PipelineEvent]] = []
        self.dropped = 0

    def subscribe(self, buffer: int = 10_000) -> MemoryObjectReceiveStream[PipelineEvent]:
        send, receive = anyio.create_memory_object_stream[PipelineEvent](buffer)
        self._subscribers.append(send)
        return receive

    def publish(self, event: PipelineEvent) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                self.dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(send)

    def close(self) -> None:
        for send in self._subscribers:
            send.close()
        self._subscribers.clear()
