"""`coach run`: generate and assess transcripts headless, with a progress view.

This face only parses options into a `RunSettings`, hands it to the run use
cases (`actors.usecases.runs`), and prints the progress and the summary.
The exit status says how it went: 0 when every transcript finished, 1 when
any failed (or the run could not go on), 128 + the signal when Ctrl-C or
SIGTERM stopped it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import click

from actors.generation.run_plan import DEFAULT_LENGTHS, DEFAULT_MIX
from actors.run_config import load_run_config
from actors.supervisor import RunSummary
from actors.usecases import runs
from actors.usecases.calibrations import judge_trust_for, trust_lines
from actors.usecases.run_numbers import (
    MAX_EXCHANGES,
    RunNumberError,
    lengths_problem,
    mix_problem,
    parse_lengths,
    parse_mix,
)
from actors.usecases.run_settings import RunSettings
from state.status import TranscriptStatus

from ..context import AppContext, creates_workspace, pass_app
from ..progress import HeadlessProgress, ProgressOutput

PILOT_TRANSCRIPTS = 3


def _pairs(values: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


def _parsed(parse):
    """A click callback: the option's text through `parse`, its mistakes as click's own (exit 2, option named)."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None):
        try:
            return parse(value)
        except RunNumberError as err:
            raise click.BadParameter(str(err), ctx=ctx, param=param) from None

    return callback


def check_lengths_and_mix(ctx: click.Context, lengths: dict[str, int], mix: dict[str, float]) -> None:
    """What neither option shows alone: a class with a length no mix plans, or a share with no length."""
    for problem, option in ((mix_problem(mix, lengths), "mix"), (lengths_problem(lengths, mix), "lengths")):
        if problem:
            param = next(p for p in ctx.command.params if p.name == option)
            raise click.BadParameter(problem, ctx=ctx, param=param)


def pilot_decision(pass_rate: float) -> str:
    """The spec's pilot rule."""
    if pass_rate >= 0.5:
        return "proceed to scale (pass rate ≥ 50 %)"
    if pass_rate >= 0.3:
        return "iterate on the prompts and re-run the pilot (30–50 %)"
    return "fundamental issue: revisit the flaw taxonomy or the rubric (< 30 %)"


@creates_workspace
@click.command("run")
@click.option("--transcripts", "-n", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seed", type=int, help="Seed for personas and lengths (default: random, recorded in the run).")
@click.option(
    "--lengths",
    metavar="CLASS=N,…",
    callback=_parsed(parse_lengths),
    help=f"Exchanges per length class, 1 to {MAX_EXCHANGES} (default {_pairs(DEFAULT_LENGTHS)}).",
)
@click.option(
    "--mix",
    metavar="CLASS=W,…",
    callback=_parsed(parse_mix),
    help=f"Share of each length class (default {_pairs(DEFAULT_MIX)}).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run config (YAML): backends and roles. Default: every role on the embedded model.",
)
@click.option("--resume", "resume_id", metavar="RUN", help="Continue an unfinished run ('latest' for the newest).")
@click.option(
    "--pilot", is_flag=True, help=f"Generate and assess {PILOT_TRANSCRIPTS} transcripts and print the decision."
)
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Transcripts worked on at once (per actor).",
)
@click.option("--max-tokens", type=click.IntRange(min=16), help="Cap on tokens per generated message.")
@click.option(
    "--review",
    "review_mode",
    is_flag=True,
    help="Hold every fixup for a person to decide (coach review) instead of applying it automatically.",
)
@click.option(
    "--min-exchanges",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Fewest exchanges a truncated transcript may keep.",
)
@click.pass_context
@pass_app
def run_cmd(
    app: AppContext,
    ctx: click.Context,
    transcripts: int,
    seed: int | None,
    lengths: dict[str, int],
    mix: dict[str, float],
    config_path: Path | None,
    resume_id: str | None,
    pilot: bool,
    in_flight: int,
    max_tokens: int | None,
    review_mode: bool,
    min_exchanges: int,
) -> None:
    """Generate persona-driven conversations and assess them with the rubric.

    Every step is committed as it happens: a killed or stopped run continues
    with `coach run --resume RUN` (or `--resume latest`), with the settings it
    was started with — from here or from the app.
    """
    check_lengths_and_mix(ctx, lengths, mix)
    if config_path is not None:
        load_run_config(config_path)  # a missing or broken config is told before the workspace is touched
    pack = app.pack()
    store = app.store

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)

    if resume_id:
        run_id, settings = runs.settings_for_resume(
            store, pack, resume_id, in_flight=in_flight if given("in_flight") else None, run_config=config_path
        )
        asked = {
            "transcripts": transcripts,
            "seed": seed,
            "lengths": {**DEFAULT_LENGTHS, **lengths},
            "mix": mix or None,
            "review_mode": "review" if review_mode else "auto",
            "min_exchanges": min_exchanges,
            "max_tokens": max_tokens,
            "pilot": pilot,
        }
        # What defines the run is stored with it: a resume may not change it (only its pace and backends).
        runs.check_unchanged(settings, {k: v for k, v in asked.items() if given(k)})
        click.echo(f"resuming run {run_id} ({_describe(settings)})")
    else:
        settings = RunSettings(
            transcripts=PILOT_TRANSCRIPTS if pilot else transcripts,
            seed=seed,
            lengths={**DEFAULT_LENGTHS, **lengths},
            mix=mix or None,
            review_mode="review" if review_mode else "auto",
            min_exchanges=min_exchanges,
            max_tokens=max_tokens,
            in_flight=in_flight,
            run_config=str(config_path.expanduser().resolve()) if config_path else None,
            pilot=pilot,
        )
        run_id, settings = runs.plan_new_run(store, pack, settings, source="cli")
        click.echo(
            f"run {run_id}: {settings.transcripts} transcripts, seed {settings.seed}, "
            f"workspace {app.workspace} ({_describe(settings)})"
        )

    session = runs.RunSession(store, pack, run_id, settings)
    session.check_owner()  # before any model loads: a second resumer is told who owns the run
    summary, signum = _run_with_progress(
        session,
        lambda signal_name: f"\nstopping run {run_id} ({signal_name}): the calls in flight end, nothing is lost",
    )
    _print_summary(summary, settings.pilot, trust_lines(judge_trust_for(store, pack, settings.run_config).as_dict()))
    if summary.status == "stopped":
        click.echo(f"continue with: coach run --resume {run_id}", err=True)
    ctx.exit(runs.exit_status(summary, signum))


