"""`coach safety …`: measuring the crisis net on a labelled file, and rebuilding its classifier."""

from __future__ import annotations

import json
from pathlib import Path

import click

from actors.usecases.safety import Rate, Report, measure, retrain

from ..context import AppContext, pass_app


@click.group("safety")
def safety_group() -> None:
    """Measure the crisis safety net and rebuild its classifier."""


def _pack(app: AppContext):
    """The pack named by --domain, else None: the bundled net."""
    return app.pack() if app.domain_option else None


def _short(text: str, width: int = 110) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _rate(rate: Rate) -> str:
    return rate.text(gap="  ")


def _print_report(path: Path, report: Report, pack_name: str) -> None:
    echo = click.echo
    echo(f"{path}: {report.messages} messages ({report.crisis} crisis, {report.benign} benign), pack '{pack_name}'")
    echo(f"  recall              {_rate(report.recall)}")
    echo(f"  false-alarm rate    {_rate(report.false_alarms)}")
    echo(f"  category accuracy   {_rate(report.category_top)} top, {_rate(report.category_any)} among found")
    echo(f"  time per message    p50 {report.p50_ms:.2f} ms, p99 {report.p99_ms:.2f} ms")
    crisis, spared = report.dismissed.hits, report.dismissed.total - report.dismissed.hits
    echo(f"  dismissed phrases   {spared} false alarms spared, {crisis} crisis messages missed for it")
    echo("recall by category")
    for name, rate in report.by_category.items():
        echo(f"  {name:<24}{_rate(rate)}")
    echo("recall by language")
    for name, rate in report.by_language.items():
        echo(f"  {name:<24}{_rate(rate)}")
    echo(f"misses ({len(report.misses)})")
    for o in report.misses:
        why = " (phrase dismissed as a figure of speech)" if o.dismissed else ""
        echo(f"  [{o.language}] {o.category} → not flagged{why}: {_short(o.text)}")
    echo(f"false alarms ({len(report.false_alarm_list)})")
    for o in report.false_alarm_list:
        echo(f"  [{o.language}] none → {','.join(o.predicted)} ({','.join(o.layers)}): {_short(o.text)}")
    if report.failures:
        echo("BELOW THRESHOLDS: " + "; ".join(report.failures))
    else:
        echo("meets every threshold")


@safety_group.command("eval")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@pass_app
def safety_eval(app: AppContext, file: Path, as_json: bool) -> None:
    """Run the net over a labelled JSONL FILE and report recall, false alarms and latency.

    Each line: {"text": …, "category": <category id or "none">, "language": …} (language
    optional). Prints recall per category and per language, the false-alarm rate, p99 time per
    message and every miss and false alarm. Exits 1 below the pack's thresholds, 2 on a bad file.
    """
    pack = _pack(app)
    report = measure(file, pack)
    pack_name = pack.name if pack is not None else "bundled"
    if as_json:
        click.echo(json.dumps({"file": str(file), "pack": pack_name, **report.as_dict()}, ensure_ascii=False, indent=2))
    else:
        _print_report(file, report, pack_name)
    if report.failures:
        raise SystemExit(1)


@safety_group.command("train")
@click.option(
    "--corpus",
    "corpora",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Labelled JSONL to train on, repeatable (default: the pack's training files).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Where to write the classifier (default: the pack's file)."
)
@pass_app
def safety_train(app: AppContext, corpora: tuple[Path, ...], out: Path | None) -> None:
    """Rebuild the classifier from the pack's training files: same corpus, same bytes.

    Never train on the held-out test split: its figures would then mean nothing.
    """
    done = retrain(_pack(app), corpora, out)
    r = done.report
    click.echo(
        f"{done.path}: {done.size / 1024:.0f} KiB from {r.messages} messages ({r.crisis} crisis) in "
        f"{done.files} file(s), {done.seconds:.1f} s; threshold {r.threshold:.4f}, "
        f"cross-validated recall {r.cv_recall:.3f} at false-alarm rate "
        f"{r.cv_false_alarm:.3f} (the whole net on training messages); corpus sha256 {r.corpus_sha256[:12]}"
    )
