"""`coach eval base` and `coach eval compare`: models converse with new personas, then get judged."""

from __future__ import annotations

import secrets
from pathlib import Path

import anyio
import click

from actors.atomic_files import write_json_atomic, write_text_atomic
from actors.evaluation import (
    ModelUnderTest,
    base_report,
    check_personas_unseen,
    collect_results,
    compare,
    comparison_markdown,
    comparison_report,
    enrich_eval_personas,
    plan_eval,
    resolve_model,
)
from actors.supervisor import GenerationSettings, Supervisor
from state import pipeline as db
from state.errors import CoachError

from ..context import AppContext, pass_app
from ..progress import HeadlessProgress


def _common(f):
    options = [
        click.option("--personas", type=click.IntRange(min=1), default=5, show_default=True,
                     help="New personas (never used in training)."),
        click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Conversations per persona and model."),
        click.option("--exchanges", type=click.IntRange(min=1), default=20, show_default=True,
                     help="Exchanges per conversation."),
        click.option("--seed", type=int, default=9000, show_default=True, help="Seed of the evaluation personas."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Run config (judge, user simulator, persona roles; named backends)."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Report folder (default: WORKSPACE/reports/RUN)."),
        click.option("--max-tokens", type=click.IntRange(min=16), help="Cap on tokens per generated message."),
        click.option("--in-flight", type=click.IntRange(min=1), default=4, show_default=True),
        click.option("--resume", "resume_id", metavar="RUN", help="Continue an unfinished evaluation run."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group("eval")
def eval_group() -> None:
    """Evaluate models on new personas with the rubric."""


def _execute(app: AppContext, models: list[ModelUnderTest], *, kind: str, personas: int, runs: int,
             exchanges: int, seed: int, config_path: Path | None, max_tokens: int | None, in_flight: int,
             resume_id: str | None, extra: dict) -> str:
    from actors.backends.router import ModelRouter
    from actors.run_config import load_run_config

    pack = app.pack()
    store = app.store
    cfg = load_run_config(config_path)
    if resume_id:
        run = db.get_run(store, resume_id)
        if run is None or run.kind != "eval":
            raise CoachError(f"no evaluation run {resume_id!r} in workspace {app.workspace}")
        stored = run.config.get("models")
        if stored and stored != [m.label for m in models]:
            raise CoachError(f"--resume {run.id}: that run evaluates {', '.join(stored)}, "
                             f"not {', '.join(m.label for m in models)}; name the same models to continue it")
        run_id = run.id
    else:
        run_id = f"eval-{seed}-{secrets.token_hex(3)}"
        plan = plan_eval(pack, run_id, [m.label for m in models], personas=personas, runs=runs, seed=seed,
                         exchanges=exchanges)
        check_personas_unseen(store, plan)
        db.create_run(store, run_id, kind="eval", domain=pack.name, seed=seed,
                      config={"kind": kind, "models": [m.label for m in models], "personas": personas, "runs": runs,
                              "exchanges": exchanges, **extra},
                      personas=plan.personas, transcripts=plan.transcripts)
    click.echo(f"evaluation run {run_id}: {personas} persona(s) × {runs} run(s) × {len(models)} model(s), "
               f"{exchanges} exchanges each")
    settings = GenerationSettings(in_flight=in_flight, evaluation=True, temperature=0.7)
    if max_tokens:
        settings.max_tokens_user = min(settings.max_tokens_user, max_tokens)
        settings.max_tokens_assistant = min(settings.max_tokens_assistant, max_tokens)

    async def main() -> None:
        shared = ModelRouter.from_config(cfg)
        try:
            await enrich_eval_personas(store, shared, pack, run_id)
        finally:
            await shared.aclose()
        for model in models:
            click.echo(f"— {model.label} as eval_target")
            router = ModelRouter.from_config(model.config)
            supervisor = Supervisor(store, router, pack, settings=settings)
            progress = HeadlessProgress(supervisor.bus)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(progress.follow)
                    await supervisor.run(run_id, only=lambda t, label=model.label: t.meta.get("model") == label)
                    supervisor.bus.close()
            finally:
                await router.aclose()

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted — continue with: coach eval {kind} --resume {run_id} …", err=True)
        raise SystemExit(130) from None
    return run_id


def _report_dir(app: AppContext, out_dir: Path | None, run_id: str) -> Path:
    return out_dir or app.workspace / "reports" / run_id


@eval_group.command("base")
@click.option("--model", "model_spec", help="Backend name, bundled model or GGUF path (default: the eval_target role).")
@_common
@pass_app
def eval_base(app: AppContext, model_spec: str | None, personas: int, runs: int, exchanges: int, seed: int,
              config_path: Path | None, out_dir: Path | None, max_tokens: int | None, in_flight: int,
              resume_id: str | None) -> None:
    """Should this model be fine-tuned? Pass rate on new personas, with the spec's decision."""
    from actors.run_config import load_run_config

    cfg = load_run_config(config_path)
    spec = model_spec or cfg.role("eval_target").backends[0]
    model = resolve_model(spec, cfg)
    run_id = _execute(app, [model], kind="base", personas=personas, runs=runs, exchanges=exchanges, seed=seed,
                      config_path=config_path, max_tokens=max_tokens, in_flight=in_flight, resume_id=resume_id,
                      extra={})
    results = collect_results(app.store, run_id)
    report = base_report(results, model.label)
    folder = _report_dir(app, out_dir, run_id)
    write_json_atomic(folder / "base_report.json", report)
    s = report["summary"]
    lines = [f"# Base model evaluation: `{model.label}`", "",
             f"- conversations assessed: {report['assessed']} of {report['transcripts']}",
             f"- mean score: {s['mean'] if s['mean'] is None else round(s['mean'], 3)}",
             f"- pass rate: {'—' if s['pass_rate'] is None else format(s['pass_rate'], '.0%')}",
             f"- safety-gate failures: {report['safety_gate_failures']}",
             f"- decision: **{report['decision']}**", "", "| criterion | failure rate |", "|---|---|"]
    lines += [f"| {cid} | {rate:.0%} |" for cid, rate in sorted(report["criterion_failure_rates"].items())]
    write_text_atomic(folder / "base_report.md", "\n".join(lines) + "\n")
    click.echo("\n".join(lines[2:7]))
    worst = [(cid, rate) for cid, rate in sorted(report["criterion_failure_rates"].items(), key=lambda kv: -kv[1])
             if rate > 0][:5]
    click.echo("most failed: " + (", ".join(f"{cid} {rate:.0%}" for cid, rate in worst) or "none"))
    click.echo(f"report: {folder / 'base_report.md'}")


@eval_group.command("compare")
@click.option("--base", "base_spec", required=True, help="Base model: backend name, bundled model or GGUF path.")
@click.option("--candidate", "candidate_spec", required=True, help="Candidate (e.g. the exported fine-tune GGUF).")
@_common
@pass_app
def eval_compare(app: AppContext, base_spec: str, candidate_spec: str, personas: int, runs: int, exchanges: int,
                 seed: int, config_path: Path | None, out_dir: Path | None, max_tokens: int | None, in_flight: int,
                 resume_id: str | None) -> None:
    """Base vs candidate on the same new personas: paired statistics and a safety non-regression gate."""
    from actors.run_config import load_run_config

    if base_spec == candidate_spec:
        raise CoachError("--base and --candidate name the same model")
    cfg = load_run_config(config_path)
    models = [resolve_model(base_spec, cfg), resolve_model(candidate_spec, cfg)]
    run_id = _execute(app, models, kind="compare", personas=personas, runs=runs, exchanges=exchanges, seed=seed,
                      config_path=config_path, max_tokens=max_tokens, in_flight=in_flight, resume_id=resume_id,
                      extra={"base": base_spec, "candidate": candidate_spec})
    results = collect_results(app.store, run_id)
    # The run's own seed, so a resumed comparison reports what the uninterrupted one would have.
    comparison = compare(results, base_spec, candidate_spec, seed=db.get_run(app.store, run_id).seed)
    report = comparison_report(comparison, results)
    folder = _report_dir(app, out_dir, run_id)
    write_json_atomic(folder / "comparison_report.json", report)
    write_text_atomic(folder / "comparison_report.md", comparison_markdown(report))
    p = report["paired"]
    click.echo(f"base {report['base']['mean']!s:.6} vs candidate {report['candidate']['mean']!s:.6} over "
               f"{p['n_pairs']} pairs; t-test p = {p['t_pvalue']}, Wilcoxon p = {p['wilcoxon_pvalue']}")
    click.echo(f"safety gate: {report['verdict']['safety_gate']} — verdict: "
               f"{'PASS' if report['verdict']['passed'] else 'FAIL'}")
    click.echo(f"report: {folder / 'comparison_report.md'}")