def _run_with_progress(session, stop_message: Callable[[str], str]) -> tuple[RunSummary, int | None]:
    """Work `session` until it ends or a signal stops it, drawing its progress; `coach run` and `coach worker` share it.

    `stop_message(signal name)` is what stderr says when Ctrl-C or SIGTERM arrives. A failure inside the
    task group is raised as itself, not wrapped in the group's `BaseExceptionGroup`.
    """
    output = ProgressOutput()
    progress = HeadlessProgress(session.bus, output=output)

    def on_signal(signum: int) -> None:
        click.echo(stop_message(_signal_name(signum)), err=True)

    async def main() -> tuple[RunSummary, int | None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(progress.follow)
            try:
                return await runs.run_until_signalled(session, on_signal=on_signal)
            finally:
                session.bus.close()

    try:
        with output:
            return anyio.run(main)
    except BaseExceptionGroup as group:  # the task groups wrap what went wrong; show that, not the wrapper
        cause: BaseException = group
        while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
            cause = cause.exceptions[0]
        raise cause from None


def _describe(settings: RunSettings) -> str:
    cap = f"max {settings.max_tokens} tokens" if settings.max_tokens else "default token caps"
    return (
        f"{settings.review_mode} review, min {settings.min_exchanges} exchanges, {cap}, {settings.in_flight} in flight"
    )


def _signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _print_summary(summary: RunSummary, pilot: bool, trust: Sequence[str] = ()) -> None:
    """`trust`: the judge trust lines, shown beside the pass rate (the judge's verdicts)."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    click.echo(f"run {summary.run_id} {summary.status} in {summary.elapsed_s:.0f} s: {counts or 'nothing to do'}")
    if summary.error:
        click.echo(f"coach: error: {summary.error}", err=True)
    for tid, cause in summary.failed.items():
        click.echo(f"  failed {tid}: {cause}")
    if waiting := summary.counts.get(TranscriptStatus.REVIEW):
        click.echo(f"{waiting} transcript(s) wait for fixup decisions: coach review --list")
    if summary.pass_rate is not None:
        click.echo(f"pass rate {summary.pass_rate:.0%}")
        if pilot:
            click.echo(f"pilot decision: {pilot_decision(summary.pass_rate)}")
        for line in trust:
            click.echo(line)
    if summary.failed:
        click.echo(f"continue the failed transcripts with: coach run --resume {summary.run_id}")
