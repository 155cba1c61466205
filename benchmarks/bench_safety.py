"""The crisis net on the held-out test split, on one CPU core: recall, false alarms, p99 latency.

Run: `python benchmarks/bench_safety.py [FILE.jsonl]` (default: the bundled test split).
Prints the figures `coach safety eval` holds the pack to, measured in one run
pinned to one core where the OS allows it, after one warm-up pass. Timings are
printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.safety import load_safety_net
from actors.safety.corpus import read_corpus
from actors.safety.loader import BUNDLED_SAFETY
from actors.safety.metrics import Outcome, failures, summarise


def _pct(ordered: list[float], q: float) -> float:
    """The q-th percentile of an ascending list (nearest rank)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=BUNDLED_SAFETY.parent / "corpus" / "test.jsonl",
        help="a labelled JSONL file (default: the bundled held-out test split)",
    )
    path = parser.parse_args().file
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        cores = "pinned to one core"
    else:
        cores = "not pinned (no sched_setaffinity here)"
    start = time.perf_counter()
    net = load_safety_net(None)
    load_s = time.perf_counter() - start
    items = read_corpus(path)
    for item in items:  # warm-up pass: caches, lazily built sets
        net.check(item.text, item.history)
    outcomes = []
    cpu_ms: list[float] = []
    for item in items:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        verdict = net.check(item.text, item.history)
        cpu_ms.append((time.thread_time() - c0) * 1000)
        outcomes.append(
            Outcome(
                item.text,
                item.category,
                item.language,
                verdict.flagged,
                verdict.categories,
                time.perf_counter() - t0,
                verdict.layers,
            )
        )
    report = summarise(outcomes, net.categories)
    report.failures = failures(report, net.config.thresholds)

    print(f"safety net on {path} ({report.messages} messages: {report.crisis} crisis, {report.benign} benign), {cores}")
    print(
        f"  load {load_s:.2f} s; time per message p50 {report.p50_ms:.2f} ms, p99 {report.p99_ms:.2f} ms "
        f"(target ≤ {net.config.thresholds.p99_ms:g} ms)"
    )
    # Wall time includes waiting for a core on a busy machine; this process's CPU time does not.
    cpu = sorted(cpu_ms)
    print(f"  CPU time per message (this thread): p50 {_pct(cpu, 50):.2f} ms, p99 {_pct(cpu, 99):.2f} ms")
    print(f"  recall {report.recall.text()}; false-alarm rate {report.false_alarms.text()}")
    print(f"  category accuracy {report.category_top.text()} top, {report.category_any.text()} among found")
    print("  recall by category: " + ", ".join(f"{k} {v.text(2)}" for k, v in report.by_category.items()))
    print("  recall by language: " + ", ".join(f"{k} {v.text(2)}" for k, v in report.by_language.items()))
    layers: dict[str, int] = {}
    for o in outcomes:
        if o.flagged and o.category != "none":
            for layer in o.layers:
                layers[layer] = layers.get(layer, 0) + 1
    print("  crisis messages flagged by layer: " + ", ".join(f"{k} {v}" for k, v in sorted(layers.items())))
    print("  " + ("meets every target" if not report.failures else "below target: " + "; ".join(report.failures)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
