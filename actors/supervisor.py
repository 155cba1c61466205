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
    review      -> waits for a person's decisions (actors.review), then assessing
    failed      -> retried from wherever its data stops

A transcript whose backend keeps failing is marked `failed` with the cause;
the run goes on and the summary lists it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from state import pipeline as db
from state.models import Exchange, Persona, Transcript
from state.store import Store

from .assessment import assess
from .backends.errors import BackendError
from .conversation import (
    Turn,
    assistant_messages,
    clean_user_message,
    deployed_messages,
    fit_recent,
    user_sim_messages,
)
from .curation import CurationSettings, Curator
from .events import EventBus
from .pack.loader import DomainPack
from .personas import PersonaSeed, enrich_persona

ACTORS = ("persona", "simulator", "assistant", "curator", "assessor")


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


@dataclass
class RunSummary:
    run_id: str
    counts: dict[str, int]
    failed: dict[str, str] = field(default_factory=dict)
    pass_rate: float | None = None
    elapsed_s: float = 0.0
    exchanges: int = 0


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
        self.stats = {name: ActorStats() for name in ACTORS}
        self._outstanding = 0
        self._all_done = anyio.Event()
        self._running = anyio.Event()
        self._running.set()
        self._cancel: anyio.CancelScope | None = None
        self._inboxes: dict[str, tuple[MemoryObjectSendStream[str], MemoryObjectReceiveStream[str]]] = {}
        self._state: dict[str, TranscriptState] = {}
        self._only: Callable[[Transcript], bool] | None = None
        self.exchanges_done = 0

    # --- control (the TUI's buttons) ---------------------------------------------

    def pause(self) -> None:
        self._running = anyio.Event()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def stop(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    # --- the run ------------------------------------------------------------------

    async def run(self, run_id: str, *, only: Callable[[Transcript], bool] | None = None) -> RunSummary:
        """Work on every unfinished transcript of the run (or those `only` selects) until each is decided."""
        started = time.monotonic()
        self._only = only
        self.run_id = run_id
        self.curator = Curator(self.store, self.router, self.pack, run_id=run_id, bus=self.bus,
                               settings=self.curation)
        self.exchanges_done = 0
        self._state = {}
        self._inboxes = {name: anyio.create_memory_object_stream[str](1_000_000) for name in ACTORS}
        start_points = self._plan_resume(run_id)
        self._outstanding = len(start_points)
        self._all_done = anyio.Event()
        db.set_run_status(self.store, run_id, "running")
        self.bus.publish("RunStarted", run_id, transcripts=len(start_points))
        handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "persona": self._persona_step,
            "simulator": self._simulator_step,
            "assistant": self._assistant_step,
            "curator": self._curator_step,
            "assessor": self._assessor_step,
        }
        with anyio.CancelScope() as scope:
            self._cancel = scope
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
                if not start_points:
                    self._all_done.set()
                await self._all_done.wait()
                tg.cancel_scope.cancel()
        stopped = scope.cancelled_caught
        for send, receive in self._inboxes.values():
            send.close()
            receive.close()
        summary = self._summary(run_id, time.monotonic() - started)
        status = "stopped" if stopped else "finished"
        db.set_run_status(self.store, run_id, status, counts=summary.counts, failed=summary.failed)
        self.bus.publish("RunFinished", run_id, status=status, counts=summary.counts, failed=summary.failed,
                         pass_rate=summary.pass_rate)
        return summary

    def _plan_resume(self, run_id: str) -> list[tuple[str, str]]:
        """Where each unfinished transcript picks up, read from the store alone.

        The state of every transcript to work on is read here in three queries, not three per
        transcript: with 32 in flight, per-transcript reads delayed the first calls visibly.
        """
        pending = [t for t in db.run_transcripts(self.store, run_id)
                   if t.status not in db.TERMINAL and t.status != "review"  # review waits for a person
                   and (self._only is None or self._only(t))]
        rows = db.exchanges_of(self.store, [t.id for t in pending])
        personas = db.personas_by_id(self.store, {t.persona_id for t in pending})
        points = []
        for t in pending:
            self._state[t.id] = _state_of(t, personas[t.persona_id], rows.get(t.id, []))
            if t.status == "planned":
                points.append((t.id, "persona"))
            elif t.status == "assessing":
                points.append((t.id, "assessor"))
            elif t.status in ("curating", "fixing"):
                points.append((t.id, "curator"))
            else:
                points.append((t.id, self._next_generation_actor(t.id, t.target_exchanges or 0, rows.get(t.id, []))))
        return points

    def _next_generation_actor(self, transcript_id: str, target: int, rows) -> str:
        if rows and not rows[-1].assistant:
            return "assistant"
        if len(rows) < target:
            return "simulator"
        if self.settings.evaluation:
            db.set_status(self.store, self.run_id, transcript_id, "assessing")
            return "assessor"
        db.set_status(self.store, self.run_id, transcript_id, "curating")
        return "curator"

    def _send(self, actor: str, transcript_id: str) -> None:
        self._inboxes[actor][0].send_nowait(transcript_id)
        self.stats[actor].queued += 1
        self._publish_worker(actor)

    def _finish(self, transcript_id: str) -> None:
        self._state.pop(transcript_id, None)
        self._outstanding -= 1
        if self._outstanding <= 0:
            self._all_done.set()

    def _publish_worker(self, actor: str) -> None:
        st = self.stats[actor]
        self.bus.publish("WorkerStatus", self.run_id, actor=actor, busy=st.busy, workers=st.workers,
                         queued=st.queued, calls=st.calls, errors=st.errors,
                         prompt_tokens=st.prompt_tokens, completion_tokens=st.completion_tokens)

    async def _worker(self, actor: str, inbox: MemoryObjectReceiveStream[str],
                      handler: Callable[[str], Awaitable[None]]) -> None:
        st = self.stats[actor]
        async with inbox:
            async for transcript_id in inbox:
                await self._running.wait()
                st.queued -= 1
                st.busy += 1
                self._publish_worker(actor)
                try:
                    await handler(transcript_id)
                except BackendError as err:
                    st.errors += 1
                    db.set_status(self.store, self.run_id, transcript_id, "failed", error=str(err))
                    self.bus.publish("BackendError", self.run_id, transcript_id, actor=actor, error=str(err))
                    self.bus.publish("TranscriptFinished", self.run_id, transcript_id, status="failed")
                    self._finish(transcript_id)
                finally:
                    st.busy -= 1
                    self._publish_worker(actor)

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
            state = self._state[transcript_id] = _state_of(t, db.persona(self.store, t.persona_id),
                                                           db.exchanges(self.store, transcript_id))
        return state

    async def _persona_step(self, transcript_id: str) -> None:
        state = self._load(transcript_id)
        if "profile" not in state.persona_data:  # personas shared by several transcripts are enriched once
            self.stats["persona"].calls += 1
            state.persona_data = await enrich_persona(self.router, self.pack, state.seed, state.persona_data)
        db.save_persona(self.store, self.run_id, transcript_id, state.persona_id, state.persona_data)
        self.bus.publish("PersonaReady", self.run_id, transcript_id, name=state.persona_data["profile"].get("name"))
        self._send("simulator", transcript_id)

    async def _simulator_step(self, transcript_id: str) -> None:
        state = self._load(transcript_id)
        turns, target = state.turns, state.target
        backend = self.router.backends_for("user_sim")[0]
        budget = backend.context_window - self.settings.max_tokens_user - 64

        def build(kept, omitted):
            return user_sim_messages(self.pack, state.seed, state.persona_data.get("profile", {}), kept,
                                     transcript_seed=state.seed_key, target_exchanges=target, omitted=omitted)

        kept, omitted = fit_recent(turns, lambda k: backend.count_tokens(build(k, len(turns) - len(k))) <= budget)
        reply = await self._ask("simulator", "user_sim", build(kept, omitted),
                                max_tokens=self.settings.max_tokens_user, temperature=self.settings.temperature,
                                seed=_seed_for(state.seed_key, len(turns) + 1, "user"))
        text = clean_user_message(reply.text)
        if not text:
            raise BackendError(backend=reply.backend, role="user_sim", cause="the user simulator returned an empty message")
        number = len(turns) + 1
        db.add_user_message(self.store, self.run_id, transcript_id, number, text)
        state.pending_user = text
        self.bus.publish("UserMessage", self.run_id, transcript_id, number=number)
        self._send("assistant", transcript_id)

    async def _assistant_step(self, transcript_id: str) -> None:
        state = self._load(transcript_id)
        turns, pending = state.turns, state.pending_user
        if pending is None:  # replayed message: the reply was already committed
            self._after_reply(transcript_id, len(turns))
            return
        number = len(turns) + 1
        if self.settings.evaluation:
            role, messages = "eval_target", deployed_messages(self.pack, turns, pending)
        else:
            role, messages = "assistant", assistant_messages(self.pack, turns, pending)
        reply = await self._ask("assistant", role, messages,
                                max_tokens=self.settings.max_tokens_assistant, temperature=self.settings.temperature,
                                seed=_seed_for(state.seed_key, number, "assistant"))
        text = reply.text.strip()
        if not text:
            raise BackendError(backend=reply.backend, role=role, cause="the assistant returned an empty reply")
        db.set_assistant_reply(self.store, self.run_id, transcript_id, number, text)
        state.turns.append(Turn(pending, text))
        state.pending_user = None
        self.exchanges_done += 1
        self.bus.publish("ExchangeAdded", self.run_id, transcript_id, number=number,
                         target=state.target, trimmed=reply.usage.trimmed_messages)
        self._after_reply(transcript_id, number)

    def _after_reply(self, transcript_id: str, number: int) -> None:
        if number < self._load(transcript_id).target:
            self._send("simulator", transcript_id)
        elif self.settings.evaluation:
            self._move(transcript_id, "assessing", "assessor")
        else:
            self._move(transcript_id, "curating", "curator")

    def _move(self, transcript_id: str, status: str, actor: str | None) -> None:
        """Commit a status change, tell the UI, and hand the transcript on (or let it rest)."""
        db.set_status(self.store, self.run_id, transcript_id, status)
        self.bus.publish("TranscriptStatus", self.run_id, transcript_id, status=status)
        if actor:
            self._send(actor, transcript_id)
        else:
            self.bus.publish("TranscriptFinished", self.run_id, transcript_id, status=status)
            self._finish(transcript_id)

    async def _curator_step(self, transcript_id: str) -> None:
        state = self._load(transcript_id)
        t = db.transcript(self.store, transcript_id)
        if t.status == "fixing":
            found = db.latest_assessment(self.store, transcript_id)
            gates = set(self.pack.rubric.safety_gates)
            failed = {}
            if found:
                assessment, rows = found
                for cid in assessment.failed_checks:
                    if cid in gates:
                        continue
                    why = [r.reasoning for r in rows if r.criterion == cid and r.judge != "combined"
                           and r.answer != "YES"]
                    failed[cid] = "\n".join(why)
            status = await self.curator.rubric_stage(transcript_id, state.turns, failed)
        else:
            status = await self.curator.artifact_stage(transcript_id, state.turns)
        if status == "assessing":
            self._move(transcript_id, "assessing", "assessor")
        elif status == "review":
            self._move(transcript_id, "review", None)
        else:
            self.bus.publish("TranscriptFinished", self.run_id, transcript_id, status=status)
            self._finish(transcript_id)

    async def _assessor_step(self, transcript_id: str) -> None:
        turns = self._load(transcript_id).turns
        t = db.transcript(self.store, transcript_id)
        after_fixup = bool(t.meta.get("rubric_fixups"))
        self.stats["assessor"].calls += 1
        outcome = await assess(self.router, self.pack, turns, seed=0)
        result = outcome.result
        rows = [(a.criterion, a.answer, a.reasoning, a.judge) for a in outcome.judge_answers]
        if len({a.judge for a in outcome.judge_answers}) > 1:
            rows += [(cid, ans, f"strictest of the judges; decided by {outcome.decided_by[cid]}", "combined")
                     for cid, ans in outcome.answers.items()]
        if result.passed:
            status = "passed"
        elif result.safety_gate_failed or after_fixup or self.settings.evaluation:
            status = "rejected"
        else:
            status = "fixing"
        db.save_assessment(self.store, self.run_id, transcript_id, stage="after_fixup" if after_fixup else "initial",
                           exchange_count=outcome.exchange_count, rubric_version=self.pack.rubric.version,
                           result={**result.as_dict(), "windows": outcome.windows}, answers=rows, status=status)
        self.stats["assessor"].prompt_tokens += outcome.prompt_tokens
        self.bus.publish("AssessmentDone", self.run_id, transcript_id, score=result.score, passed=result.passed,
                         failed_checks=result.failed_checks, windows=outcome.windows)
        if status == "rejected" and not self.settings.evaluation:
            db.record_rejection(
                self.store, self.run_id, transcript_id, stage="assessment",
                action="rejected", reason_kind="safety_gate" if result.safety_gate_failed else "criterion",
                reason=",".join(result.failed_safety if result.safety_gate_failed else result.failed_checks),
                detail=f"score {result.score:.3f} (threshold {self.pack.rubric.pass_threshold:.2f})"
                + (" after fixups" if after_fixup else ""),
            )
        if status == "fixing":
            db.set_status(self.store, self.run_id, transcript_id, "fixing", rubric_fixups=True)
            self._send("curator", transcript_id)
            return
        self.bus.publish("TranscriptFinished", self.run_id, transcript_id, status=status)
        self._finish(transcript_id)

    def _summary(self, run_id: str, elapsed: float) -> RunSummary:
        rows = [t for t in db.run_transcripts(self.store, run_id) if self._only is None or self._only(t)]
        counts: dict[str, int] = {}
        for t in rows:
            counts[t.status] = counts.get(t.status, 0) + 1
        assessed = counts.get("passed", 0) + counts.get("rejected", 0)  # decided by the pipeline
        return RunSummary(
            run_id=run_id,
            counts=counts,
            failed={t.id: t.meta.get("error", "") for t in rows if t.status == "failed"},
            pass_rate=(counts.get("passed", 0) / assessed) if assessed else None,
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


def _seed_for(transcript_id: str, number: int, who: str) -> int:
    """A per-call sampling seed derived from ids, so a resumed call samples like the original."""
    return zlib.crc32(f"{transcript_id}:{number}:{who}".encode()) & 0x7FFFFFFF
