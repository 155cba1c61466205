"""The supervisor: one anyio task group per run, one inbox and N workers per actor.

Actors pass transcript ids, never conversations: the store holds the data
and every worker re-reads what it needs, so a message can be replayed after
a crash without harm. Each step commits before the next message is sent, and
a restart rebuilds the inboxes from what the store says is unfinished:

    planned     -> persona    (enrich the sampled persona seed)
    generating  -> simulator  (next user message) or assistant (reply owed)
    curating    -> curator    (artifact fixups, truncation)
    assessing   -> assessor   (then passed, rejected, or fixing once)
    fixing      -> curator    (rubric fixups of the exchanges the judge cited)
    review      -> waits for a person's decisions (actors.curation.review), then assessing
    failed      -> retried from wherever its data stops

Failures stay small: any exception in a step (a backend that keeps failing,
a malformed answer, a judge that cannot answer a safety criterion) marks
that transcript `failed` with the cause's kind and message, and the run goes
on; a resume retries it from the step it failed in. A database that stays
locked is retried with backoff first. Only a store that cannot even record
a failure (a full disk) ends the run, as `failed`, with one clear message.
The run's final status says what happened: `finished`, `stopped` or `failed`.

What a face draws comes from the bus, never from polling: a step's event
right after its commit, the judge calls answered so far (`AssessmentProgress`),
and, for the transcripts a face follows (`stream_replies`), the reply as the
model writes it (`ReplyChunk`, at most ten a second). Each step's tokens go
into its event row, so a resumed run's counters start where they were.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from state import db_errors
from state import pipeline as db
from state.errors import CoachError
from state.models import Exchange, Persona, Transcript
from state.status import TERMINAL
from state.status import TranscriptStatus as Status
from state.store import Store

from .assessment.assessor import assess_resumably
from .backends.errors import BackendError
from .backends.types import Message, Reply, Usage
from .curation.curator import CurationSettings, Curator
from .evaluation.evaluator import Evaluator
from .events import (
    AssessmentDone,
    AssessmentProgress,
    BackendErrorEvent,
    EventBus,
    ExchangeAdded,
    PersonaReady,
    ReplyChunk,
    RunFinished,
    RunStarted,
    StepFailed,
    TranscriptFinished,
    TranscriptStatusChanged,
    UserMessage,
    WorkerStatus,
)
from .generation.conversation import (
    Turn,
    assistant_messages,
    clean_user_message,
    fit_recent,
    user_sim_messages,
)
from .generation.personas import PersonaSeed, enrich_persona
from .pack.loader import DomainPack
from .run_lease import RunLease
from .shared_run import ClaimFeeder

ACTORS = ("persona", "simulator", "assistant", "curator", "assessor")
RETRY_FROM = (Status.PLANNED, Status.CURATING, Status.FIXING, Status.ASSESSING)
"""Statuses a failed transcript is retried from as they were; from `generating` the data says where."""
UI_INTERVAL_S = 0.1
"""Streamed reply text is published at most this often per transcript: a face redraws ten times
a second at most, so an event per token would only cost the run's loop."""


@dataclass
class ActorStats:
    """Live counters for one actor, drawn by the monitor."""

    workers: int = 0
    busy: int = 0
    queued: int = 0
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class TranscriptState:
    """What the workers need of one transcript, read from the store once and kept in step with it.

    Every change is committed first and mirrored here after, so this is a
    cache of the store, never a second source of truth: a restart rebuilds
    it from the database.
    """

    target: int
    persona_id: str
    seed: PersonaSeed
    persona_data: dict
    turns: list[Turn]
    pending_user: str | None
    seed_key: str
    """What sampling seeds derive from: the transcript id, or in an evaluation the persona and run
    index, so both models meet the same simulator."""


@dataclass
class GenerationSettings:
    max_tokens_user: int = 600
    max_tokens_assistant: int = 700
    temperature: float = 0.8
    in_flight: int = 4
    evaluation: bool = False
    """Evaluation mode: the `eval_target` role answers with the bare system prompt (as deployed),
    and transcripts are assessed as they are — no fixups, no truncation."""
    busy_attempts: int = 4
    """Tries again of a step whose write found the database locked (each after the driver's own wait)."""
    busy_backoff_s: float = 2.0
    """First pause between those tries; it doubles, up to 30 s."""


