"""`coach run`: generate and assess transcripts headless, with a progress view."""

from __future__ import annotations

import secrets
from pathlib import Path

import anyio
import click

from actors.curation import CurationSettings
from actors.run_plan import DEFAULT_LENGTHS, DEFAULT_MIX, persona_records, plan_run
from actors.supervisor import GenerationSettings, RunSummary, Supervisor
from state import pipeline as db
from state.errors import CoachError

from ..context import AppContext, pass_app
from ..progress import HeadlessProgress

PILOT_TRANSCRIPTS = 3


def pilot_decision(pass_rate: float) -> str:
    """The spec's pilot rule."""
    if pass_rate >= 0.5:
        return "proceed to scale (pass rate ≥ 50 %)"
    if pass_rate >= 0.3:
        return "iterate on the prompts and re-run the pilot (30–50 %)"
    return "fundamental issue: revisit the flaw taxonomy or the rubric (< 30 %)"


def _parse_pairs(text: str | None, option: str, cast) -> dict:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise CoachError(f"{option}: expected name=value pairs separated by commas, got {part!r}")
        try:
            out[key.strip()] = cast(value)
        except ValueError:
            raise CoachError(f"{option}: {key.strip()}={value!r} is not a valid number") from None
        if out[key.strip()] < 0:
            raise CoachError(f"{option}: {key.strip()} must not be negative")
    return out


@click.command("run")
@click.option("--transcripts", "-n", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seed", type=int, help="Seed for personas and lengths (default: random, recorded in the run).")
@click.option("--lengths", metavar="CLASS=N,…",
              help=f"Exchanges per length class (default {','.join(f'{k}={v}' for k, v in DEFAULT_LENGTHS.items())}).")
@click.option("--mix", metavar="CLASS=W,…",
              help=f"Share of each length class (default {','.join(f'{k}={v}' for k, v in DEFAULT_MIX.items())}).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Run config (YAML): backends and roles. Default: every role on the embedded model.")
@click.option("--resume", "resume_id", metavar="RUN", help="Continue an unfinished run ('latest' for the newest).")
@click.option("--pilot", is_flag=True, help=f"Generate and assess {PILOT_TRANSCRIPTS} transcripts and print the decision.")
@click.option("--in-flight", type=click.IntRange(min=1), default=4, show_default=True,
              help="Transcripts worked on at once (per actor).")
@click.option("--max-tokens", type=click.IntRange(min=16), help="Cap on tokens per generated message.")
@click.option("--review", "review_mode", is_flag=True,
              help="Hold every fixup for a person to decide (coach review) instead of applying it automatically.")
@click.option("--min-exchanges", type=click.IntRange(min=1), default=10, show_default=True,
              help="Fewest exchanges a truncated transcript may keep.")
@pass_app
def run_cmd(app: AppContext, transcripts: int, seed: int | None, lengths: str | None, mix: str | None,
            config_path: Path | None, resume_id: str | None, pilot: bool, in_flight: int,
            max_tokens: int | None, review_mode: bool, min_exchanges: int) -> None:
    """Generate persona-driven conversations and assess them with the rubric.

    Every step is committed as it happens: a killed run continues with
    `coach run --resume RUN` (or `--resume latest`).
    """
    from actors.backends.router import ModelRouter
    from actors.run_config import load_run_config

    pack = app.pack()
    store = app.store
    if resume_id and config_path is None:
        # A resumed run keeps the backends it was started with.
        run = db.latest_run(store) if resume_id == "latest" else db.get_run(store, resume_id)
        stored = run.config.get("run_config") if run else None
        config_path = Path(stored) if stored else None
    cfg = load_run_config(config_path)
    settings = GenerationSettings(in_flight=in_flight)
    curation = CurationSettings(review_mode="review" if review_mode else "auto", min_exchanges=min_exchanges)
    if max_tokens:
        curation.fixup_max_tokens = min(curation.fixup_max_tokens, max_tokens)
        settings.max_tokens_user = min(settings.max_tokens_user, max_tokens)
        settings.max_tokens_assistant = min(settings.max_tokens_assistant, max_tokens)

    if resume_id:
        run = db.latest_run(store) if resume_id == "latest" else db.get_run(store, resume_id)
        if run is None:
            raise CoachError(f"no run {resume_id!r} in workspace {app.workspace}")
        run_id = run.id
        # A resumed run keeps the curation mode it was started with unless told otherwise.
        if not review_mode and run.config.get("review"):
            curation.review_mode = "review"
        click.echo(f"resuming run {run_id} ({curation.review_mode} review)")
    else:
        if pilot:
            transcripts = PILOT_TRANSCRIPTS
        seed = seed if seed is not None else secrets.randbelow(10_000)
        run_id = f"run-{seed}-{secrets.token_hex(3)}"
        try:
            plan = plan_run(pack, run_id, transcripts=transcripts, seed=seed,
                            lengths=_parse_pairs(lengths, "--lengths", int), mix=_parse_pairs(mix, "--mix", float))
        except ValueError as err:
            raise CoachError(f"--mix/--lengths: {err}") from None
        db.create_run(
            store, run_id, kind="generate", domain=pack.name, seed=seed,
            config={"transcripts": transcripts, "lengths": lengths, "mix": mix, "pilot": pilot,
                    "review": review_mode, "min_exchanges": min_exchanges,
                    "run_config": str(config_path.resolve()) if config_path else None},
            personas=persona_records(pack, plan),
            transcripts=[(t.transcript_id, t.persona_id, t.target_exchanges) for t in plan.transcripts],
        )
        click.echo(f"run {run_id}: {transcripts} transcripts, seed {seed}, workspace {app.workspace}")

    async def main() -> RunSummary:
        router = ModelRouter.from_config(cfg)
        supervisor = Supervisor(store, router, pack, settings=settings, curation=curation)
        progress = HeadlessProgress(supervisor.bus)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(progress.follow)
                summary = await supervisor.run(run_id)
                supervisor.bus.close()
            return summary
        finally:
            await router.aclose()

    try:
        summary = anyio.run(main)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted — nothing is lost; continue with: coach run --resume {run_id}", err=True)
        raise SystemExit(130) from None
    _print_summary(summary, pilot or bool(db.get_run(store, run_id).config.get("pilot")))


def _print_summary(summary: RunSummary, pilot: bool) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    click.echo(f"run {summary.run_id} finished in {summary.elapsed_s:.0f} s: {counts}")
    for tid, cause in summary.failed.items():
        click.echo(f"  failed {tid}: {cause}")
    if summary.counts.get("review"):
        click.echo(f"{summary.counts['review']} transcript(s) wait for fixup decisions: coach review --list")
    if summary.pass_rate is not None:
        click.echo(f"pass rate {summary.pass_rate:.0%}")
        if pilot:
            click.echo(f"pilot decision: {pilot_decision(summary.pass_rate)}")
    if summary.failed:
        click.echo(f"continue the failed transcripts with: coach run --resume {summary.run_id}")
