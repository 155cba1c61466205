"""`coach config …` and `coach rubric …`: checking a domain pack and scoring with its rubric."""

from __future__ import annotations

import json
from pathlib import Path

import click

from actors.assessment.scoring import compute_score
from actors.atomic_files import write_text_atomic
from actors.pack.loader import DEFAULT_PACK_DIR, check_pack
from actors.pack.rubric_doc import render_rubric_doc
from state.errors import CoachError

from ..context import AppContext, pass_app


@click.group("config")
def config_group() -> None:
    """Check domain packs and configuration."""


@config_group.command("check")
@click.argument("pack_dir", required=False, type=click.Path(path_type=Path))
@pass_app
def config_check(app: AppContext, pack_dir: Path | None) -> None:
    """Load a domain pack and report every problem, each naming its file and field.

    PACK_DIR defaults to --domain, else the bundled therapy pack. Exits 0 when
    clean, 1 otherwise.
    """
    root = pack_dir or Path(app.domain_option or DEFAULT_PACK_DIR)
    problems = check_pack(root)
    if problems:
        for p in problems:
            click.echo(str(p))
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {root}", err=True)
        raise SystemExit(1)
    pack = AppContext(domain_option=str(root)).pack()
    flaws = sum(len(f.patterns) for f in pack.flaw_taxonomy.families)
    click.echo(
        f"{root}: OK — pack '{pack.name}': {len(pack.input_taxonomy.topics)} topics, {flaws} flaw patterns, "
        f"{len(pack.rubric.criteria)} criteria in {len(pack.rubric.categories)} categories, "
        f"safety gates {', '.join(pack.rubric.safety_gates) or 'none'}, threshold {pack.rubric.pass_threshold:.2f}"
    )


@click.group("rubric")
def rubric_group() -> None:
    """Score answers and render the rubric document."""


def _answers_from(path: Path) -> tuple[dict, int | None]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CoachError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise CoachError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise CoachError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(obj, dict):
        raise CoachError(f"{path}: expected a JSON object (an answers mapping, or an object with 'answers')")
    answers = obj.get("answers", obj) if isinstance(obj.get("answers"), dict) else obj
    if "answers" in obj and not isinstance(obj["answers"], dict):
        raise CoachError(f"{path}: answers: must be an object mapping criterion id to YES/NO/NA/ERROR")
    exchange_count = obj.get("exchange_count") if answers is not obj else None
    if exchange_count is not None and (not isinstance(exchange_count, int) or exchange_count < 1):
        raise CoachError(f"{path}: exchange_count: must be a positive whole number")
    answers = {k: v for k, v in answers.items() if k not in ("exchange_count",)}
    return answers, exchange_count


@rubric_group.command("score")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--exchanges", type=click.IntRange(min=1), help="Transcript length in exchanges (decides min_turns).")
@pass_app
def rubric_score(app: AppContext, files: tuple[Path, ...], exchanges: int | None) -> None:
    """Score judge answers with the pack's rubric: one JSON object per FILE.

    FILE holds a bare answers mapping ({"CQ1": "YES", …}) or an object with an
    `answers` key (and optionally `exchange_count`).
    """
    rubric = app.pack().rubric
    failures = 0
    for path in files:
        try:
            answers, count = _answers_from(path)
        except CoachError as err:
            click.echo(f"coach: error: {err}", err=True)
            failures += 1
            continue
        result = compute_score(rubric, answers, exchange_count=exchanges or count)
        click.echo(json.dumps({"file": str(path), **result.as_dict()}))
    if failures:
        raise SystemExit(1)


@rubric_group.command("doc")
@click.option("--write", is_flag=True, help="Write the pack's rubric document instead of printing it.")
@pass_app
def rubric_doc(app: AppContext, write: bool) -> None:
    """Render the human rubric document from rubric.yaml (the pack's `rubric_doc`)."""
    pack = app.pack(check_rubric_doc=False)
    text = render_rubric_doc(pack.rubric)
    if not write:
        click.echo(text, nl=False)
        return
    if not pack.manifest.rubric_doc:
        raise CoachError(f"{pack.root / 'pack.yaml'}: rubric_doc: not set, so there is nowhere to write the document")
    target = pack.path(pack.manifest.rubric_doc)
    write_text_atomic(target, text)
    click.echo(f"wrote {target}")
