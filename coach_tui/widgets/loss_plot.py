"""Training loss over steps: Textual's Sparkline between a line that names the range and a step axis.

Unlike rubric scores (see `score_plot`), loss has no fixed scale: what
matters is its shape, so the sparkline scaling to the data's own minimum and
maximum is what we want here. Many steps are averaged into the plot's
columns rather than maxed, so one noisy step does not hide the trend.

A run with a validation split gets a second, labelled series below the
first: the held-out conversations' loss at each eval step. It is hidden for
runs without one. Each series scales to its own range (the label gives the
numbers), and both share the step axis.
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
    LossPlot #val-label { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    LossPlot #val-spark { height: 3; }
    LossPlot #val-spark > .sparkline--max-color { color: $warning; }
    LossPlot #val-spark > .sparkline--min-color { color: $accent; }
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
        self.val_points: list[tuple[int, float]] = []
        """The (step, validation loss) pairs plotted, in step order (empty: no validation split)."""

    def compose(self) -> ComposeResult:
        yield Static("loss: no step logged yet", id="loss-label")
        yield Sparkline([], summary_function=fmean, id="loss-spark")
        yield Static("", id="val-label")
        yield Sparkline([], summary_function=fmean, id="val-spark")
        with Horizontal(id="loss-axis"):
            yield Static("", id="axis-first")
            yield Static("", id="axis-last")

    def show(self, points: list[tuple[int, float]], val_points: list[tuple[int, float]] | None = None) -> None:
        self.points = list(points)
        self.val_points = list(val_points or [])
        losses = [loss for _, loss in self.points]
        self.query_one("#loss-spark", Sparkline).data = losses
        self._show_validation()
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

    def _show_validation(self) -> None:
        values = [loss for _, loss in self.val_points]
        label = ""
        if values:
            label = (
                f"[b]validation loss[/b] {values[0]:.4f} → [b]{values[-1]:.4f}[/b] · min {min(values):.4f}"
                f" · {len(values)} eval step{'s' if len(values) != 1 else ''} (held-out conversations)"
            )
        self.query_one("#val-label", Static).update(label)
        self.query_one("#val-label", Static).display = bool(values)
        spark = self.query_one("#val-spark", Sparkline)
        spark.data = values
        spark.display = bool(values)
