"""`coach import` and `coach export`: transcripts in and out of the store."""

from __future__ import annotations

from pathlib import Path

import click

from actors.usecases.datasets import IMPORT_STATUSES, export_transcripts, import_transcripts

from ..context import AppContext, pass_app


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--status",
    type=click.Choice(sorted(IMPORT_STATUSES)),
    default="imported",
    show_default=True,
    help="'accepted' marks the transcripts as passed (trusted data, ready for slicing).",
)
@pass_app
def import_cmd(app: AppContext, paths: tuple[Path, ...], status: str) -> None:
    """Import transcript JSON files (or folders of them) into the workspace.

    Reads coach's own export format and the earlier implementation's format.
    Importing the same file twice adds nothing. A malformed file is reported
    with its reason and the others still import; the exit status is 1 if any
    file failed.
    """
    report = import_transcripts(app.store, paths, status=status)
    for tid in report.added:
        click.echo(f"added      {tid}")
    for tid in report.unchanged:
        click.echo(f"unchanged  {tid} (already in the store)")
    for path, reason in report.failed:
        click.echo(f"coach: error: {path}: {reason}", err=True)
    click.echo(
        f"{len(report.added)} added, {len(report.unchanged)} already present, {len(report.failed)} failed "
        f"— workspace {app.workspace}"
    )
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
    """Write every transcript as one JSON file (coach's format) into OUT_DIR."""
    written = export_transcripts(app.store, out_dir, status=status)
    click.echo(f"wrote {len(written)} transcript{'s' if len(written) != 1 else ''} to {out_dir}")