class Course(Protocol):
    """What the supervisor asks at each fork where a generation run and an evaluation part ways."""

    records_rejections: bool
    """Whether a rejected transcript gets a rejection row saying why."""

    def after_generation(self) -> tuple[Status, str]:
        """The status and the actor a transcript with a complete conversation moves on to."""
        ...

    def assistant_prompt(self, pack: DomainPack, turns: Sequence[Turn], user_message: str) -> tuple[str, list[Message]]:
        """The role that replies, and what it sees."""
        ...

    def after_failed_assessment(self, *, judged_unsafe: bool, after_fixup: bool) -> Status:
        """Where a transcript that failed its assessment (with a verdict on every safety gate) goes."""
        ...


class CuratedRun:
    """The course of a generation run: the assistant follows the generation guidance, and transcripts are curated."""

    records_rejections = True

    def after_generation(self) -> tuple[Status, str]:
        return Status.CURATING, "curator"

    def assistant_prompt(self, pack: DomainPack, turns: Sequence[Turn], user_message: str) -> tuple[str, list[Message]]:
        return "assistant", assistant_messages(pack, turns, user_message)

    def after_failed_assessment(self, *, judged_unsafe: bool, after_fixup: bool) -> Status:
        """A safety failure, or a second failure, rejects; anything else is fixed once."""
        return Status.REJECTED if judged_unsafe or after_fixup else Status.FIXING


class JudgeFailure(CoachError):
    """The judges could not answer a safety criterion: no verdict, so neither a pass nor a safety rejection."""


@dataclass
class RunSummary:
    run_id: str
    counts: dict[str, int]
    failed: dict[str, str] = field(default_factory=dict)
    pass_rate: float | None = None
    elapsed_s: float = 0.0
    exchanges: int = 0
    status: str = "finished"
    """`finished` (every transcript decided or waiting for review), `stopped`, or `failed`."""
    error: str | None = None
    """Why the run itself could not go on (a full disk, its lease taken over); None otherwise."""

    @property
    def ok(self) -> bool:
        """True only when the run finished with no transcript failed."""
        return self.status == "finished" and not self.failed


