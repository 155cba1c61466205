"""`coach import` and `coach export`: transcripts in and out of the store; `coach eval report` from them."""

from __future__ import annotations

from pathlib import Path

import click

from actors.usecases.datasets import IMPORT_STATUSES, export_transcripts, import_transcripts
from actors.usecases.evaluations import report_from_store, trust_lines

from ..context import AppContext, creates_workspace, pass_app
from ..json_output import echo_json


@creates_workspace
@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--status",
    type=click.Choice(sorted(IMPORT_STATUSES)),
    default="imported",
    show_default=True,
    help="'accepted' marks the transcripts as passed (trusted data, ready for slicing).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="A file whose id the store holds with different content wins: the stored (imported) one is replaced.",
)
@pass_app
def import_cmd(app: AppContext, paths: tuple[Path, ...], status: str, replace: bool) -> None:
    """Import transcript and judged-result JSON files (or folders of them) into the workspace.

    Reads coach's own export format and the earlier implementation's
    transcripts and assessment files (answers, reasonings, score, pass; the
    judge is recorded as "imported"), linked to their transcripts by
    `conversation_id` or file name. Importing the same file twice adds
    nothing. Two files with one id and different content are both refused,
    and so is a file that differs from what the store holds, unless
    --replace. Every file is tried: each failure is printed as FILE: REASON
    and the others still import; the exit status is 1 if any file failed.
    """
    report = import_transcripts(app.store, paths, status=status, replace=replace)
    for tid in report.added:
        click.echo(f"added      {tid}")
    for tid in report.replaced:
        click.echo(f"replaced   {tid}")
    for tid in report.unchanged:
        click.echo(f"unchanged  {tid} (already imported)")
    for tid in report.assessments_added:
        click.echo(f"judged     {tid} (imported assessment)")
    for tid in report.assessments_replaced:
        click.echo(f"rejudged   {tid} (imported assessment replaced)")
    for path, reason in report.failed:
        click.echo(f"coach: error: {path}: {reason}", err=True)
    summary = f"{len(report.added)} added, {len(report.unchanged)} already present, {len(report.failed)} failed"
    if report.replaced:
        summary += f", {len(report.replaced)} replaced"
    if report.assessments:
        summary += (
            f"; assessments: {len(report.assessments_added)} added, "
            f"{len(report.assessments_unchanged)} already present"
            + (f", {len(report.assessments_replaced)} replaced" if report.assessments_replaced else "")
        )
    click.echo(f"{summary} — workspace {app.workspace}")
    if not report.ok:
        raise SystemExit(1)


@click.group("export")
def export_group() -> None:
    """Write data out of the workspace."""


@export_group.command("transcripts")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--status", help="Only transcripts with this status (e.g. passed).")
@pass_app
def export_transcripts_cmd(app: AppContext, out_dir: Path, status: str | None) -> None:
    """Write every transcript as one JSON file (coach's format) into OUT_DIR.

    A file is named after its transcript's id; an id with other characters
    than letters, digits and ._- gets a safe name ending in ~ and a hash of
    the id, so two transcripts never share a file.
    """
    written = export_transcripts(app.store, out_dir, status=status)
    click.echo(f"wrote {len(written)} transcript{'s' if len(written) != 1 else ''} to {out_dir}")


@click.command("report")
@click.option("--base", "base", required=True, metavar="GLOB", help="Base transcripts: a glob over model field or id.")
@click.option(
    "--candidate", "candidate", required=True, metavar="GLOB", help="Candidate transcripts: a glob over model or id."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder (default: WORKSPACE/reports/stored-BASE-vs-CANDIDATE).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap interval.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout, and nothing else."
)
@pass_app
def eval_report_cmd(app: AppContext, base: str, candidate: str, out_dir: Path | None, seed: int, as_json: bool) -> None:
    """Compare judged transcripts already in the store, without generating or judging anything.

    Each side is the transcripts whose model field or id matches its glob
    (quote it: --base 'base_*'), with their latest assessment — coach's own,
    or judged results brought in by `coach import`. Base and candidate pair
    by persona when the transcripts say which persona they used, otherwise
    by order (each side sorted by id); the output says which. Writes
    comparison_report.md and .json; like `coach eval compare`, exits 1
    unless the verdict is PASS.
    """
    done = report_from_store(app.store, app.workspace, base, candidate, out_dir=out_dir, seed=seed)
    report = done.report
    p, verdict = report["paired"], report["verdict"]
    outcome = verdict.get("outcome") or ("PASS" if verdict["passed"] else "FAIL")
    if as_json:  # the exit status still follows the verdict
        echo_json(
            {
                "kind": "stored",
                "base": base,
                "candidate": candidate,
                "base_transcripts": done.base_transcripts,
                "candidate_transcripts": done.candidate_transcripts,
                "pairing": done.pairing,
                "pairing_note": done.pairing_note,
                "report": report,
                "report_json": done.report_json,
                "report_md": done.report_md,
            }
        )
        if outcome != "PASS":
            raise SystemExit(1)
        return
    click.echo(
        f"base {base!r}: {done.base_transcripts} transcripts; candidate {candidate!r}: {done.candidate_transcripts}"
    )
    click.echo(done.pairing_note)
    click.echo(
        f"base {report['base']['mean']!s:.6} vs candidate {report['candidate']['mean']!s:.6} over "
        f"{p['n_pairs']} pairs; t-test p = {p['t_pvalue']}, Wilcoxon p = {p['wilcoxon_pvalue']}"
    )
    reason = f" ({verdict['reason']})" if verdict.get("reason") else ""
    click.echo(f"safety gate: {verdict['safety_gate']} — verdict: {outcome}{reason}")
    for line in trust_lines(report.get("judge_trust")):
        click.echo(line)
    click.echo(f"report: {done.report_md}")
    if outcome != "PASS":
        raise SystemExit(1)
