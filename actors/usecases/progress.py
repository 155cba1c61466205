"""How far a long use case is, for faces that draw progress bars: one small value, handed to a callback.

Use cases whose work is not a stream of pipeline events (slicing, say) take an
optional `on_progress` and call it between items. The face decides what to
draw: a bar on a terminal, a line now and then in a log, nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StageProgress:
    """`done` of `total` items of one stage of the work (`total` None: not known in advance)."""

    stage: str
    done: int
    total: int | None = None


OnProgress = Callable[[StageProgress], None]
