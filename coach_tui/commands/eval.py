"""`coach eval base` and `coach eval compare`: models converse with new personas, then get judged."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import anyio
import click

from actors.run_config import load_run_config
from actors.usecases.evaluations import (
    EvalOutcome,
    EvalRequest,
    EvaluationOpened,
    ModelTurn,
    base_summary_lines,
    evaluate,
    most_failed,
    trust_lines,
)

from ..context import AppContext, pass_app
from ..json_output import echo_json
from ..progress import HeadlessProgress, ProgressOutput


def _common(f):
    options = [
        click.option(
            "--personas",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            help="New personas (never used in training).",
        ),
        click.option(
            "--runs",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Conversations per persona and model.",
        ),
        click.option(
            "--exchanges", type=click.IntRange(min=1), default=20, show_default=True, help="Exchanges per conversation."
        ),
        click.option("--seed", type=int, default=9000, show_default=True, help="Seed of the evaluation personas."),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Run config (judge, user simulator, persona roles; named backends).",
        ),
        click.option(
            "--out",
            "out_dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Report folder (default: WORKSPACE/reports/RUN).",
        ),
        click.option("--max-tokens", type=click.IntRange(min=16), help="Cap on tokens per generated message."),
        click.option("--in-flight", type=click.IntRange(min=1), default=4, show_default=True),
        click.option("--resume", "resume_id", metavar="RUN", help="Continue an unfinished evaluation run."),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print the result (run, models, report and its files) as one JSON document on stdout; "
            "progress goes to stderr.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group("eval")
def eval_group() -> None:
    """Evaluate models on new personas with the rubric."""


def _execute(app: AppContext, request: EvalRequest, *, as_json: bool = False) -> EvalOutcome:
    """Run the evaluation with one progress line per step (bars on a terminal); Ctrl-C says how to resume.

    With `as_json` the progress goes to stderr, leaving stdout to the JSON.
    """
    load_run_config(request.config_path)  # a missing or broken config is told before the workspace is opened
    store, pack = app.store, app.pack()
    opened: list[EvaluationOpened] = []
    output = ProgressOutput(err=as_json)
    progress = HeadlessProgress(output=output)

    def on_event(event) -> None:
        nonlocal progress
        if isinstance(event, EvaluationOpened):
            opened.append(event)
            output.line(
                f"evaluation run {event.run_id}: {event.personas} persona(s) × {event.runs} run(s) × "
                f"{len(event.models)} model(s), {event.exchanges} exchanges each"
            )
        elif isinstance(event, ModelTurn):
            output.line(f"— {event.label} as eval_target")
            progress = HeadlessProgress(output=output, label=event.label)
        else:
            progress.render(event)

    try:
        with output:
            return anyio.run(partial(evaluate, store, pack, app.workspace, request, on_event))
    except KeyboardInterrupt:
        if not opened:
            raise
        click.echo(f"\ninterrupted — continue with: coach eval {request.kind} --resume {opened[0].run_id} …", err=True)
        raise SystemExit(130) from None


def outcome_json(outcome: EvalOutcome) -> dict:
    """`--json`: the run, its models, the whole report (as written to report_json) and where its files are."""
    return {
        "run_id": outcome.run_id,
        "kind": outcome.kind,
        "models": list(outcome.models),
        "report": outcome.report,
        "report_json": outcome.report_json,
        "report_md": outcome.report_md,
    }


@eval_group.command("base")
@click.option("--model", "model_spec", help="Backend name, bundled model or GGUF path (default: the eval_target role).")
@_common
@pass_app
def eval_base(
    app: AppContext,
    model_spec: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Should this model be fine-tuned? Pass rate on new personas, with the spec's decision."""
    outcome = _execute(app, EvalRequest(kind="base", models=(model_spec,), **options), as_json=as_json)
    if as_json:
        echo_json(outcome_json(outcome))
        return
    click.echo("\n".join(base_summary_lines(outcome.report)))
    worst = most_failed(outcome.report)
    click.echo("most failed: " + (", ".join(f"{cid} {rate:.0%}" for cid, rate in worst) or "none"))
    click.echo(f"report: {outcome.report_md}")


@eval_group.command("compare")
@click.option("--base", "base_spec", required=True, help="Base model: backend name, bundled model or GGUF path.")
@click.option("--candidate", "candidate_spec", required=True, help="Candidate (e.g. the exported fine-tune GGUF).")
@_common
@pass_app
def eval_compare(
    app: AppContext,
    base_spec: str,
    candidate_spec: str,
    as_json: bool,
    **options: Any,
) -> None:
    """Base vs candidate on the same new personas: paired statistics and a safety non-regression gate.

    The unit of analysis is the persona: with --runs above 1, each persona's
    score per model is the mean of its runs, and the t-test, Wilcoxon, d_z
    and the (cluster) bootstrap CI are over those persona means. Run-level
    figures are shown only as a secondary, since runs of one persona are not
    independent.

    \b
    Exit status, so the command can gate a pipeline:
      0  PASS: improvement of at least 10 % with paired t-test p < 0.05 over
         personas, and no safety-gate failure the base did not have
      1  FAIL: a safety-gate regression, or no significant improvement of
         10 %; or INCONCLUSIVE: no test was possible (fewer than two
         personas assessed for both models, or every persona differed alike)
    """
    outcome = _execute(app, EvalRequest(kind="compare", models=(base_spec, candidate_spec), **options), as_json=as_json)
    report = outcome.report
    p, verdict = report["paired"], report["verdict"]
    if as_json:  # the exit status still follows the verdict, so a pipeline can gate on either
        echo_json(outcome_json(outcome))
        if verdict["outcome"] != "PASS":
            raise SystemExit(1)
        return
    click.echo(
        f"base {report['base']['mean']!s:.6} vs candidate {report['candidate']['mean']!s:.6} over "
        f"{p['n_pairs']} persona(s) ({p['n_run_pairs']} run pairs); "
        f"t-test p = {p['t_pvalue']}, Wilcoxon p = {p['wilcoxon_pvalue']}"
    )
    run = report.get("run_level")
    if run:
        click.echo(
            f"run level (secondary, runs of one persona are not independent): {run['n_pairs']} run pairs, "
            f"t-test p = {run['t_pvalue']}"
        )
    click.echo(f"safety gate: {verdict['safety_gate']} — verdict: {verdict['outcome']} ({verdict['reason']})")
    for line in trust_lines(report.get("judge_trust")):
        click.echo(line)
    click.echo(f"report: {outcome.report_md}")
    if verdict["outcome"] != "PASS":
        raise SystemExit(1)
