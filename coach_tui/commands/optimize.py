"""`coach optimize`: GEPA on the pack's prompts, scored by the rubric, reflected on by the `reflector` role.

The search itself is `actors.optimization`; this command turns options into an
`OptimizeConfig`, prints the estimate, then every scored conversation as it
comes, and at the end the front, the best candidate's diff against the current
prompt and, with `--write`, where the new pack version was written.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import click

from ..context import AppContext, creates_workspace, pass_app


@creates_workspace
@click.command("optimize")
@click.option(
    "--component",
    "components",
    multiple=True,
    default=("assistant",),
    show_default=True,
    help="Prompt to optimise: assistant (the generation guidance), user_sim or system_prompt. Repeatable.",
)
@click.option("--personas", type=click.IntRange(min=2), default=6, show_default=True, help="Simulated people in all.")
@click.option(
    "--validation", type=click.IntRange(min=1), default=2, show_default=True, help="Of them, the validation set."
)
@click.option(
    "--exchanges", type=click.IntRange(1, 50), default=3, show_default=True, help="Exchanges per conversation."
)
@click.option(
    "--max-tokens", type=click.IntRange(8, 4096), default=256, show_default=True, help="Per user message and reply."
)
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    default=24,
    show_default=True,
    help="Budget: conversations generated and judged (GEPA's metric calls).",
)
@click.option("--minibatch", type=click.IntRange(min=1), default=2, show_default=True, help="Personas per reflection.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Run config."
)
@click.option("--resume", metavar="RUN", help="Continue an interrupted optimisation (`latest` or its id).")
@click.option("--write", is_flag=True, help="Write the best candidate as a new pack version; the old pack stays.")
@click.option(
    "--write-to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --write puts the new pack (default: WORKSPACE/packs/PACK-RUN).",
)
@click.option("--yes", is_flag=True, help="Start without asking after the estimate.")
@pass_app
def optimize_cmd(
    app: AppContext,
    components: tuple[str, ...],
    personas: int,
    validation: int,
    exchanges: int,
    max_tokens: int,
    max_calls: int,
    minibatch: int,
    seed: int,
    config_path: Path | None,
    resume: str | None,
    write: bool,
    write_to: Path | None,
    yes: bool,
) -> None:
    """Optimise the pack's prompts against its rubric with GEPA (reflective prompt evolution)."""
    from actors.run_config import load_run_config
    from actors.usecases.optimizations import OptimizeConfig, open_optimization
    from state.errors import CoachError

    config = OptimizeConfig(
        components=tuple(dict.fromkeys(components)),
        personas=personas,
        validation=validation,
        exchanges=exchanges,
        max_tokens=max_tokens,
        max_calls=max_calls,
        minibatch=minibatch,
        seed=seed,
    )
    problems = config.problems()
    if problems:
        raise click.UsageError("; ".join(problems))
    load_run_config(config_path)  # a broken config is told before the workspace is opened
    pack, store = app.pack(), app.store

    async def go():
        async with open_optimization(
            store, pack, config, workspace=app.workspace, run_config_path=config_path, report=click.echo
        ) as session:
            if not resume:
                found = await session.estimate()
                for line in found.lines():
                    click.echo(line)
                if not yes and click.get_text_stream("stdin").isatty():
                    click.confirm("start?", default=True, abort=True)
            outcome = await session.run(resume)
            return session, outcome

    try:
        session, outcome = anyio.run(go)
    except KeyboardInterrupt:
        raise CoachError("stopped: `coach optimize --resume latest` continues where it left off") from None
    click.echo(f"optimisation {outcome.run_id}: {len(outcome.candidates)} candidate(s), {outcome.rollouts} rollouts")
    for i, score in enumerate(outcome.scores):
        marks = ("best" if i == outcome.best else "") + (" front" if i in outcome.front else "")
        click.echo(f"  candidate {i}: validation score {score:.3f} {marks.strip()}")
    if outcome.failures:
        click.echo(f"  {outcome.failures} conversation(s) failed and scored 0 (see the run log)")
    diff = session.diff(outcome)
    click.echo(diff or "the best candidate is the current prompt: nothing to write")
    if (write or write_to) and diff:
        written = session.write(outcome, write_to)
        click.echo(f"new pack version: {written} (use it with --domain {written})")
