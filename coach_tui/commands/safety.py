"""`coach safety …`: measuring the crisis net on a labelled file, and rebuilding its classifier."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from actors.safety.classifier import model_bytes, train
from actors.safety.corpus import read_corpus
from actors.safety.loader import cached_net_at, classifier_path, load_net_at, safety_file_of, train_path
from actors.safety.metrics import Outcome, Report, failures, summarise
from actors.atomic_files import atomic_writer

from ..context import AppContext, pass_app


@click.group("safety")
def safety_group() -> None:
    """Measure the crisis safety net and rebuild its classifier."""


def _safety_file(app: AppContext) -> Path:
    return safety_file_of(app.pack() if app.domain_option else None)


def _short(text: str, width: int = 110) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _rate(rate) -> str:
    return "  n/a" if rate.value is None else f"{rate.value:.3f}  ({rate.hits}/{rate.total})"


def _print_report(path: Path, report: Report, pack_name: str) -> None:
    echo = click.echo
    echo(f"{path}: {report.messages} messages ({report.crisis} crisis, {report.benign} benign), pack '{pack_name}'")
    echo(f"  recall              {_rate(report.recall)}")
    echo(f"  false-alarm rate    {_rate(report.false_alarms)}")
    echo(f"  category accuracy   {_rate(report.category_top)} top, {_rate(report.category_any)} among found")
    echo(f"  time per message    p50 {report.p50_ms:.2f} ms, p99 {report.p99_ms:.2f} ms")
    echo("recall by category")
    for name, rate in report.by_category.items():
        echo(f"  {name:<24}{_rate(rate)}")
    echo("recall by language")
    for name, rate in report.by_language.items():
        echo(f"  {name:<24}{_rate(rate)}")
    echo(f"misses ({len(report.misses)})")
    for o in report.misses:
        echo(f"  [{o.language}] {o.category} → not flagged: {_short(o.text)}")
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
    safety_file = _safety_file(app)
    net = cached_net_at(safety_file)
    items = read_corpus(file)
    net.check(items[0].text)  # load lazily imported parts before timing
    outcomes = []
    for item in items:
        start = time.perf_counter()
        verdict = net.check(item.text, item.history)
        seconds = time.perf_counter() - start
        outcomes.append(Outcome(item.text, item.category, item.language, verdict.flagged, verdict.categories,
                                seconds, verdict.layers))
    report = summarise(outcomes, net.categories)
    report.failures = failures(report, net.config.thresholds)
    pack_name = app.pack().name if app.domain_option else "bundled"
    if as_json:
        click.echo(json.dumps({"file": str(file), "pack": pack_name, **report.as_dict()}, ensure_ascii=False, indent=2))
    else:
        _print_report(file, report, pack_name)
    if report.failures:
        raise SystemExit(1)


@safety_group.command("train")
@click.option("--corpus", type=click.Path(path_type=Path), help="Labelled JSONL to train on (default: the pack's train split).")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write the classifier (default: the pack's file).")
@pass_app
def safety_train(app: AppContext, corpus: Path | None, out: Path | None) -> None:
    """Rebuild the classifier from the pack's training split: same corpus, same bytes.

    Never train on the held-out test split: its figures would then mean nothing.
    """
    safety_file = _safety_file(app)
    net = load_net_at(safety_file, require_classifier=False)
    settings = net.config.classifier
    corpus = corpus or train_path(safety_file, net.config)
    out = out or classifier_path(safety_file, net.config)
    items = read_corpus(corpus)
    texts = [net.normalised(item.text) for item in items]
    labels = [item.category for item in items]
    start = time.perf_counter()
    model, report = train(texts, labels, net.categories, max_false_alarm=settings.max_false_alarm,
                          folds=settings.folds, seed=settings.seed)
    data = model_bytes(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out, binary=True) as fh:
        fh.write(data)
    click.echo(
        f"{out}: {len(data) / 1024:.0f} KiB from {report.messages} messages ({report.crisis} crisis) in "
        f"{time.perf_counter() - start:.1f} s; threshold {report.threshold:.4f}, "
        f"{settings.folds}-fold cross-validated recall {report.cv_recall:.3f} at false-alarm rate "
        f"{report.cv_false_alarm:.3f} (classifier alone); corpus sha256 {report.corpus_sha256[:12]}"
    )
