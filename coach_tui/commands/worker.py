"""`coach worker`: one of any number of processes, on any machines, working one run.

This face only parses options, hands them to the worker use cases
(`actors.usecases.workers`), and prints progress and the summary. Every
worker points at the same store (`--db postgresql://…`); the first may plan
the run (`--new N`), the others join it (`--run RUN`). The exit status is
`coach run`'s: 0 when every transcript of the run finished, 1 when any failed,
128 + the signal when Ctrl-C or SIGTERM stopped this worker.
"""

from __future__ import annotations

from pathlib import Path

import click

from actors.generation.run_plan import DEFAULT_LENGTHS
from actors.run_config import load_run_config
from actors.usecases import runs, workers
from actors.usecases.run_numbers import MAX_EXCHANGES, parse_lengths
from actors.usecases.run_settings import RunSettings
from actors.usecases.workers import WorkerSummary

from ..context import AppContext, creates_workspace, pass_app
from .run import _pairs, _parsed, _print_summary, _run_with_progress


@creates_workspace
@click.command("worker")
@click.option("--db", "db_url", metavar="URL", help="The shared store (same as `coach --db URL`).")
@click.option("--run", "run_ref", metavar="RUN", help="The run to work on ('latest' for the newest). Default: latest.")
@click.option(
    "--new",
    "new_transcripts",
    type=click.IntRange(min=1),
    metavar="N",
    help="Plan a new run of N transcripts and work on it.",
)
@click.option("--seed", type=int, help="With --new: seed for personas and lengths (default: random, recorded).")
@click.option(
    "--lengths",
    metavar="CLASS=N,…",
    callback=_parsed(parse_lengths),
    help=f"With --new: exchanges per length class, 1 to {MAX_EXCHANGES} (default {_pairs(DEFAULT_LENGTHS)}).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run config (YAML) on this machine: backends and roles. Default: the run's own.",
)
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    help="Transcripts worked on at once per actor (the worker holds twice as many). Default: the run's.",
)
@click.option(
    "--claim-ttl",
    type=click.FloatRange(min=1),
    default=90.0,
    show_default=True,
    help="Seconds a dead worker's claims (on another machine) stay before another worker takes them over.",
)
@click.pass_context
@pass_app
def worker_cmd(
    app: AppContext,
    ctx: click.Context,
    db_url: str | None,
    run_ref: str | None,
    new_transcripts: int | None,
    seed: int | None,
    lengths: dict[str, int],
    config_path: Path | None,
    in_flight: int | None,
    claim_ttl: float,
) -> None:
    """Work on a shared run with any number of other workers (any machines, one --db).

    Transcripts are claimed one by one in the store; a worker that dies leaves
    its claims to the others (at once on its own machine, after --claim-ttl on
    another), and no step runs twice. Ctrl-C hands this worker's claims back.
    """
    if new_transcripts is not None and run_ref is not None:
        raise click.UsageError("--new plans a run and --run joins one: give one of them")
    if new_transcripts is None and (seed is not None or lengths):
        raise click.UsageError("--seed and --lengths plan a run: give them with --new N")
    if db_url:
        app.db_url = db_url
    if config_path is not None:
        load_run_config(config_path)  # a missing or broken config is told before the store is touched
    pack = app.pack()
    store = app.store
    if new_transcripts is not None:
        settings = RunSettings(
            transcripts=new_transcripts,
            seed=seed,
            lengths={**DEFAULT_LENGTHS, **lengths},
            in_flight=in_flight or 4,
            run_config=str(config_path.expanduser().resolve()) if config_path else None,
        )
        run_id, settings = workers.plan_shared_run(store, pack, settings)
        click.echo(f"run {run_id}: {settings.transcripts} transcripts, seed {settings.seed}; join it with")
        click.echo(f"  coach --db URL worker --run {run_id}")
    else:
        run_id, settings = workers.settings_to_join(
            store, pack, run_ref or "latest", in_flight=in_flight, run_config=config_path
        )
        click.echo(f"joining run {run_id} ({settings.in_flight} in flight)")

    session = workers.WorkerSession(store, pack, run_id, settings, claim_ttl_s=claim_ttl)
    session.check_owner()  # before any model loads: a run one process owns alone is not shared
    summary, signum = _run_with_progress(
        session, lambda signal_name: f"\nworker leaving run {run_id} ({signal_name}): its transcripts go back"
    )
    _print_summary(summary, False)
    _print_workers(session.summary(summary))
    ctx.exit(runs.exit_status(summary, signum))


def _print_workers(summary: WorkerSummary) -> None:
    hosts = summary.hosts
    click.echo(
        f"worked by {summary.workers} worker(s) on {len(hosts)} host(s); this one took "
        f"{summary.claimed} transcript(s), finished {summary.finished_here}, {summary.run.exchanges} exchanges"
    )
    for host in hosts:
        click.echo(f"  {host.host}: {len(host.workers)} worker(s), {host.live} still on the run")
