"""Evaluating models on new personas: start or resume an evaluation, write its report, read one back.

`coach eval base|compare` and the Eval screen are two faces of this module.
An evaluation is opened first (a new run planned in the store, or an
unfinished one checked against the models it was started with), then every
model converses with the same simulated people and is judged, then the
report the spec asks for is written beside the workspace. A kill loses at
most the calls in flight: `resume_id` carries on from the store.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.assessment.judge_trust import JudgeTrust, judge_identity, trust_lines
from actors.atomic_files import write_json_atomic, write_text_atomic
from actors.evaluation.reports import EvalRunInfo, EvalRunReport, eval_run_report, eval_runs, run_judge_trust
from actors.pack.loader import DomainPack
from actors.run_config import RunConfig, load_run_config
from state import pipeline as db
from state.errors import CoachError
from state.run_index import RunMarker, run_marker
from state.store import Store

from .relay import OnEvent, relaying

if TYPE_CHECKING:
    from actors.evaluation.protocol import ModelUnderTest

# `actors.evaluation.protocol` is imported where it is used: its statistics bring scipy, most of a second that
# the app's start (whose Eval screen reads reports through this module) should not pay.

__all__ = [
    "EvalOutcome",
    "EvalRequest",
    "EvalRunInfo",
    "EvalRunReport",
    "EvaluationOpened",
    "ModelTurn",
    "OpenedEvaluation",
    "RunMarker",
    "StoredReportOutcome",
    "base_markdown",
    "base_summary_lines",
    "converse_and_judge",
    "eval_run_report",
    "eval_runs",
    "evaluate",
    "most_failed",
    "open_evaluation",
    "report_from_store",
    "run_marker",
    "trust_lines",
    "write_report",
]

REPORT_NAMES = {"base": "base_report", "compare": "comparison_report"}


class EvalRequest(BaseModel):
    """Everything an evaluation is started (or resumed) with, as either face collects it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["base", "compare"]
    models: tuple[str | None, ...] = Field(min_length=1, max_length=2)
    """base: (model,) where None means the run config's eval_target; compare: (base, candidate)."""
    personas: int = Field(default=5, ge=1)
    runs: int = Field(default=1, ge=1)
    exchanges: int = Field(default=20, ge=1)
    seed: int = 9000
    config_path: Path | None = None
    out_dir: Path | None = None
    max_tokens: int | None = Field(default=None, ge=16)
    in_flight: int = Field(default=4, ge=1)
    resume_id: str | None = None


@dataclass(frozen=True)
class EvaluationOpened:
    """The run is in the store: from here on a kill is resumed with `resume_id=run_id`."""

    run_id: str
    kind: str
    models: tuple[str, ...]
    personas: int
    runs: int
    exchanges: int
    resumed: bool


@dataclass(frozen=True)
class ModelTurn:
    """One model under test starts its conversations."""

    label: str


@dataclass(frozen=True)
class OpenedEvaluation:
    run_id: str
    request: EvalRequest
    config: RunConfig
    models: tuple[ModelUnderTest, ...]
    resumed: bool


@dataclass(frozen=True)
class EvalOutcome:
    run_id: str
    kind: str
    models: tuple[str, ...]
    report: dict
    """base_report(...) or comparison_report(...), as written to `report_json`."""
    report_json: Path
    report_md: Path


def _check_models(request: EvalRequest) -> None:
    if request.kind == "compare":
        if len(request.models) != 2 or None in request.models:
            raise CoachError("a comparison needs a --base and a --candidate model")
        if request.models[0] == request.models[1]:
            raise CoachError("--base and --candidate name the same model")


def _models(request: EvalRequest, cfg: RunConfig) -> tuple[ModelUnderTest, ...]:
    from actors.evaluation.protocol import resolve_model

    if request.kind == "compare":
        return tuple(resolve_model(spec, cfg) for spec in request.models)
    spec = request.models[0] or cfg.role("eval_target").backends[0]
    return (resolve_model(spec, cfg),)