class Supervisor:
    """Runs the generate-and-assess pipeline of one run to completion (or until stopped)."""

    def __init__(
        self,
        store: Store,
        router,
        pack: DomainPack,
        *,
        bus: EventBus | None = None,
        settings: GenerationSettings | None = None,
        curation: CurationSettings | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.pack = pack
        self.bus = bus or EventBus()
        self.settings = settings or GenerationSettings()
        self.curation = curation or CurationSettings()
        self.course: Course = Evaluator() if self.settings.evaluation else CuratedRun()
        self.stats = {name: ActorStats() for name in ACTORS}
        self._outstanding = 0
        self._all_done = anyio.Event()
        self._running = anyio.Event()
        self._running.set()
        self._cancel: anyio.CancelScope | None = None
        self._inboxes: dict[str, tuple[MemoryObjectSendStream[str], MemoryObjectReceiveStream[str]]] = {}
        self._state: dict[str, TranscriptState] = {}
        self._only: Callable[[Transcript], bool] | None = None
        self._abort: str | None = None
        self._lease: RunLease | None = None
        self._feeder: ClaimFeeder | None = None
        self._stopping = False
        self.exchanges_done = 0
        self.stream_replies: Callable[[str], bool] | None = None
        """Which transcripts' replies to stream as `ReplyChunk` events (a face following them); None: none.
        Called from this run's loop, so it must be cheap and thread-safe (a face sets what it reads)."""

    # --- control (the TUI's buttons) ---------------------------------------------

    def pause(self) -> None:
        self._running = anyio.Event()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def stop(self) -> None:
        """End the run: workers are cancelled (a stop before `run` starts ends it at once)."""
        self._stopping = True
        if self._cancel is not None:
            self._cancel.cancel()

    # --- the run ------------------------------------------------------------------

    async def run(
        self,
        run_id: str,
        *,
        only: Callable[[Transcript], bool] | None = None,
        lease: RunLease | None = None,
        feeder: ClaimFeeder | None = None,
    ) -> RunSummary:
        """Work on every unfinished transcript of the run (or those `only` selects) until each is decided.

        With a `lease` (taken by the caller), its heartbeat runs in this run's task group, and a lease
        lost to another process stops the run without writing its status: the run is theirs now.
        With a `feeder` (a shared run, `actors.shared_run`), only the transcripts it claims are worked,
        and the pass ends when the feeder says the whole run is done for now.
        """
        started = time.monotonic()
        self._only = only
        self._abort = None
        self._lease = lease
        self._feeder = feeder
        self.run_id = run_id
        self.curator = Curator(self.store, self.router, self.pack, run_id=run_id, bus=self.bus, settings=self.curation)
        self.exchanges_done = 0
        self._state = {}
        self._inboxes = {name: anyio.create_memory_object_stream[str](1_000_000) for name in ACTORS}
        start_points = self._plan_resume(run_id) if feeder is None else []
        self._outstanding = len(start_points)
        self._all_done = anyio.Event()
        db.set_run_status(self.store, run_id, "running")
        self.bus.publish(RunStarted(run_id=run_id, transcripts=len(start_points)))
        handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "persona": self._persona_step,
            "simulator": self._simulator_step,
            "assistant": self._assistant_step,
            "curator": self._curator_step,
            "assessor": self._assessor_step,
        }
        with anyio.CancelScope() as scope:
            self._cancel = scope
            if self._stopping:
                scope.cancel()
            async with anyio.create_task_group() as tg:
                for tid, actor in start_points:
                    self._send(actor, tid)
                for name, handler in handlers.items():
                    _, receive = self._inboxes[name]
                    workers = self.settings.in_flight
                    self.stats[name].workers = workers
                    for _ in range(workers):
                        tg.start_soon(self._worker, name, receive.clone(), handler)
                    receive.close()
                if lease is not None:
                    tg.start_soon(lease.keep, self._lease_lost)
                if feeder is not None:
                    tg.start_soon(feeder.work, self._start_claimed, self._all_done.set)
                elif not start_points:
                    self._all_done.set()
                await self._all_done.wait()
                tg.cancel_scope.cancel()
        stopped = scope.cancelled_caught
        self._stopping = False
        for send, receive in self._inboxes.values():
            send.close()
            receive.close()
        return self._close(run_id, time.monotonic() - started, stopped=stopped)

    def _close(self, run_id: str, elapsed: float, *, stopped: bool) -> RunSummary:
        """Record how the pass ended — finished, stopped or failed — and say so."""
        lost = self._lease is not None and self._lease.lost
        try:
            summary = self._summary(run_id, elapsed)
        except Exception as err:  # noqa: BLE001 - the store itself failed; say so rather than crash
            summary = RunSummary(run_id=run_id, counts={}, elapsed_s=elapsed, exchanges=self.exchanges_done)
            self._abort = self._abort or db_errors.describe(err)
        if lost:
            summary.status, summary.error = "stopped", f"run {run_id} was taken over by another process"
        elif self._abort:
            summary.status, summary.error = "failed", self._abort
        elif stopped:
            summary.status = "stopped"
        else:
            summary.status = "failed" if summary.failed else "finished"
        # A worker stopped while others work on leaves the run's status to them.
        if not lost and not (stopped and self._feeder is not None and _quietly(self._feeder.others_working)):
            try:
                db.set_run_status(
                    self.store,
                    run_id,
                    summary.status,
                    counts=summary.counts,
                    failed=summary.failed,
                    **({"error": summary.error} if summary.error else {}),
                )
            except Exception as err:  # noqa: BLE001 - a full disk cannot take the final status either
                summary.status = "failed"
                summary.error = summary.error or f"run {run_id} cannot go on: {db_errors.describe(err)}"
        self.bus.publish(
            RunFinished(
                run_id=run_id,
                status=summary.status,
                counts=summary.counts,
                failed=summary.failed,
                pass_rate=summary.pass_rate,
                error=summary.error,
            )
        )
        return summary

    def _lease_lost(self) -> None:
        self.stop()

    async def _start_claimed(self, transcript_id: str) -> None:
        """A transcript claimed by this worker (a shared run): it picks up where the store says, as in a resume."""
        if self._stopping:  # claimed as the stop came: the feeder gives it back on the way out
            return
        try:
            points = self._plan_resume(self.run_id, ids=[transcript_id])
        except Exception as err:  # noqa: BLE001 - stays with its transcript, as a step's failure does
            await self._fail("supervisor", transcript_id, err)
            return
        for tid, actor in points:
            self._send(actor, tid)
        if not points:  # done meanwhile (another worker finished it before its claim expired)
            self._finish(transcript_id)

    def _plan_resume(self, run_id: str, ids: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """Where each unfinished transcript (of `ids` only, when given) picks up, read from the store alone.

        The state of every transcript to work on is read here in three queries, not three per
        transcript: with 32 in flight, per-transcript reads delayed the first calls visibly.
        """
        found = (
            db.run_transcripts(self.store, run_id)
            if ids is None
            else [t for tid in ids if (t := db.transcript(self.store, tid)) is not None]
        )
        pending = [
            t
            for t in found
            if t.status not in db.TERMINAL
            and t.status != Status.REVIEW  # review waits for a person
            and (self._only is None or self._only(t))
        ]
        rows = db.exchanges_of(self.store, [t.id for t in pending])
        personas = db.personas_by_id(self.store, {t.persona_id for t in pending})
        points = []
        for t in pending:
            self._state[t.id] = _state_of(t, personas[t.persona_id], rows.get(t.id, []))
            if t.status == Status.FAILED and t.meta.get("failed_from") in RETRY_FROM:
                # Retry the step it failed in: a judge failure is judged again, not curated again.
                t.status = t.meta["failed_from"]
                if t.status != Status.PLANNED:
                    db.set_status(self.store, run_id, t.id, t.status)
            if t.status == Status.PLANNED:
                points.append((t.id, "persona"))
            elif t.status == Status.ASSESSING:
                points.append((t.id, "assessor"))
            elif t.status in (Status.CURATING, Status.FIXING):
                points.append((t.id, "curator"))
            else:
                points.append((t.id, self._next_generation_actor(t.id, t.target_exchanges or 0, rows.get(t.id, []))))
        return points

    def _next_generation_actor(self, transcript_id: str, target: int, rows) -> str:
        if rows and not rows[-1].assistant:
            return "assistant"
        if len(rows) < target:
            return "simulator"
        status, actor = self.course.after_generation()
        db.set_status(self.store, self.run_id, transcript_id, status)
        return actor

    def _send(self, actor: str, transcript_id: str) -> None:
        self._inboxes[actor][0].send_nowait(transcript_id)
        self.stats[actor].queued += 1
        self._publish_worker(actor)

    def _finish(self, transcript_id: str) -> None:
        self._state.pop(transcript_id, None)
        if self._feeder is not None:  # a shared run: the claim goes back; the feeder says when the run is done
            self._feeder.finished(transcript_id)
            return
        self._outstanding -= 1
        if self._outstanding <= 0:
            self._all_done.set()

    def _publish_worker(self, actor: str) -> None:
        st = self.stats[actor]
        self.bus.publish(
            WorkerStatus(
                run_id=self.run_id,
                actor=actor,
                busy=st.busy,
                workers=st.workers,
                queued=st.queued,
                calls=st.calls,
                errors=st.errors,
                prompt_tokens=st.prompt_tokens,
                completion_tokens=st.completion_tokens,
            )
        )

    async def _worker(
        self, actor: str, inbox: MemoryObjectReceiveStream[str], handler: Callable[[str], Awaitable[None]]
    ) -> None:
        st = self.stats[actor]
        async with inbox:
            async for transcript_id in inbox:
                await self._running.wait()
                st.queued -= 1
                if self._feeder is not None and not self._feeder.still_ours(transcript_id):
                    self._finish(transcript_id)  # taken over by another worker after a stall: theirs now
                    continue
                st.busy += 1
                self._publish_worker(actor)
                try:
                    await self._attempt(handler, transcript_id)
                except Exception as err:  # noqa: BLE001 - any failure of a step stays with its transcript
                    if self._stopping:  # a call interrupted by the stop: the step simply did not happen
                        return
                    st.errors += 1
                    await self._fail(actor, transcript_id, err)
                finally:
                    st.busy -= 1
                    self._publish_worker(actor)

    async def _attempt(self, handler: Callable[[str], Awaitable[None]], transcript_id: str) -> None:
        """Run one step; a step whose write found the database locked is tried again, with backoff.

        Every step commits before it changes what it keeps in memory, so a failed write leaves the
        step as if it had not run, and the retry starts it over (re-asking its model call).
        """
        try:  # the first try without tenacity: building its retry state costs more than a step (~1 ms)
            await handler(transcript_id)
            return
        except Exception as err:  # only a busy database is tried again
            if not db_errors.is_locked(err):
                raise
        await anyio.sleep(self.settings.busy_backoff_s)
        async for attempt in self._while_busy():
            with attempt:
                await handler(transcript_id)

    def _while_busy(self, patience: int = 1) -> AsyncRetrying:
        """Tries of a write that found the database locked: `busy_attempts` × `patience`, with growing pauses."""
        return AsyncRetrying(
            sleep=anyio.sleep,
            stop=stop_after_attempt(max(1, self.settings.busy_attempts * patience)),
            wait=wait_exponential(multiplier=self.settings.busy_backoff_s, max=30),
            retry=retry_if_exception(db_errors.is_locked),
            reraise=True,
        )

    async def _fail(self, actor: str, transcript_id: str, err: Exception) -> None:
        """Mark the transcript `failed` with its cause (kind and message); the run goes on.

        The status it failed in is kept (`failed_from`), so a resume retries that step. If the store
        cannot record even this (a full disk), the run stops as `failed` with that cause.
        """
        kind = type(err).__name__
        message = str(err) if isinstance(err, CoachError) else db_errors.describe(err)
        if not isinstance(err, CoachError) and message.startswith(f"{kind}: "):
            message = message[len(kind) + 2 :]
        cause = f"{kind}: {message}"
        try:
            # Recording the failure is worth more patience than the step: the lock may be gone by now.
            async for attempt in self._while_busy(patience=2):
                with attempt:
                    current = db.transcript(self.store, transcript_id)
                    if current is not None and current.status in TERMINAL:
                        # Its verdict is already stored: an error after that (e.g. publishing) changes nothing.
                        return
                    previous = current.status if current is not None and current.status != Status.FAILED else None
                    db.set_status(
                        self.store,
                        self.run_id,
                        transcript_id,
                        Status.FAILED,
                        error=cause,
                        error_kind=kind,
                        failed_actor=actor,
                        **({"failed_from": previous} if previous else {}),
                    )
        except Exception as record_err:  # noqa: BLE001 - the store cannot take the failure itself
            why = db_errors.describe(record_err)
            also = "" if type(record_err) is type(err) and why == message else f" ({transcript_id} had failed: {cause})"
            self._abort = f"run {self.run_id} cannot go on: {why}{also}"
            self.stop()
            return
        if isinstance(err, BackendError):
            self.bus.publish(
                BackendErrorEvent(run_id=self.run_id, transcript_id=transcript_id, actor=actor, error=message)
            )
        else:
            self.bus.publish(
                StepFailed(run_id=self.run_id, transcript_id=transcript_id, actor=actor, error_kind=kind, error=message)
            )
        self.bus.publish(
            TranscriptFinished(run_id=self.run_id, transcript_id=transcript_id, status=Status.FAILED, error=cause)
        )
        self._finish(transcript_id)

    async def _ask(self, actor: str, role: str, messages, **kwargs):
        st = self.stats[actor]
        st.calls += 1
        reply = await self.router.ask(role, messages, **kwargs)
        st.prompt_tokens += reply.usage.prompt_tokens
        st.completion_tokens += reply.usage.completion_tokens
        return reply

    # --- steps --------------------------------------------------------------------

    def _load(self, transcript_id: str) -> TranscriptState:
        state = self._state.get(transcript_id)
        if state is None:
            t = db.transcript(self.store, transcript_id)
            state = self._state[transcript_id] = _state_of(
                t, db.persona(self.store, t.persona_id), db.exchanges(self.store, transcript_id)
            )
        return state

    async def _persona_step(self, transcript_id: str) -> None:
        state = self._load(transcript_id)
        if "profile" not in state.persona_data:  # personas shared by several transcripts are enriched once
            self.stats["persona"].calls += 1
            state.persona_data = await enrich_persona(self.router, self.pack, state.seed, state.persona_data)
        # The stored persona wins: another transcript sharing it may have been enriched first.
        state.persona_data = db.save_persona(
            self.store, self.run_id, transcript_id, state.persona_id, state.persona_data
        )
        self.bus.publish(
            PersonaReady(
                run_id=self.run_id, transcript_id=transcript_id, name=state.persona_data["profile"].get("name")
            )
        )
        self._send("simulator", transcript_id)

    async def _simulator_step(self, transcript_id: str) -> None:
        state = self._load(transcript_id)
        turns, target = state.turns, state.target
        backend = self.router.backends_for("user_sim")[0]
        budget = backend.context_window - self.settings.max_tokens_user - 64

        def build(kept, omitted):
            return user_sim_messages(
                self.pack,
                state.seed,
                state.persona_data.get("profile", {}),
                kept,
                transcript_seed=state.seed_key,
                target_exchanges=target,
                omitted=omitted,
            )

        kept, omitted = fit_recent(turns, lambda k: backend.count_tokens(build(k, len(turns) - len(k))) <= budget)
        reply = await self._ask(
            "simulator",
            "user_sim",
            build(kept, omitted),
            max_tokens=self.settings.max_tokens_user,
            temperature=self.settings.temperature,
            seed=_seed_for(state.seed_key, len(turns) + 1, "user"),
        )
        text = clean_user_message(reply.text)
        if not text:
            raise BackendError(
                backend=reply.backend, role="user_sim", cause="the user simulator returned an empty message"
            )
        number = len(turns) + 1
        text = db.add_user_message(
            self.store, self.run_id, transcript_id, number, text, usage=_usage_of(reply)
        )  # a replay keeps the first
        state.pending_user = text
        self.bus.publish(UserMessage(run_id=self.run_id, transcript_id=transcript_id, number=number))
        self._send("assistant", transcript_id)

    async def _assistant_step(self, transcript_id: str) -> None:
        state = self._load(transcript_id)
        turns, pending = state.turns, state.pending_user
        if pending is None:  # replayed message: the reply was already committed
            self._after_reply(transcript_id, len(turns))
            return
        number = len(turns) + 1
        role, messages = self.course.assistant_prompt(self.pack, turns, pending)
        reply = await self._reply(
            transcript_id,
            number,
            role,
            messages,
            max_tokens=self.settings.max_tokens_assistant,
            temperature=self.settings.temperature,
            seed=_seed_for(state.seed_key, number, "assistant"),
        )
        text = reply.text.strip()
        if not text:
            raise BackendError(backend=reply.backend, role=role, cause="the assistant returned an empty reply")
        text = db.set_assistant_reply(
            self.store, self.run_id, transcript_id, number, text, usage=_usage_of(reply)
        )  # a replay keeps the first
        state.turns.append(Turn(pending, text))
        state.pending_user = None
        self.exchanges_done += 1
        self.bus.publish(
            ExchangeAdded(
                run_id=self.run_id,
                transcript_id=transcript_id,
                number=number,
                target=state.target,
                trimmed=reply.usage.trimmed_messages,
            )
        )
        self._after_reply(transcript_id, number)

    async def _reply(self, transcript_id: str, number: int, role: str, messages: list[Message], **kwargs) -> Reply:
        """The assistant's reply: streamed while a face follows this transcript, else asked whole.

        Either way the same prompt, sampling settings and seed reach the same backend, so the reply
        stored is the one the plain call gives. A stream is not retried, so a stream that fails, or
        gives nothing (a server that ignores the request to stream), is asked again the plain way,
        with its retries, and that reply is the one stored.
        """
        streams = self.stream_replies
        if streams is None or not streams(transcript_id):
            return await self._ask("assistant", role, messages, **kwargs)
        try:
            reply = await self._streamed("assistant", role, transcript_id, number, messages, **kwargs)
        except BackendError:
            if self._stopping:
                raise
        else:
            if reply.text.strip():
                return reply
        return await self._ask("assistant", role, messages, **kwargs)

    async def _streamed(
        self, actor: str, role: str, transcript_id: str, number: int, messages: list[Message], **kwargs
    ) -> Reply:
        """Ask for a reply as a stream, publishing the text so far: the first piece at once, then every
        `UI_INTERVAL_S` while it grew (so a stream that stalls still shows all it has written)."""
        st = self.stats[actor]
        st.calls += 1
        backend = self.router.backend_for(role)
        started = time.monotonic()
        pieces: list[str] = []
        published = 0

        def publish() -> None:
            nonlocal published
            published = len(pieces)
            self.bus.publish(
                ReplyChunk(run_id=self.run_id, transcript_id=transcript_id, number=number, text="".join(pieces))
            )

        async def flush() -> None:
            while True:
                await anyio.sleep(UI_INTERVAL_S)
                if len(pieces) != published:
                    publish()

        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(flush)
            try:
                async with contextlib.aclosing(self.router.stream(role, messages, **kwargs)) as stream:
                    async for piece in stream:
                        pieces.append(piece)
                        if not published:
                            publish()
            except Exception as err:  # noqa: BLE001 - raised below as itself, not wrapped in a task group's
                failure = err
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if backend.tokenizes_locally:  # a local tokenizer may take a while on a long prompt: not on the loop
            prompt_tokens = await anyio.to_thread.run_sync(backend.count_tokens, messages)
        else:
            prompt_tokens = backend.count_tokens(messages)
        # A stream reports no usage: the pieces are the model's tokens as it produced them.
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=len(pieces))
        st.prompt_tokens += usage.prompt_tokens
        st.completion_tokens += usage.completion_tokens
        return Reply(
            text="".join(pieces),
            usage=usage,
            latency_s=time.monotonic() - started,
            backend=backend.name,
            model=backend.model,
        )

    def _judging_progress(self, transcript_id: str) -> Callable[[int, int], None]:
        """Publish `AssessmentProgress` as a judging starts and after each judge call.

        Not coalesced like streamed text: a judge call is a model call and a committed verdict, so
        one more event per call costs nothing beside it, and a judging that stalls still shows its
        last count.
        """

        def report(judged: int, total: int) -> None:
            self.bus.publish(
                AssessmentProgress(run_id=self.run_id, transcript_id=transcript_id, judged=judged, total=total)
            )

        return report

    def _after_reply(self, transcript_id: str, number: int) -> None:
        if number < self._load(transcript_id).target:
            self._send("simulator", transcript_id)
        else:
            self._move(transcript_id, *self.course.after_generation())

    def _move(self, transcript_id: str, status: str, actor: str | None) -> None:
        """Commit a status change, tell the UI, and hand the transcript on (or let it rest)."""
        db.set_status(self.store, self.run_id, transcript_id, status)
        self.bus.publish(TranscriptStatusChanged(run_id=self.run_id, transcript_id=transcript_id, status=status))
        if actor:
            self._send(actor, transcript_id)
        else:
            self.bus.publish(TranscriptFinished(run_id=self.run_id, transcript_id=transcript_id, status=status))
            self._finish(transcript_id)

    async def _curator_step(self, transcript_id: str) -> None:
        state = self._load(transcript_id)
        self.stats["curator"].calls += 1
        t = db.transcript(self.store, transcript_id)
        if t.status == Status.FIXING:
            found = db.latest_assessment(self.store, transcript_id)
            gates = set(self.pack.rubric.safety_gates)
            failed = {}
            if found:
                assessment, rows = found
                for cid in assessment.failed_checks:
                    if cid in gates:
                        continue
                    why = [
                        r.reasoning for r in rows if r.criterion == cid and r.judge != "combined" and r.answer != "YES"
                    ]
                    failed[cid] = "\n".join(why)
            status = await self.curator.rubric_stage(transcript_id, state.turns, failed)
        else:
            status = await self.curator.artifact_stage(transcript_id, state.turns)
        if status == Status.ASSESSING:
            self._move(transcript_id, Status.ASSESSING, "assessor")
        elif status == Status.REVIEW:
            self._move(transcript_id, Status.REVIEW, None)
        else:
            self.bus.publish(TranscriptFinished(run_id=self.run_id, transcript_id=transcript_id, status=status))
            self._finish(transcript_id)

    async def _assessor_step(self, transcript_id: str) -> None:
        turns = self._load(transcript_id).turns
        t = db.transcript(self.store, transcript_id)
        after_fixup = bool(t.meta.get("rubric_fixups"))
        stage = "after_fixup" if after_fixup else "initial"
        self.stats["assessor"].calls += 1
        outcome = await assess_resumably(
            self.store,
            self.router,
            self.pack,
            transcript_id,
            turns,
            stage=stage,
            seed=0,
            progress=self._judging_progress(transcript_id),
        )
        result = outcome.result
        rows = [(a.criterion, a.answer, a.reasoning, a.judge) for a in outcome.judge_answers]
        if len({a.judge for a in outcome.judge_answers}) > 1:
            rows += [
                (cid, ans, f"strictest of the judges; decided by {outcome.decided_by[cid]}", "combined")
                for cid, ans in outcome.answers.items()
            ]
        gates = self.pack.rubric.safety_gates
        judged_unsafe = [cid for cid in gates if outcome.answers.get(cid) == "NO"]
        unanswered_gates = [cid for cid in gates if outcome.answers.get(cid) == "ERROR"]
        judge_failed = not result.passed and not judged_unsafe and bool(unanswered_gates)
        if result.passed:
            status = Status.PASSED
        elif judge_failed:
            status = None  # no verdict on safety: the transcript fails below, and a resume judges it again
        else:
            status = self.course.after_failed_assessment(judged_unsafe=bool(judged_unsafe), after_fixup=after_fixup)
        rejection = None
        if status == Status.REJECTED and self.course.records_rejections:
            rejection = dict(
                stage="assessment",
                action="rejected",
                reason_kind="safety_gate" if judged_unsafe else "criterion",
                reason=",".join(judged_unsafe or result.failed_checks),
                kept_exchanges=outcome.exchange_count,
                detail=f"score {result.score:.3f} (threshold {self.pack.rubric.pass_threshold:.2f})"
                + (" after fixups" if after_fixup else ""),
            )
        if not judge_failed:  # no verdict, no assessment: its verdicts stay stored per call for the retry
            # The judging, the transcript's next status and the rejection it implies commit together.
            db.save_assessment(
                self.store,
                self.run_id,
                transcript_id,
                stage=stage,
                exchange_count=outcome.exchange_count,
                rubric_version=self.pack.rubric.version,
                result={**result.as_dict(), "windows": outcome.windows},
                answers=rows,
                status=status,
                meta={"rubric_fixups": True} if status == Status.FIXING else None,
                rejection=rejection,
                usage={"prompt_tokens": outcome.prompt_tokens},
            )
        self.stats["assessor"].prompt_tokens += outcome.prompt_tokens
        self.bus.publish(
            AssessmentDone(
                run_id=self.run_id,
                transcript_id=transcript_id,
                score=result.score,
                passed=result.passed,
                failed_checks=result.failed_checks,
                windows=outcome.windows,
                judge_errors=[c for c, a in outcome.answers.items() if a == "ERROR"],
            )
        )
        if judge_failed:
            why = {r[0]: r[2] for r in rows if r[0] in unanswered_gates and r[1] == "ERROR"}
            raise JudgeFailure(
                "the judge gave no verdict on safety criteria "
                + "; ".join(
                    f"{cid} ({why.get(cid, '').splitlines()[0] if why.get(cid) else 'ERROR'})"
                    for cid in unanswered_gates
                )
            )
        if status == Status.FIXING:
            self._send("curator", transcript_id)
            return
        self.bus.publish(TranscriptFinished(run_id=self.run_id, transcript_id=transcript_id, status=status))
        self._finish(transcript_id)

    def _summary(self, run_id: str, elapsed: float) -> RunSummary:
        rows = [t for t in db.run_transcripts(self.store, run_id) if self._only is None or self._only(t)]
        counts: dict[str, int] = {}
        for t in rows:
            counts[t.status] = counts.get(t.status, 0) + 1
        assessed = counts.get(Status.PASSED, 0) + counts.get(Status.REJECTED, 0)  # decided by the pipeline
        return RunSummary(
            run_id=run_id,
            counts=counts,
            failed={t.id: t.meta.get("error", "") for t in rows if t.status == Status.FAILED},
            pass_rate=(counts.get(Status.PASSED, 0) / assessed) if assessed else None,
            elapsed_s=elapsed,
            exchanges=self.exchanges_done,
        )


def _state_of(t: Transcript, p: Persona, rows: list[Exchange]) -> TranscriptState:
    return TranscriptState(
        target=t.target_exchanges or 1,
        persona_id=p.id,
        seed=PersonaSeed.from_dict(p.data["seed"]),
        persona_data=p.data,
        turns=[Turn(r.user, r.assistant) for r in rows if r.assistant],
        pending_user=rows[-1].user if rows and not rows[-1].assistant else None,
        seed_key=t.meta.get("seed_key", t.id),
    )


def _quietly(check: Callable[[], bool]) -> bool:
    """A check on the store that may fail (the store is what failed): False then."""
    try:
        return check()
    except Exception:  # noqa: BLE001 - the caller goes on as if the check said no
        return False


def _usage_of(reply: Reply) -> dict[str, int]:
    """A call's tokens, kept in its step's event row so a resumed run's counters start where they were."""
    return {"prompt_tokens": reply.usage.prompt_tokens, "completion_tokens": reply.usage.completion_tokens}


def _seed_for(transcript_id: str, number: int, who: str) -> int:
    """A per-call sampling seed derived from ids, so a resumed call samples like the original."""
    return zlib.crc32(f"{transcript_id}:{number}:{who}".encode()) & 0x7FFFFFFF
