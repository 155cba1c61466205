"""Training loss over steps: Textual's Sparkline between a line that names the range and a step axis.

Unlike rubric scores (see `score_plot`), loss has no fixed scale: what
matters is its shape, so the sparkline scaling to the data's own minimum and
maximum is what we want here. Many steps are averaged into the plot's
columns rather than maxed, so one noisy step does not hide the trend.
"""

from __future__ import annotations

from statistics import fmean

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static


class LossPlot(Vertical):
    DEFAULT_CSS = """
    LossPlot { height: auto; padding: 0 0 1 0; }
    LossPlot #loss-label { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    LossPlot Sparkline { height: 4; }
    LossPlot Sparkline > .sparkline--max-color { color: $error; }
    LossPlot Sparkline > .sparkline--min-color { color: $success; }
    LossPlot #loss-axis { height: 1; color: $text-muted; }
    LossPlot #loss-axis Static { width: 1fr; text-wrap: nowrap; }
    LossPlot #axis-last { text-align: right; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.points: list[tuple[int, float]] = []
        """The (step, loss) pairs plotted, in step order."""

    def compose(self) -> ComposeResult:
        yield Static("loss: no step logged yet", id="loss-label")
        yield Sparkline([], summary_function=fmean)
        with Horizontal(id="loss-axis"):
            yield Static("", id="axis-first")
            yield Static("", id="axis-last")

    def show(self, points: list[tuple[int, float]]) -> None:
        self.points = list(points)
        losses = [loss for _, loss in self.points]
        self.query_one(Sparkline).data = losses
        label, first_axis, last_axis = "loss: no step logged yet", "", ""
        if self.points:
            (first_step, first), (last_step, last) = self.points[0], self.points[-1]
            label = (
                f"[b]loss[/b] {first:.4f} → [b]{last:.4f}[/b] · min {min(losses):.4f} · max {max(losses):.4f}"
                f" · {len(losses)} logged step{'s' if len(losses) != 1 else ''}"
            )
            first_axis = f"step {first_step}"
            last_axis = f"step {last_step}" if last_step != first_step else ""
        self.query_one("#loss-label", Static).update(label)
        self.query_one("#axis-first", Static).update(first_axis)
        self.query_one("#axis-last", Static).update(last_axis)