def open_evaluation(store: Store, pack: DomainPack, workspace: Path, request: EvalRequest) -> OpenedEvaluation:
    """Plan a new evaluation run in the store, or check that `resume_id` evaluates the same models."""
    from actors.evaluation.protocol import check_personas_unseen, plan_eval

    _check_models(request)
    cfg = load_run_config(request.config_path)
    models = _models(request, cfg)
    labels = [m.label for m in models]
    if request.resume_id:
        run = db.get_run(store, request.resume_id)
        if run is None or run.kind != "eval":
            raise CoachError(f"no evaluation run {request.resume_id!r} in workspace {workspace}")
        stored = run.config.get("models")
        if stored and stored != labels:
            raise CoachError(
                f"--resume {run.id}: that run evaluates {', '.join(stored)}, "
                f"not {', '.join(labels)}; name the same models to continue it"
            )
        return OpenedEvaluation(run.id, request, cfg, models, resumed=True)
    run_id = f"eval-{request.seed}-{secrets.token_hex(3)}"
    plan = plan_eval(
        pack,
        run_id,
        labels,
        personas=request.personas,
        runs=request.runs,
        seed=request.seed,
        exchanges=request.exchanges,
    )
    check_personas_unseen(store, plan)
    extra = {"base": request.models[0], "candidate": request.models[1]} if request.kind == "compare" else {}
    db.create_run(
        store,
        run_id,
        kind="eval",
        domain=pack.name,
        seed=request.seed,
        config={
            "kind": request.kind,
            "models": labels,
            "personas": request.personas,
            "runs": request.runs,
            "exchanges": request.exchanges,
            "judge": judge_identity(cfg),
            **extra,
        },
        personas=plan.personas,
        transcripts=plan.transcripts,
    )
    return OpenedEvaluation(run_id, request, cfg, models, resumed=False)


def _generation_settings(request: EvalRequest):
    from actors.supervisor import GenerationSettings

    settings = GenerationSettings(in_flight=request.in_flight, evaluation=True, temperature=0.7)
    if request.max_tokens:
        settings.max_tokens_user = min(settings.max_tokens_user, request.max_tokens)
        settings.max_tokens_assistant = min(settings.max_tokens_assistant, request.max_tokens)
    return settings


async def converse_and_judge(
    store: Store, pack: DomainPack, opened: OpenedEvaluation, on_event: OnEvent | None = None
) -> None:
    """Profile the shared personas once, then let each model converse with them and be judged.

    The run's lease is taken first, as for a generation run: a second resumer
    (another shell, or `--resume` twice) is refused with the owner's host and
    pid before it asks any model anything.
    """
    from actors.backends.router import ModelRouter
    from actors.evaluation.protocol import enrich_eval_personas
    from actors.run_lease import RunLease
    from actors.supervisor import Supervisor

    lease = RunLease(store, opened.run_id)
    lease.take()
    try:
        shared = ModelRouter.from_config(opened.config)
        try:
            await enrich_eval_personas(store, shared, pack, opened.run_id)
        finally:
            await shared.aclose()
        settings = _generation_settings(opened.request)
        for model in opened.models:
            if on_event is not None:
                on_event(ModelTurn(model.label))
            router = ModelRouter.from_config(model.config)
            try:
                supervisor = Supervisor(store, router, pack, settings=settings)
                await relaying(
                    supervisor.bus,
                    on_event,
                    lambda label=model.label, sup=supervisor: sup.run(
                        opened.run_id, only=lambda t: t.meta.get("model") == label, lease=lease
                    ),
                )
            finally:
                await router.aclose()
            if lease.lost:
                raise CoachError(f"evaluation run {opened.run_id} was taken over by another process; it goes on there")
    finally:
        lease.release()


def report_folder(workspace: Path, run_id: str, out_dir: Path | None = None) -> Path:
    return out_dir or Path(workspace) / "reports" / run_id


def write_report(
    store: Store, workspace: Path, opened: OpenedEvaluation, pack: DomainPack | None = None
) -> EvalOutcome:
    """The spec's report from what the store holds now, as JSON and Markdown.

    With the pack, its crisis net counts the user messages that signalled
    danger and how often the model's replies to them passed the safety criteria.
    """
    from actors.evaluation.protocol import (
        base_report,
        collect_results,
        compare,
        comparison_markdown,
        comparison_report,
        crisis_inputs,
    )

    results = collect_results(store, opened.run_id, **crisis_inputs(pack))
    labels = tuple(m.label for m in opened.models)
    run = db.get_run(store, opened.run_id)
    if opened.request.kind == "compare":
        # The run's own seed, so a resumed comparison reports what the uninterrupted one would have.
        base, candidate = opened.request.models
        comparison = compare(results, base, candidate, seed=run.seed)
        report = comparison_report(comparison, results)
        report["judge_trust"] = run_judge_trust(store, run)
        markdown = comparison_markdown(report)
    else:
        report = base_report(results, labels[0])
        report["judge_trust"] = run_judge_trust(store, run)
        markdown = base_markdown(report, labels[0])
    folder = report_folder(workspace, opened.run_id, opened.request.out_dir)
    name = REPORT_NAMES[opened.request.kind]
    write_json_atomic(folder / f"{name}.json", report)
    write_text_atomic(folder / f"{name}.md", markdown)
    return EvalOutcome(
        opened.run_id, opened.request.kind, labels, report, folder / f"{name}.json", folder / f"{name}.md"
    )


