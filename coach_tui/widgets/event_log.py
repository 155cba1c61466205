"""The run's recent events, newest last: what happened, to which transcript, when.

The monitor's tables say where each transcript *is*; this says what just
*happened* (a persona ready, an exchange written, a judging's verdict, a step
that failed), so a person can tell a busy run from a stuck one at a glance.
The lines come folded from `RunState.log` (bounded there); only the lines
added since the last redraw are written, so a busy run costs a few lines a
burst, not a redraw of the whole log.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from rich.text import Text
from textual.widgets import RichLog

from ..run_state import LOG_LINES, LogLine
from .transcript_table import short_id


def log_text(line: LogLine) -> Text:
    """`14:02:11 t0003 exchange 4/10`, an error in red."""
    return Text.assemble(
        (time.strftime("%H:%M:%S", time.localtime(line.at)), "dim"),
        " ",
        (f"{short_id(line.transcript_id):<5}" if line.transcript_id else "run  ", "cyan"),
        " ",
        (line.text, "red" if line.error else ""),
    )


class EventLog(RichLog):
    DEFAULT_CSS = "EventLog { height: 1fr; border-top: hkey $foreground 20%; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=LOG_LINES, wrap=False, markup=False, auto_scroll=True, **kwargs)
        self._last: LogLine | None = None

    def show(self, lines: Sequence[LogLine] | Iterable[LogLine]) -> None:
        """Write the lines added since the last call; start over when the log is another run's."""
        lines = list(lines)
        new: list[LogLine] = []
        for line in reversed(lines):
            if line is self._last:
                break
            new.append(line)
        else:
            self.clear()  # the last line written is gone: another run, or the whole log rolled over
        for line in reversed(new[:LOG_LINES]):
            self.write(log_text(line))
        self._last = lines[-1] if lines else None

    @property
    def texts(self) -> list[str]:
        """The lines as plain text (what a test or a screen reader reads)."""
        return [strip.text for strip in self.lines]
