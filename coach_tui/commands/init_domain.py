"""`coach init-domain NAME`: a new domain pack from commented templates, checked at once."""

from __future__ import annotations

import re
from pathlib import Path

import click

from actors.atomic_files import write_text_atomic
from actors.pack.loader import SCAFFOLD_DIR, check_pack, load_pack
from actors.pack.rubric_doc import render_rubric_doc
from state.errors import CoachError


@click.command("init-domain")
@click.argument("name")
@click.option(
    "--path",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the pack (default: ./packs/NAME).",
)
def init_domain(name: str, target: Path | None) -> None:
    """Scaffold a domain pack NAME with commented templates, then validate it.

    Edit the files (every one explains itself), re-run `coach config check
    PACK_DIR` until it is clean, and use the pack with `coach --domain PACK_DIR …`.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", name):
        raise CoachError(f"pack name {name!r}: use letters, digits, '-' or '_', starting with a letter")
    target = target or Path("packs") / name
    if target.exists():
        raise CoachError(f"{target} already exists; choose another --path or name")
    # File by file rather than copytree: an installed scaffold may be read-only, and its modes must not follow.
    for source in sorted(SCAFFOLD_DIR.rglob("*")):
        if source.is_file() and "__pycache__" not in source.parts:
            path = target / source.relative_to(SCAFFOLD_DIR)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source.read_text(encoding="utf-8").replace("__NAME__", name), encoding="utf-8")
    pack = load_pack(target, check_rubric_doc=False)
    write_text_atomic(target / pack.manifest.rubric_doc, render_rubric_doc(pack.rubric))
    problems = check_pack(target)
    if problems:  # the scaffold itself is broken: a bug, but say it plainly
        raise CoachError(f"the new pack at {target} does not validate:\n" + "\n".join(f"  {p}" for p in problems))
    click.echo(f"created pack '{name}' at {target} — it validates.")
    click.echo("next: edit its taxonomies, rubric, system prompt and prompts/, then")
    click.echo(f"  coach config check {target}")
    click.echo(f"  coach --domain {target} run --pilot")