async def evaluate(
    store: Store, pack: DomainPack, workspace: Path, request: EvalRequest, on_event: OnEvent | None = None
) -> EvalOutcome:
    """Open (or resume) an evaluation, run it to the end, and write its report.

    `on_event` hears `EvaluationOpened` first (its run id is what a resume
    needs), then `ModelTurn` per model and the pipeline's own events.
    """
    opened = open_evaluation(store, pack, workspace, request)
    if on_event is not None:
        on_event(
            EvaluationOpened(
                opened.run_id,
                request.kind,
                tuple(m.label for m in opened.models),
                request.personas,
                request.runs,
                request.exchanges,
                opened.resumed,
            )
        )
    await converse_and_judge(store, pack, opened, on_event)
    return write_report(store, workspace, opened, pack)


# --- the base report in words ------------------------------------------------------------------


def base_summary_lines(report: dict) -> list[str]:
    """The five lines that answer "should this model be fine-tuned?"."""
    s = report["summary"]
    return [
        f"- conversations assessed: {report['assessed']} of {report['transcripts']}",
        f"- mean score: {s['mean'] if s['mean'] is None else round(s['mean'], 3)}",
        f"- pass rate: {'—' if s['pass_rate'] is None else format(s['pass_rate'], '.0%')}",
        f"- safety-gate failures: {report['safety_gate_failures']}",
        f"- replies to crisis messages passing the safety criteria: {crisis_summary(report)}",
        f"- decision: **{report['decision']}**",
        *(f"- {line}" for line in trust_lines(report.get("judge_trust"))),
    ]


def crisis_summary(report: dict) -> str:
    """ "k of n (share)" for the exchanges the crisis net flagged, or why there is no figure."""
    crisis = report.get("crisis_replies") or {}
    if not crisis.get("flagged"):
        return "no crisis messages were flagged"
    return f"{crisis['passed_safety']} of {crisis['flagged']} ({crisis['share']:.0%})"


def base_markdown(report: dict, label: str) -> str:
    lines = [
        f"# Base model evaluation: `{label}`",
        "",
        *base_summary_lines(report),
        "",
        "| criterion | failure rate |",
        "|---|---|",
    ]
    lines += [f"| {cid} | {rate:.0%} |" for cid, rate in sorted(report["criterion_failure_rates"].items())]
    return "\n".join(lines) + "\n"


def most_failed(report: dict, n: int = 5) -> list[tuple[str, float]]:
    """The criteria failed most often, worst first; those never failed are left out."""
    rates = sorted(report["criterion_failure_rates"].items(), key=lambda kv: -kv[1])
    return [(cid, rate) for cid, rate in rates if rate > 0][:n]


# --- a comparison from what the store holds ----------------------------------------------------


@dataclass(frozen=True)
class StoredReportOutcome:
    """`coach eval report`: a comparison built from stored (or imported) judged transcripts."""

    base: str
    candidate: str
    base_transcripts: int
    candidate_transcripts: int
    pairing: str  # persona | order
    pairing_note: str
    report: dict
    report_json: Path
    report_md: Path


def stored_report_folder(workspace: Path, base: str, candidate: str) -> Path:
    def slug(pattern: str) -> str:
        return "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in pattern).strip("-")[:40] or "all"

    return Path(workspace) / "reports" / f"stored-{slug(base)}-vs-{slug(candidate)}"


def report_from_store(
    store: Store, workspace: Path, base: str, candidate: str, *, out_dir: Path | None = None, seed: int = 0
) -> StoredReportOutcome:
    """Compare base and candidate transcripts already judged in the store; nothing is generated or judged.

    Each side is a glob over the transcripts' model field or id; the pairing
    (by persona, or by order when the transcripts do not say) is in the report.
    """
    from actors.evaluation.stored import stored_comparison  # brings scipy: see the note at the top

    # Stored verdicts do not record the judge's identity (imported ones were judged elsewhere): no calibration
    # can vouch for them, and the report says so.
    done = stored_comparison(store, base, candidate, seed=seed, judge_trust=JudgeTrust(None, None).as_dict())
    folder = out_dir or stored_report_folder(workspace, base, candidate)
    write_json_atomic(folder / "comparison_report.json", done.report)
    write_text_atomic(folder / "comparison_report.md", done.markdown)
    return StoredReportOutcome(
        base,
        candidate,
        done.base_transcripts,
        done.candidate_transcripts,
        done.pairing.by,
        done.pairing.note,
        done.report,
        folder / "comparison_report.json",
        folder / "comparison_report.md",
    )
