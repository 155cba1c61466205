"""Scores as they come in: one bar per assessment, on a fixed 0–1 scale, green for pass, red for fail.

Why not Textual's Sparkline: it scales to the data's own min and max, so a
run where every transcript scores 1.0 draws a flat floor and a run of 0.78s
and 0.80s looks like a cliff. Rubric scores have a fixed scale and a pass
line; the plot keeps both.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ..run_state import RunState

EIGHTHS = " ▁▂▃▄▅▆▇█"


def bars(scores: list[float], passed: list[bool], height: int) -> Text:
    """``height`` rows of block characters, one column per score, 0 at the bottom and 1 at the top."""
    text = Text()
    for row in range(height):
        floor = (height - 1 - row) * 8
        for score, ok in zip(scores, passed, strict=True):
            level = max(0, min(8, round(max(0.0, min(1.0, score)) * height * 8) - floor))
            text.append(EIGHTHS[level], style="green" if ok else "red")
        if row < height - 1:
            text.append("\n")
    return text


class ScorePlot(Vertical):
    DEFAULT_CSS = """
    ScorePlot { height: 4; padding: 0 1; }
    ScorePlot #score-label { height: 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    ScorePlot #score-bars { height: 3; }
    """

    def compose(self) -> ComposeResult:
        yield Static("scores: none yet", id="score-label")
        yield Static("", id="score-bars")

    def show(self, state: RunState) -> None:
        width = max(8, self.content_size.width or 30)
        scores = state.scores[-width:]
        outcomes = state.score_passed[-width:]
        label = "scores: none yet"
        if scores:
            mean = sum(state.scores) / len(state.scores)
            label = f"scores · mean {mean:.2f} · {state.passed}/{state.assessed} pass"
        # Fixed sizes: no layout pass (a reflow of the whole monitor costs far more than these lines).
        self.query_one("#score-label", Static).update(label, layout=False)
        self.query_one("#score-bars", Static).update(bars(scores, outcomes, 3), layout=False)
