"""The `coach` command: the Textual app by default, headless subcommands for everything else.

Every subcommand is a thin face over actors and state. A `CoachError` (a
problem the user can fix) is printed as one line on stderr with a non-zero
exit; only a bug shows a traceback.
"""

from __future__ import annotations

import click

from state.errors import CoachError

from .context import AppContext, may_create_workspace


class CoachGroup(click.Group):
    """Turns a CoachError (or a database error a person can fix) anywhere below into one line and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CoachError as err:
            click.echo(f"coach: error: {err}", err=True)
            ctx.exit(err.exit_code)
        except Exception as err:
            from state.store import database_problem  # a full disk, a read-only or damaged database

            opened = getattr(ctx.obj, "_store", None)
            problem = database_problem(err, getattr(opened, "where", "the workspace database"))
            if problem is None:
                raise
            click.echo(f"coach: error: {problem}", err=True)
            ctx.exit(problem.exit_code)


@click.group(cls=CoachGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--workspace", "-w", metavar="DIR", help="Workspace folder (default: $COACH_WORKSPACE or ./workspace).")
@click.option("--db", "db_url", metavar="URL", help="Any SQLAlchemy URL instead of the workspace's SQLite file.")
@click.option("--domain", metavar="PACK_DIR", help="Domain pack folder (default: the bundled therapy pack).")
@click.version_option(package_name="coach")
@click.pass_context
def main(ctx: click.Context, workspace: str | None, db_url: str | None, domain: str | None) -> None:
    """coach — synthetic conversations, rubric judging, curation, fine-tuning and offline chat.

    With no command, opens the terminal app.
    """
    ctx.obj = AppContext(workspace_option=workspace, db_url=db_url, domain_option=domain)
    if ctx.invoked_subcommand is not None:  # the app may start a workspace; of the commands, only those marked
        ctx.obj.create_workspace = may_create_workspace(main.get_command(ctx, ctx.invoked_subcommand))
    else:
        from .app import run_app

        run_app(ctx.obj)


def _register() -> None:
    from .commands.calibrate import calibrate_cmd
    from .commands.chat import chat_cmd
    from .commands.data import eval_report_cmd, export_group, import_cmd
    from .commands.doctor import doctor_cmd
    from .commands.eval import eval_group
    from .commands.init_domain import init_domain
    from .commands.optimize import optimize_cmd
    from .commands.pack import config_group, rubric_group
    from .commands.review import report_group, review_cmd
    from .commands.run import run_cmd
    from .commands.safety import safety_group
    from .commands.slice import slice_cmd
    from .commands.train import export_model_cmd, train_cmd
    from .commands.worker import worker_cmd

    for command in (
        config_group,
        rubric_group,
        import_cmd,
        export_group,
        run_cmd,
        review_cmd,
        report_group,
        eval_group,
        init_domain,
        slice_cmd,
        calibrate_cmd,
        train_cmd,
        export_model_cmd,
        doctor_cmd,
        safety_group,
        chat_cmd,
        optimize_cmd,
        worker_cmd,
    ):
        main.add_command(command)
    eval_group.add_command(eval_report_cmd)  # `coach eval report`: from stored transcripts, beside base and compare
    try:
        from .commands.backends import ask, models
    except ImportError:  # the backends layer is optional only while it is being built
        return
    main.add_command(models)
    main.add_command(ask)


_register()
