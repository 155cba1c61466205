"""`coach doctor`: the workspace's full health check, one line per finding, exit 1 when any failed."""

from __future__ import annotations

import os

import click

from state.workspace import ENV_DB_URL

from ..context import AppContext, pass_app

_MARKS = {"ok": "ok   ", "fixed": "fixed", "warn": "warn ", "fail": "FAIL "}


@click.command("doctor")
@pass_app
def doctor_cmd(app: AppContext) -> None:
    """Check the workspace: database integrity, foreign keys, schema, permissions, leftover temporary files.

    Never writes to the database (it is opened read-only); removes the
    temporary files that interrupted writes left behind.
    """
    from actors.usecases.doctor import FAIL, examine

    findings = examine(app.workspace, app.db_url or os.environ.get(ENV_DB_URL))
    for finding in findings:
        click.echo(f"{_MARKS[finding.status]} {finding.check}: {finding.detail}")
    failed = sum(f.status == FAIL for f in findings)
    if failed:
        click.echo(
            f"coach doctor: {failed} problem{'s' if failed > 1 else ''} need{'' if failed > 1 else 's'} attention",
            err=True,
        )
        raise click.exceptions.Exit(1)
