"""A run starts with the collector set up as the app's is (`actors.heap`).

Why it matters: a run's event loop carries every transcript in flight, and a full collection
walking the crisis net's patterns stalled all of them at once (138 ms in one run of
`benchmarks/bench_supervisor.py`).
"""

from __future__ import annotations

import gc

from actors import heap
from actors.usecases import runs
from tests.test_run_ownership import planned
from tests.tui_support import scripted_router


async def test_a_run_starts_with_the_collectors_settings_and_its_start_up_frozen(store, pack):
    run_id, settings = planned(store, pack)
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults, as a fresh `coach run` starts
    gc.unfreeze()
    try:
        await runs.RunSession(store, pack, run_id, settings, make_router=lambda s: scripted_router()).run()
        assert gc.get_threshold() == heap.THRESHOLDS
        assert gc.get_freeze_count() > 0  # what the start-up loaded is out of the collector's sight
    finally:
        gc.set_threshold(*before)
