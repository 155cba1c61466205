"""The garbage collector's settings for a process that must stay responsive: the app, and a run.

Why: Textual allocates tens of thousands of small container objects per frame (each
rendered line of text carries seven little caches), and most of them outlive the
next collection in the widgets' line caches. With CPython's default thresholds
(700, 10, 10) a frame of a streaming reply ran dozens of young collections and,
every few seconds, a full one that walked every object of the process — the
crisis net's patterns and the app's widgets included — with the interpreter
lock held: 100–400 ms during which the screen drew nothing (measured with
`benchmarks/bench_tui.py`, figures a and b). Fewer, larger young collections
cost less in all (short-lived objects die before one sees them), and what is
loaded once for the whole session is frozen out of the collector's sight.

A run has the same problem without a screen: its event loop carries every
transcript in flight, and a full collection (138 ms with the crisis net loaded,
`benchmarks/bench_supervisor.py`) stalls all of them at once; young collections
took another 1.5 % of its CPU. A run's start-up (`actors.usecases.runs`) uses
the same settings once the net and the models are loaded.

Cyclic garbage that survives into the oldest generation now waits longer for a
full collection; that is memory, bounded by how often one still runs, not time
on the screen.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 20, 100)
"""Young collections every 20,000 net allocations (not 700); a middle one every 20 of
those, a full one after 100 middle ones (and only when the survivors grew by a quarter)."""


def tune() -> None:
    """Use `THRESHOLDS` (when the app or a run starts)."""
    gc.set_threshold(*THRESHOLDS)


def settle() -> None:
    """Collect now and freeze what is left: it lives as long as the app and is never walked again.

    Call it right after something big and long-lived has loaded (the app's start, the crisis
    net), at a moment when a pause of a fraction of a second is not noticed.
    """
    gc.collect()
    gc.freeze()
