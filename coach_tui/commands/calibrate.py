"""`coach calibrate`: does the configured judge catch known failures and spare good conversations?

The cases come from the domain pack's calibration file (see
`actors.assessment.calibration`). Each case is judged only on the criteria it is about,
which is what makes a full run on the embedded model bearable; `--cases` and
`--limit-criteria` narrow it further, and `--quick` takes a small documented
subset (`actors.assessment.calibration.quick_cases`). The judge-call
estimate is printed before anything is asked. A complete calibration is
kept in the workspace store: runs and evaluations show it beside their
verdicts (judge trust).
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import click

from actors.run_config import load_run_config
from actors.usecases.calibrations import (
    Calibration,
    CalibrationCase,
    CalibrationOutcome,
    CalibrationPlanned,
    CalibrationRequest,
    CaseJudged,
    CaseResult,
    CaseStarted,
    format_table,
    judge_trust_for,
    select_calibration_cases,
    trust_lines,
)

from ..context import AppContext, pass_app
from ..progress import ProgressOutput


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [part.strip() for part in text.split(",") if part.strip()]
    return items or None


def _expectation(case: CalibrationCase) -> str:
    parts = []
    if case.must_fail:
        parts.append("must fail " + ", ".join(case.must_fail))
    if case.must_pass:
        shown = case.must_pass if len(case.must_pass) <= 4 else [*case.must_pass[:3], f"… ({len(case.must_pass)})"]
        parts.append("must pass " + ", ".join(shown))
    return "; ".join(parts)


def _where(case: CalibrationCase) -> str:
    if case.buried_at is None:
        return f"{len(case.turns)} exchanges, clean"
    if len(case.edited) == 1:
        return f"{len(case.turns)} exchanges, edit at {case.buried_at}"
    return f"{len(case.turns)} exchanges, {len(case.edited)} edits from {case.buried_at}"


def _verdicts(result: CaseResult) -> str:
    """`MT1 NO (caught)` per must-fail criterion; must-pass ones listed, or summed when there are many."""
    marks = []
    for cid in result.must_fail:
        answer = result.answers.get(cid, "ERROR")
        marks.append(f"{cid} {answer} ({'caught' if answer == 'NO' else 'missed'})")
    passing = [(cid, result.answers.get(cid, "ERROR")) for cid in result.must_pass]
    if len(passing) <= 4:
        marks += [f"{cid} {a}" + (" (false alarm)" if a == "NO" else "") for cid, a in passing]
    elif passing:
        alarms = [cid for cid, a in passing if a == "NO"]
        errors = sum(a == "ERROR" for _, a in passing)
        marks.append(
            f"{len(passing) - len(alarms) - errors}/{len(passing)} not flagged"
            + (f", false alarm on {', '.join(alarms)}" if alarms else "")
            + (f", {errors} ERROR" if errors else "")
        )
    return ", ".join(marks)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


@click.command("calibrate")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run config (YAML) naming the judge. Default: the embedded model.",
)
@click.option("--cases", "case_names", metavar="NAME,…", help="Only these cases (see --list).")
@click.option(
    "--limit-criteria", "criteria", metavar="ID,…", help="Only these criteria; cases about none of them are skipped."
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON report (default: WORKSPACE/reports/calibration-TIMESTAMP.json).",
)
@click.option(
    "--calibration",
    "calibration_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Calibration file (default: the one the domain pack names).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed passed to the judge.")
@click.option(
    "--quick",
    is_flag=True,
    help="Only a planted failure of each kind (buried, pattern) and a near miss, each on its own criteria and "
    "only in the window holding its edit: a few minutes on the embedded model.",
)
@click.option("--list", "list_only", is_flag=True, help="List the cases and what they expect; judge nothing.")
@pass_app
def calibrate_cmd(
    app: AppContext,
    config_path: Path | None,
    case_names: str | None,
    criteria: str | None,
    out_path: Path | None,
    calibration_file: Path | None,
    seed: int,
    quick: bool,
    list_only: bool,
) -> None:
    """Check the judge against cases with known answers.

    Each case is a long conversation (30+ exchanges) of good exchanges with
    one known failure buried deep, or a pattern across many replies, or a
    near miss that must not be penalized. Prints, per criterion, how often
    the judge caught the must-fail cases and spared the must-pass ones, and
    writes a JSON report with every answer and the judge's reasons.

    A complete calibration is stored in the workspace as the judge's latest
    on this pack; `coach run` and `coach eval` show it beside their verdicts,
    with a warning when the judge missed a planted failure. --quick judges
    one planted failure of each kind (a buried one, safety-gate first, and a
    pattern across replies) and one near miss on the same criteria, each on
    those criteria alone and only in the window holding its edit.
    """
    pack = app.pack()
    request = CalibrationRequest(
        config_path=config_path,
        cases=_split(case_names),
        criteria=_split(criteria),
        calibration_file=calibration_file,
        seed=seed,
        out=out_path,
        quick=quick,
    )
    selection = select_calibration_cases(pack, request)
    cases = selection.cases

    if list_only:
        click.echo(f"{len(cases)} case(s) from {selection.source} (persona {selection.data.persona.name}):")
        for c in cases:
            click.echo(f"  {c.name:<26} {_where(c):<32} {_expectation(c)}")
        return

    load_run_config(config_path)  # a missing or broken config is told before the workspace is opened
    store = app.store
    output = ProgressOutput()
    calibration = Calibration(
        pack, selection, request, app.workspace, _ProgressLines(len(cases), output).on_event, store=store
    )
    try:
        with output:
            outcome = anyio.run(calibration.run)
    except KeyboardInterrupt:
        partial = calibration.finish()
        if partial is not None:
            _print_outcome(partial)
        click.echo(
            "\ninterrupted"
            + (f" — partial report of {len(calibration.done)} case(s): {partial.out}" if partial is not None else ""),
            err=True,
        )
        raise SystemExit(130) from None
    _print_outcome(outcome)
    for line in trust_lines(judge_trust_for(app.store, pack, config_path).as_dict()):
        click.echo(line)


class _ProgressLines:
    """One line per case as it starts and ends, with a time estimate from the work done so far.

    On a terminal a bar follows the same units of work as the estimate.
    """

    def __init__(self, total_cases: int, output: ProgressOutput | None = None) -> None:
        self.total_cases = total_cases
        self.unit: dict[str, int] = {}
        self.units_done = 0
        self.started = time.monotonic()
        self.output = output or ProgressOutput(tty=False)
        self._bar: int | None = None

    def on_event(self, event) -> None:
        echo = self.output.line
        if isinstance(event, CalibrationPlanned):
            echo(f"judge: {', '.join(event.judges)}")
            echo(
                f"{self.total_cases} case(s), {event.verdicts} criterion verdict(s), "
                f"{event.windows} window(s): about {event.calls} judge call(s)"
            )
            if event.local:
                echo(
                    "  (a local model reads each window of each case once, then answers each criterion "
                    "from its prefix cache; use --cases or --limit-criteria for a shorter run)"
                )
            # Progress unit for the time estimate: a local model's cost is mostly reading each window,
            # a remote judge's mostly the calls.
            self.unit = {name: (w if event.local else c) for name, (w, c) in event.plans.items()}
            self.started = time.monotonic()
            if self.output.tty:
                unit = "windows read" if event.local else "judge calls"
                self._bar = self.output.task(f"judging ({unit})", sum(self.unit.values()), plain=False)
        elif isinstance(event, CaseStarted):
            echo(
                f"[{event.index + 1}/{self.total_cases}] {event.case.name} ({_where(event.case)}): "
                f"{event.windows} window(s), {event.calls} call(s) …"
            )
        elif isinstance(event, CaseJudged):
            self.units_done += self.unit[event.case.name]
            if self._bar is not None:
                self.output.update(self._bar, completed=self.units_done)
            line = f"    {_minutes(event.result.elapsed_s)}: {_verdicts(event.result)}"
            if event.result.error:
                line += f" — judge failed: {event.result.error}"
            left = sum(self.unit.values()) - self.units_done
            if left and self.units_done:
                eta = (time.monotonic() - self.started) / self.units_done * left
                if eta >= 5:
                    line += f" · roughly {_minutes(eta)} left"
            echo(line)


def _print_outcome(outcome: CalibrationOutcome) -> None:
    click.echo("")
    click.echo(format_table(outcome.score))
    click.echo(
        "caught: must-fail cases judged NO · spared: must-pass cases not penalized "
        "(YES, or NA where allowed) · errors: unparsable or failed judge answers"
    )
    click.echo(f"report: {outcome.out}")
