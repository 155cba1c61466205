"""The crisis net's use cases: measure it on a labelled file, rebuild its classifier.

Both faces call these; `coach safety eval|train` only parses arguments and prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from actors.atomic_files import atomic_writer
from actors.pack.domain_pack import DomainPack
from actors.safety.classifier import TrainReport, model_bytes, train
from actors.safety.corpus import read_corpus
from actors.safety.loader import cached_net_at, classifier_path, load_net_at, safety_file_of, train_paths
from actors.safety.metrics import Outcome, Rate, Report, failures, summarise

__all__ = ["Rate", "Report", "Retrained", "measure", "retrain"]


def measure(file: Path, pack: DomainPack | None = None) -> Report:
    """The net of ``pack`` (else the bundled one) over a labelled JSONL file, with timings and failures.

    A bad line raises the corpus reader's error, naming the file and line.
    """
    net = cached_net_at(safety_file_of(pack))
    items = read_corpus(file)
    if items:
        net.check(items[0].text)  # load lazily imported parts before timing
    outcomes = []
    for item in items:
        start = time.perf_counter()
        verdict = net.check(item.text, item.history)
        seconds = time.perf_counter() - start
        outcomes.append(
            Outcome(
                item.text,
                item.category,
                item.language,
                verdict.flagged,
                verdict.categories,
                seconds,
                verdict.layers,
                bool(verdict.dismissed) and not verdict.flagged,
            )
        )
    report = summarise(outcomes, net.categories)
    report.failures = failures(report, net.config.thresholds)
    return report


@dataclass(frozen=True)
class Retrained:
    path: Path
    size: int
    files: int
    seconds: float
    report: TrainReport


def retrain(pack: DomainPack | None = None, corpora: tuple[Path, ...] = (), out: Path | None = None) -> Retrained:
    """Rebuild the classifier from the pack's training files (or ``corpora``): same corpus, same bytes.

    Never train on a held-out test split: its figures would then mean nothing.
    """
    safety_file = safety_file_of(pack)
    net = load_net_at(safety_file, with_classifier=False)
    settings = net.config.classifier
    files = list(corpora) or train_paths(safety_file, net.config)
    out = out or classifier_path(safety_file, net.config)
    outside = {(safety_file.parent / name).resolve() for name in settings.outside_budget}
    read = [(file, item) for file in files for item in read_corpus(file)]
    items = [item for _, item in read]
    start = time.perf_counter()
    other_layers = [net.without_classifier(item.text, item.history) for item in items]
    model, report = train(
        [net.normalised(item.text) for item in items],
        [item.category for item in items],
        net.categories,
        flagged_anyway=[flagged for flagged, _ in other_layers],
        may_speak=[say == "reads" for _, say in other_layers],
        framed=[say == "framed" for _, say in other_layers],
        framed_threshold=settings.framed_threshold,
        in_budget=[Path(file).resolve() not in outside for file, _ in read],
        max_false_alarm=settings.max_false_alarm,
        folds=settings.folds,
        seed=settings.seed,
    )
    data = model_bytes(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out, binary=True) as fh:
        fh.write(data)
    return Retrained(out, len(data), len(files), time.perf_counter() - start, report)
