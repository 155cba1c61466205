"""`coach calibrate`: does the configured judge catch known failures and spare good conversations?

The cases come from the domain pack's calibration file (see
`actors.calibration`). Each case is judged only on the criteria it is about,
which is what makes a full run on the embedded model bearable; `--cases` and
`--limit-criteria` narrow it further. The judge-call estimate is printed
before anything is asked.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import click

from actors.atomic_files import write_json_atomic
from actors.calibration import (
    CalibrationCase,
    CaseResult,
    build_cases,
    calibration_path,
    calibration_report,
    format_table,
    load_calibration,
    planned_calls,
    run_calibration,
    score_calibration,
    select_cases,
)
from state.errors import CoachError

from ..context import AppContext, pass_app


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
        marks.append(f"{len(passing) - len(alarms) - errors}/{len(passing)} not flagged"
                     + (f", false alarm on {', '.join(alarms)}" if alarms else "")
                     + (f", {errors} ERROR" if errors else ""))
    return ", ".join(marks)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


@click.command("calibrate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Run config (YAML) naming the judge. Default: the embedded model.")
@click.option("--cases", "case_names", metavar="NAME,…", help="Only these cases (see --list).")
@click.option("--limit-criteria", "criteria", metavar="ID,…",
              help="Only these criteria; cases about none of them are skipped.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON report (default: WORKSPACE/reports/calibration-TIMESTAMP.json).")
@click.option("--calibration", "calibration_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Calibration file (default: the one the domain pack names).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed passed to the judge.")
@click.option("--list", "list_only", is_flag=True, help="List the cases and what they expect; judge nothing.")
@pass_app
def calibrate_cmd(app: AppContext, config_path: Path | None, case_names: str | None, criteria: str | None,
                  out_path: Path | None, calibration_file: Path | None, seed: int, list_only: bool) -> None:
    """Check the judge against cases with known answers.

    Each case is a long conversation (30+ exchanges) of good exchanges with
    one known failure buried deep, or a pattern across many replies, or a
    near miss that must not be penalized. Prints, per criterion, how often
    the judge caught the must-fail cases and spared the must-pass ones, and
    writes a JSON report with every answer and the judge's reasons.
    """
    pack = app.pack()
    source = calibration_path(pack, calibration_file)
    data = load_calibration(pack, source)
    all_cases = build_cases(pack, data)

    wanted_criteria = _split(criteria)
    if wanted_criteria:
        unknown = [c for c in wanted_criteria if c not in pack.rubric.ids]
        if unknown:
            raise CoachError(f"--limit-criteria: unknown criterion {', '.join(unknown)}; "
                             f"the rubric has {', '.join(pack.rubric.ids)}")
    cases = select_cases(all_cases, _split(case_names), wanted_criteria)
    if not cases:
        raise CoachError("no calibration case is about the chosen criteria "
                         f"({', '.join(wanted_criteria or [])}); see coach calibrate --list")

    if list_only:
        click.echo(f"{len(cases)} case(s) from {source} (persona {data.persona.name}):")
        for c in cases:
            click.echo(f"  {c.name:<26} {_where(c):<32} {_expectation(c)}")
        return

    from actors.backends.router import ModelRouter
    from actors.run_config import load_run_config

    cfg = load_run_config(config_path)
    done: list[tuple[CalibrationCase, CaseResult]] = []
    judges: list[str] = []

    async def main() -> list[CaseResult]:
        router = ModelRouter.from_config(cfg)
        try:
            judges.extend(f"{b.name} ({b.kind}: {b.model})" for b in router.backends_for("judge"))
            plans = {c.name: planned_calls(router, pack, c) for c in cases}
            total_calls = sum(calls for _, calls in plans.values())
            click.echo(f"judge: {', '.join(judges)}")
            click.echo(f"{len(cases)} case(s), {sum(len(c.criteria) for c in cases)} criterion verdict(s), "
                       f"{sum(w for w, _ in plans.values())} window(s): about {total_calls} judge call(s)")
            local = any(b.kind == "llama_cpp" for b in router.backends_for("judge"))
            if local:
                click.echo("  (a local model reads each window of each case once, then answers each criterion "
                           "from its prefix cache; use --cases or --limit-criteria for a shorter run)")
            # Progress unit for the time estimate: a local model's cost is mostly reading each window,
            # a remote judge's mostly the calls.
            unit = {name: (w if local else c) for name, (w, c) in plans.items()}
            total_units = sum(unit.values())
            started = time.monotonic()
            units_done = 0

            def on_start(i: int, case: CalibrationCase) -> None:
                windows, calls = plans[case.name]
                click.echo(f"[{i + 1}/{len(cases)}] {case.name} ({_where(case)}): "
                           f"{windows} window(s), {calls} call(s) …")

            def on_done(i: int, case: CalibrationCase, result: CaseResult) -> None:
                nonlocal units_done
                done.append((case, result))
                units_done += unit[case.name]
                line = f"    {_minutes(result.elapsed_s)}: {_verdicts(result)}"
                if result.error:
                    line += f" — judge failed: {result.error}"
                left = total_units - units_done
                if left and units_done:
                    eta = (time.monotonic() - started) / units_done * left
                    if eta >= 5:
                        line += f" · roughly {_minutes(eta)} left"
                click.echo(line)

            return await run_calibration(router, pack, cases, seed=seed, on_start=on_start, on_done=on_done)
        finally:
            await router.aclose()

    out = out_path or app.workspace / "reports" / (
        "calibration-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + ".json")
    try:
        results = anyio.run(main)
    except KeyboardInterrupt:
        if done:
            _finish(pack, [c for c, _ in done], [r for _, r in done], judges, str(source), out, partial=True)
        click.echo("\ninterrupted" + (f" — partial report of {len(done)} case(s): {out}" if done else ""), err=True)
        raise SystemExit(130) from None
    _finish(pack, cases, results, judges, str(source), out, partial=False)


def _finish(pack, cases, results, judges, source: str, out: Path, *, partial: bool) -> None:
    score = score_calibration(results, na_invalid=pack.rubric.na_invalid, order=pack.rubric.ids)
    click.echo("")
    click.echo(format_table(score))
    click.echo("caught: must-fail cases judged NO · spared: must-pass cases not penalized "
               "(YES, or NA where allowed) · errors: unparsable or failed judge answers")
    report = calibration_report(pack, cases, results, score, judges=judges, source=source)
    report["partial"] = partial
    write_json_atomic(out, report)
    click.echo(f"report: {out}")
